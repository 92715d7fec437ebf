"""Operator overrides of blocking risk gates: created, revoked and read here, every one audited."""
from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import QuerySet

from dashboard.events import broadcast_on_commit
from decisions.audit_services import audit_append
from decisions.models import AuditRecord, GateOverride, TradingConfig
from decisions.risk.wall import GATE_ORDER
from tradingbot.compiled_reads import rows_compiled

MAX_OVERRIDE = timedelta(hours=24)


class OverrideRefused(ValueError):
    """The override was not created; the message says why. Fix the input and try again."""


def override_check(*, gate: str, until: datetime, reason: str, now: datetime) -> None:
    """Raise OverrideRefused naming what is wrong with an override request."""
    if gate not in GATE_ORDER:
        raise OverrideRefused(f"unknown gate {gate!r}; gates are {', '.join(GATE_ORDER)}")
    if not reason.strip():
        raise OverrideRefused("an override needs a reason")
    if until <= now:
        raise OverrideRefused(f"until {until:%Y-%m-%d %H:%M} UTC is not in the future")
    if until - now > MAX_OVERRIDE:
        raise OverrideRefused("an override lasts at most 24 hours; create a new one when it ends")


def gate_override_create(*, gate: str, until: datetime, reason: str, actor: str, now: datetime) -> GateOverride:
    """Let `gate` pass until `until` (at most 24 h ahead), audited; overriding daily_loss also lifts the breaker."""
    override_check(gate=gate, until=until, reason=reason, now=now)
    with transaction.atomic():
        override = GateOverride.objects.create(gate=gate, until=until, reason=reason.strip()[:255],
                                               created_by=actor, created_at=now)
        audit_append(kind=AuditRecord.Kind.OVERRIDE, actor=actor, subject=f"gate:{gate}", now=now,
                     body={"action": "created", "override": override.pk, "gate": gate, "until": until,
                           "reason": override.reason})
        if gate == "daily_loss":
            _breaker_lift(actor=actor, now=now, reason=override.reason)
    broadcast_on_commit("status", {"override": gate, "until": until, "by": actor})
    return override


def _breaker_lift(*, actor: str, now: datetime, reason: str) -> None:
    config = TradingConfig.objects.select_for_update().first()
    if config is None or config.safe_until is None or config.safe_until <= now:
        return
    TradingConfig.objects.filter(pk=config.pk).update(safe_until=None)
    audit_append(kind=AuditRecord.Kind.MODE_CHANGE, actor=actor, subject=f"config:{config.pk}", now=now,
                 body={"from": "SAFE", "to": config.mode, "reason": f"daily_loss overridden: {reason}"})


def gate_override_revoke(*, override: GateOverride, actor: str, now: datetime) -> GateOverride:
    """End an override now, audited; a revoked or finished one is left as it is."""
    with transaction.atomic():
        override = GateOverride.objects.select_for_update().get(pk=override.pk)
        if not override.active(now):
            return override
        override.revoked_at, override.revoked_by = now, actor
        override.save(update_fields=["revoked_at", "revoked_by"])
        audit_append(kind=AuditRecord.Kind.OVERRIDE, actor=actor, subject=f"gate:{override.gate}", now=now,
                     body={"action": "revoked", "override": override.pk, "gate": override.gate})
    return override


def gate_overrides_active(*, now: datetime) -> dict[str, str]:
    """Return {gate: note} of the overrides holding at `now`, e.g. "overridden by alice until 15:00 UTC"."""
    rows = rows_compiled("active gate overrides", GateOverride, _active_read, now=now)
    return {gate: f"overridden by {by} until {until:%Y-%m-%d %H:%M} UTC ({reason})" for gate, by, until, reason in rows}


def _active_read(*, now: datetime) -> QuerySet:
    return (GateOverride.objects.filter(revoked_at__isnull=True, created_at__lte=now, until__gt=now)
            .order_by("until").values_list("gate", "created_by", "until", "reason"))
