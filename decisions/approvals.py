"""HYBRID approvals: approve, reject or snooze a pending decision, and expire the stale ones.

Every action locks the decision row, so two operators (or an operator and the expiry job) cannot
both act on it: the second sees the first one's outcome and is refused with it. Every action is
audited with who did it.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import QuerySet

from dashboard.events import broadcast_on_commit
from decisions import router
from decisions.audit_services import ENGINE, audit_append
from decisions.models import AuditRecord, Decision, Mode
from decisions.selectors import trading_config_get


class ApprovalRefused(ValueError):
    """The operator's action was not carried out; the message says why (the decision is unchanged)."""


def _expire_if_due(decision_id: int, now: datetime) -> None:
    """Mark a past-due pending decision expired in its own transaction, then refuse the action."""
    with transaction.atomic():
        decision = Decision.objects.select_for_update().get(pk=decision_id)
        due = decision.outcome == Decision.Outcome.PENDING and router.is_expired(decision.expires_at, now)
        if due:
            _expire(decision, now)
    if due:  # raised after the commit: the expiry must stay recorded although the action is refused
        raise ApprovalRefused(f"decision {decision_id} expired at {decision.expires_at:%Y-%m-%d %H:%M} UTC")


def _locked_pending(decision_id: int, now: datetime) -> Decision:
    """Return the pending, unexpired decision locked for this transaction; raise ApprovalRefused otherwise."""
    _expire_if_due(decision_id, now)
    decision = Decision.objects.select_for_update().select_related("instrument").get(pk=decision_id)
    if decision.outcome != Decision.Outcome.PENDING:
        raise ApprovalRefused(f"decision {decision_id} is {decision.get_outcome_display().lower()}, not pending")
    if router.is_expired(decision.expires_at, now):  # expired between the two locks: the job records it
        raise ApprovalRefused(f"decision {decision_id} expired at {decision.expires_at:%Y-%m-%d %H:%M} UTC")
    return decision


def _audit(decision: Decision, action: str, actor: str, now: datetime, **extra) -> None:
    audit_append(kind=AuditRecord.Kind.APPROVAL, actor=actor, subject=f"decision:{decision.pk}", now=now,
                 body={"action": action, "outcome": decision.outcome, "approval": decision.approval, **extra})


def _expire(decision: Decision, now: datetime) -> None:
    decision.outcome, decision.approval = Decision.Outcome.EXPIRED, Decision.Approval.EXPIRED
    decision.approval_at = now
    decision.save(update_fields=["outcome", "approval", "approval_at"])
    _audit(decision, "expired", ENGINE, now, expires_at=decision.expires_at)
    broadcast_on_commit("decision", _payload(decision))


def _payload(decision: Decision) -> dict:
    from decisions.services import decision_payload  # the cycle module owns the shape

    return decision_payload(decision)


def decision_approve(*, decision_id: int, actor: str, now: datetime) -> Decision:
    """Execute a pending decision now, if the gates still allow and the price is inside its entry zone."""
    from decisions.services import decision_execute, gates_recheck  # the cycle re-checks and executes

    config = trading_config_get()
    _expire_if_due(decision_id, now)
    with transaction.atomic():
        decision = _locked_pending(decision_id, now)
        mode = config.effective_mode(now)
        if mode != Mode.ON and mode != Mode.HYBRID:
            raise ApprovalRefused(f"mode {mode} is in force: nothing is executed"
                                  + (" (circuit breaker)" if mode != config.mode else ""))
        if config.paused:
            # Paused (or stopped) means no new position, whoever asks; resume first.
            raise ApprovalRefused("the bot is paused: resume it before approving; nothing is executed")
        blocked, price = gates_recheck(decision=decision, config=config, now=now)
        if blocked is not None:
            raise ApprovalRefused(f"blocked by {blocked.name}: {blocked.reason}")
        if price is None:
            raise ApprovalRefused(f"no closed candle of {decision.instrument} to price the entry; not executed")
        if not router.in_entry_zone(price, decision.entry_zone_low, decision.entry_zone_high):
            raise ApprovalRefused(f"price {price} left the entry zone {decision.entry_zone_low}"
                                  f"..{decision.entry_zone_high}; not executed")
        decision.outcome, decision.approval = Decision.Outcome.EXECUTED, Decision.Approval.APPROVED
        decision.approval_by, decision.approval_at = actor, now
        decision.save(update_fields=["outcome", "approval", "approval_by", "approval_at"])
        _audit(decision, "approved", actor, now, price=price)
    decision_execute(decision=decision, config=config, now=now, reference_price=price)
    decision.refresh_from_db()
    broadcast_on_commit("decision", _payload(decision))
    return decision


def decision_reject(*, decision_id: int, actor: str, now: datetime, note: str = "") -> Decision:
    """Refuse a pending decision; it is kept in the journal as rejected, with the note."""
    _expire_if_due(decision_id, now)
    with transaction.atomic():
        decision = _locked_pending(decision_id, now)
        decision.outcome, decision.approval = Decision.Outcome.REJECTED, Decision.Approval.REJECTED
        decision.approval_by, decision.approval_at, decision.approval_note = actor, now, note.strip()[:255]
        decision.save(update_fields=["outcome", "approval", "approval_by", "approval_at", "approval_note"])
        _audit(decision, "rejected", actor, now, note=decision.approval_note)
        broadcast_on_commit("decision", _payload(decision))
    return decision


def decision_snooze(*, decision_id: int, actor: str, now: datetime, minutes: int | None = None) -> Decision:
    """Put a pending decision aside for `minutes` (the configured default); it still expires on time."""
    minutes = trading_config_get().snooze_minutes if minutes is None else minutes
    if minutes <= 0:
        raise ApprovalRefused(f"snooze minutes must be positive, got {minutes}")
    _expire_if_due(decision_id, now)
    with transaction.atomic():
        decision = _locked_pending(decision_id, now)
        until = now + timedelta(minutes=minutes)
        if decision.expires_at is not None:
            until = min(until, decision.expires_at)
        decision.snoozed_until, decision.approval_by = until, actor
        decision.save(update_fields=["snoozed_until", "approval_by"])
        _audit(decision, "snoozed", actor, now, until=until)
        broadcast_on_commit("decision", _payload(decision))
    return decision


def decisions_due(*, now: datetime) -> QuerySet:
    """Return (pk, as_of) of the pending decisions past their expiry at `now`, unordered (a part of a combined read)."""
    return (Decision.objects.filter(outcome=Decision.Outcome.PENDING, expires_at__lte=now).order_by()
            .values_list("pk", "as_of"))


def decisions_expire(*, now: datetime, due: Iterable[tuple[int, datetime]] | None = None) -> int:
    """Mark every pending decision past its expiry as expired, audited; return how many.

    `due` is what decisions_due(now=now) returns when the caller has read it; newest bar first.
    """
    count = 0
    rows = decisions_due(now=now) if due is None else due
    for pk, _ in sorted(rows, key=lambda row: (row[1], row[0]), reverse=True):
        with transaction.atomic():
            decision = Decision.objects.select_for_update().get(pk=pk)
            if decision.outcome == Decision.Outcome.PENDING:
                _expire(decision, now)
                count += 1
    return count
