"""The start-up gate: a venue account trades only once its books are known to match the venue."""
from __future__ import annotations

from datetime import datetime

from django.db import transaction

from dashboard.events import broadcast_on_commit
from decisions.audit_services import audit_append
from decisions.models import AuditRecord
from execution.models import Account, ReconciliationRun
from execution.reconciliation.runs import reconciliation_payload


def _describe(run: ReconciliationRun) -> str:
    state = "clean" if run.clean else (f"failed ({run.error})" if run.error else f"{len(run.differences)} differences")
    return f"reconciliation #{run.pk} ({run.trigger}, {run.started_at:%Y-%m-%d %H:%M:%S} UTC) {state}"


def trading_enabled(account: Account) -> tuple[bool, str]:
    """Return (whether `account` may trade, why): paper always; a venue account once reconciled since start-up.

    The latest start-up run must be clean or acknowledged, or a later run must be: the start-up run
    fixes what it can, the next clean run (or an operator's acknowledgement) opens trading.
    """
    if account.broker == Account.Broker.PAPER:
        return True, "paper account: nothing to reconcile"
    # Runs are stored as they start, so the primary key orders them.
    startup = account.reconciliations.filter(trigger="startup").order_by("-pk").first()
    if startup is None:
        return False, f"no start-up reconciliation of {account.name} yet: trading disabled"
    for run in account.reconciliations.filter(pk__gte=startup.pk).order_by("-pk"):
        if run.acknowledged_by:
            return True, f"{_describe(run)}, acknowledged by {run.acknowledged_by}"
        if run.clean:
            return True, _describe(run)
    return False, (f"{_describe(startup)}: trading disabled until a clean run or an operator acknowledges it "
                   f"(admin, or manage.py reconcile --account {account.name} --ack)")


def reconciliation_acknowledge(*, run: ReconciliationRun, actor: str, now: datetime,
                               note: str = "") -> ReconciliationRun:
    """Record that `actor` has seen the run's differences and accepts trading with them; audited, once.

    A clean run has nothing to accept: it is returned unchanged, as is one acknowledged already.
    """
    with transaction.atomic():
        run = ReconciliationRun.objects.select_for_update().select_related("account").get(pk=run.pk)
        if run.acknowledged_by or run.clean:
            return run
        run.acknowledged_by, run.acknowledged_at = actor[:150], now
        run.save(update_fields=["acknowledged_by", "acknowledged_at"])
        audit_append(kind=AuditRecord.Kind.OVERRIDE, actor=actor, subject=f"reconcile:{run.pk}", now=now,
                     body={"action": "acknowledged", "run": run.pk, "account": run.account.name,
                           "trigger": run.trigger, "clean": run.clean, "differences": len(run.differences),
                           "error": run.error, "note": note[:500]})
        broadcast_on_commit("reconciliation", reconciliation_payload(run))
    return run
