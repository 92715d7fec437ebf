"""One reconciliation run: read both sides, diff them (execution.reconcile), store the run, act on it."""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import asdict
from datetime import datetime, timedelta

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from dashboard.events import broadcast_on_commit
from decisions.audit_services import ENGINE, audit_append
from decisions.models import AuditRecord
from decisions.selectors import trading_config_get
from execution.brokers.base import Broker, BrokerError
from execution.locks import LockBusy, symbol_lease
from execution.models import Account, ReconciliationRun
from execution.oms import OrderRejected
from execution.reconcile import Action, ActionKind, reconcile
from execution.reconciliation import orders, positions
from execution.reconciliation.context import Context, Outcome
from execution.reconciliation.views import Scope, instruments_of, our_view_load, scope_of, venue_view_load
from execution.services import broker_for

logger = logging.getLogger(__name__)
TRIGGERS = ("startup", "periodic", "manual")
# Long enough for a run's reads and writes on a slow venue; a holder that dies frees the symbol then.
LEASE_TTL = timedelta(minutes=2)
K = ActionKind
# handler, and whether it writes the database only (then it and its audit record share one transaction).
HANDLERS: dict[ActionKind, tuple[Callable[[Context, Action], Outcome], bool]] = {
    K.BOOK_FILL: (orders.book_fill, True),
    K.UPDATE_ORDER_STATE: (orders.update_order_state, False),
    K.ADOPT_EXTERNAL_ORDER: (orders.adopt_external_order, False),
    K.ADOPT_POSITION_CHANGE: (positions.adopt_position_change, True),
    K.RESTORE_STOP: (positions.restore_stop, False),
    K.RESIZE_STOP: (positions.resize_stop, False),
    K.RESTORE_TARGET: (positions.restore_target, False),
    K.CANCEL_STRAY: (orders.cancel_stray, False),
    K.MARK_LOST: (orders.mark_lost, False),
    K.BALANCE_MISMATCH: (orders.balance_mismatch, True),
}


def _json(value) -> object:
    # Decimals and datetimes as the API renders them; enums as their values.
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _action_json(action: Action, outcome: Outcome | None = None) -> dict:
    data = {k: v for k, v in asdict(action).items() if v is not None and v is not False and v != ""}
    if outcome is not None:
        data |= {"outcome": outcome.status, "note": outcome.note[:500]}
    return _json(data)


def reconciliation_payload(run: ReconciliationRun) -> dict:
    """Return the JSON shape the dashboard shows for a run."""
    return {"id": run.pk, "account": run.account.name, "trigger": run.trigger, "started_at": run.started_at,
            "finished_at": run.finished_at, "clean": run.clean, "differences": len(run.differences),
            "actions": len(run.actions), "error": run.error, "acknowledged_by": run.acknowledged_by}


def _finish(run: ReconciliationRun, finished_at: datetime) -> ReconciliationRun:
    run.finished_at = finished_at
    with transaction.atomic():
        run.save()
        audit_append(kind=AuditRecord.Kind.ORDER, actor=ENGINE, subject=f"reconcile:{run.pk}", now=finished_at,
                     body={"action": "reconciliation", "trigger": run.trigger, "clean": run.clean,
                           "differences": len(run.differences), "actions": len(run.actions), "error": run.error})
        broadcast_on_commit("reconciliation", reconciliation_payload(run))
    return run


def reconciliation_failed(*, account: Account, now: datetime, trigger: str, error: str,
                          clock: Callable[[], datetime] = timezone.now) -> ReconciliationRun:
    """Store a run that could not compare anything (no broker, venue unreadable): unclean, nothing applied."""
    run = ReconciliationRun.objects.create(account=account, started_at=now, trigger=trigger, clean=False,
                                           error=error[:2000])
    return _finish(run, max(now, clock()))


def _leases_take(stack: ExitStack, ctx: Context, symbols: Iterable[str], now: datetime) -> set[str]:
    """Hold the lease of each symbol for the rest of the run; return the symbols another worker holds."""
    busy = set()
    for symbol in sorted(symbols):
        try:
            stack.enter_context(symbol_lease(account=ctx.account, instrument=ctx.instrument(symbol), now=now,
                                             ttl=LEASE_TTL))
        except LockBusy:
            busy.add(symbol)
    return busy


def _apply(ctx: Context, action: Action, busy: set[str]) -> Outcome:
    handler, local = HANDLERS[action.kind]
    try:
        if action.symbol in busy:
            outcome = Outcome("skipped", "symbol lease busy: another worker is acting on it")
        elif local:
            with transaction.atomic():
                outcome = handler(ctx, action)
                _audit(ctx, action, outcome)
            return outcome
        else:
            outcome = handler(ctx, action)
    except Exception as exc:  # one failed action must not keep the others (a stop) from running
        logger.exception("reconciliation %s: %s on %s failed", ctx.run.pk, action.kind, action.symbol)
        outcome = Outcome("failed", f"{type(exc).__name__}: {exc}"[:500])
    with transaction.atomic():
        _audit(ctx, action, outcome)
    return outcome


def _audit(ctx: Context, action: Action, outcome: Outcome) -> None:
    audit_append(kind=AuditRecord.Kind.ORDER, actor=ENGINE, subject=ctx.subject, now=ctx.now,
                 body=_action_json(action, outcome))


def reconciliation_run(*, account: Account, broker: Broker, now: datetime, trigger: str = "periodic",
                       clock: Callable[[], datetime] = timezone.now) -> ReconciliationRun:
    """Compare the venue with the books, store the run and carry out its actions in order.

    Each action runs under its symbol's lease (held for the whole run; a busy symbol's actions are
    skipped and say so) and is audited under "reconcile:<run id>". A venue that cannot be read
    leaves a run with its error, clean=False and nothing applied. `clock` stamps finished_at only.
    """
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger {trigger!r} is not one of {TRIGGERS}")
    run = ReconciliationRun.objects.create(account=account, started_at=now, trigger=trigger)
    scope: Scope = scope_of(account=account, now=now)
    ctx = Context(account, broker, now, run, venue=None, instruments=instruments_of(account))
    with ExitStack() as leases:
        # The books' symbols are held before the read, so no worker of ours changes them mid-comparison.
        busy = _leases_take(leases, ctx, scope.symbols, now)
        try:
            ctx.venue = venue_view_load(broker=broker, scope=scope)
        except Exception as exc:  # noqa: BLE001  a bug in the read is recorded too, with its traceback logged
            if not isinstance(exc, (BrokerError, OrderRejected)):
                logger.exception("reconciliation %s: reading %s failed", run.pk, account.name)
            run.error, run.clean = f"venue not read: {type(exc).__name__}: {exc}"[:2000], False
            return _finish(run, max(now, clock()))
        venue_symbols = {o.symbol for o in ctx.venue.orders} | {p.symbol for p in ctx.venue.positions}
        busy |= _leases_take(leases, ctx, venue_symbols - scope.symbols, now)
        result = reconcile(our_view_load(account=account, venue=ctx.venue, scope=scope), ctx.venue)
        run.differences = _json([asdict(d) for d in result.differences])
        run.actions = [_action_json(a) for a in result.actions]
        run.clean = result.clean
        run.save(update_fields=["differences", "actions", "clean"])
        run.actions = [_action_json(a, _apply(ctx, a, busy)) for a in result.actions]
    return _finish(run, max(now, clock()))


def account_broker(account: Account) -> Broker:
    """Return the broker that trades `account` (execution.services.broker_for)."""
    return broker_for(account, trading_config_get())


def reconcile_accounts(*, now: datetime, trigger: str = "periodic",
                       broker_factory: Callable[[Account], Broker] | None = None) -> list[ReconciliationRun]:
    """Reconcile every venue account (paper accounts have nothing to compare); return the runs."""
    runs = []
    for account in Account.objects.exclude(broker=Account.Broker.PAPER).order_by("pk"):
        try:
            broker = (broker_factory or account_broker)(account)
        except Exception as exc:  # a missing key or broker must show in the run, not stop the others
            runs.append(reconciliation_failed(account=account, now=now, trigger=trigger,
                                              error=f"no broker: {type(exc).__name__}: {exc}"))
            continue
        runs.append(reconciliation_run(account=account, broker=broker, now=now, trigger=trigger))
    return runs


__all__ = ["TRIGGERS", "account_broker", "reconcile_accounts", "reconciliation_failed", "reconciliation_payload",
           "reconciliation_run"]
