"""Reads for the decision stage and the dashboard's Decisions page."""
from datetime import UTC, datetime

from django.db.models import Prefetch, Q, QuerySet

from decisions.models import AuditRecord, Decision, GateOverride, TradingConfig
from tradingbot.compiled_reads import models_compiled


def trading_config_get() -> TradingConfig:
    """Return the single configuration row, creating it with defaults on first use."""
    # Read on every engine cycle: compiled once, its row made into the model as a queryset would.
    found = models_compiled("trading config", TradingConfig, _config_query)
    return found[0] if found else TradingConfig.objects.create()


def _config_query() -> QuerySet:
    return TradingConfig.objects.order_by("pk")[:1]


# The Decisions page: the approval queue, the journal and the gate overrides.
def decisions_awaiting(*, now: datetime) -> QuerySet[Decision]:
    """Return the pending decisions not snoozed at `now`, newest bar first."""
    awake = Q(snoozed_until__isnull=True) | Q(snoozed_until__lte=now)
    return (Decision.objects.filter(awake, outcome=Decision.Outcome.PENDING)
            .select_related("instrument").order_by("-as_of", "-pk"))


def decisions_snoozed(*, now: datetime) -> QuerySet[Decision]:
    """Return the pending decisions snoozed past `now`, the soonest to wake first."""
    return (Decision.objects.filter(outcome=Decision.Outcome.PENDING, snoozed_until__gt=now)
            .select_related("instrument").order_by("snoozed_until", "-pk"))


def decision_journal(*, outcome: str = "", action: str = "") -> QuerySet[Decision]:
    """Return every decision, newest bar first, narrowed to `outcome` and `action` when given."""
    rows = Decision.objects.select_related("instrument").order_by("-as_of", "-pk")
    if outcome:
        rows = rows.filter(outcome=outcome)
    if action:
        rows = rows.filter(action=action)
    return rows


def decision_at(*, at: datetime) -> Decision | None:
    """Return the decision whose bar closed at `at` or most recently before it, or None."""
    # as_of is the bar's close: the decision "at 14:05" is the last one made by then.
    return Decision.objects.filter(as_of__lte=at).select_related("instrument").order_by("-as_of", "-pk").first()


def decision_detail(pk: int) -> Decision:
    """Return one decision with its instrument, snapshot and orders; raise Decision.DoesNotExist."""
    from execution.models import Order  # execution imports decisions; import late to keep the apps apart

    orders = Prefetch("orders", queryset=Order.objects.order_by("created_at", "pk"))
    return Decision.objects.select_related("instrument", "snapshot").prefetch_related(orders).get(pk=pk)


def decision_audit_trail(decision: Decision) -> QuerySet[AuditRecord]:
    """Return the audit records about `decision`, oldest first: recorded, approvals, orders."""
    return AuditRecord.objects.filter(subject=f"decision:{decision.pk}").order_by("seq")


def gate_rows(gates: list) -> list[dict]:
    """Return the stored gate verdicts with `until` (aware UTC) read from until_ms where present."""
    rows = []
    for gate in gates or []:
        if not isinstance(gate, dict):
            continue
        until_ms = gate.get("until_ms")
        until = datetime.fromtimestamp(until_ms / 1000, tz=UTC) if isinstance(until_ms, (int, float)) else None
        rows.append({**gate, "until": until})
    return rows


def gates_blocking(gates: list) -> list[dict]:
    """Return the verdicts that blocked, in the stored (GATE_ORDER) order."""
    return [row for row in gate_rows(gates) if row.get("verdict") == "block"]


def gate_first_block(gates: list) -> dict | None:
    """Return the first blocking verdict, the deepest cause, or None."""
    blocks = gates_blocking(gates)
    return blocks[0] if blocks else None


def decision_latest() -> Decision | None:
    """Return the decision of the newest bar, or None before the first."""
    return Decision.objects.select_related("instrument").order_by("-as_of", "-pk").first()


def gate_overrides_current(*, now: datetime) -> QuerySet[GateOverride]:
    """Return the overrides holding at `now`, the soonest to end first."""
    return GateOverride.objects.filter(revoked_at__isnull=True, created_at__lte=now, until__gt=now).order_by("until")
