"""Operator controls of the running bot: mode, pause, resume, stop and the kill switch.

Each service locks the configuration row, changes it, appends who did it and why to the audit
chain, and tells the dashboards ("status") once the transaction commits. Nothing here checks
roles: the views and the API do, and each docstring names the role it is meant for.

Three levels of "not trading", from mild to drastic:

- paused (`bot_pause`): no new position is opened; working entries, open positions and their
  exits carry on.
- stopped (`bot_stop`): paused, and every working entry order on every account cancelled. Open
  positions stay, protected by their stops (on a venue each stop is verified, as on a graceful
  shutdown). There is no separate "stopped" flag: stopped is paused with no working entry, so
  trading starts again only by an explicit `bot_resume`.
- killed (`kill_switch_all`): every order of ours cancelled, every position closed at market, the
  mode set to SAFE and the bot paused (execution.safety.kill_switch on each account).

A change of the configuration is one transaction (locked row, new version, audit records). The
broker calls of stop and the kill switch cannot share a transaction with it (they cross the
network), so the pause or SAFE is committed first and each account's outcome is audited as it
happened, failures included.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.db.models import F

from dashboard.events import broadcast_on_commit
from decisions.audit_services import audit_append, config_change_audit
from decisions.models import AuditRecord, Mode, TradingConfig
from execution.brokers.base import Broker, BrokerError, OrderNotFound
from execution.entries import WORKING
from execution.models import Account, Order, Position
from execution.orders import order_apply_venue
from execution.protective import stop_verify
from execution.safety import kill_switch
from execution.services import broker_for

logger = logging.getLogger(__name__)
REASON_MAX = 255


class ControlRefused(Exception):
    """The control action was not carried out; the message names the problem. Fix the input and retry."""


@dataclass
class StopReport:
    """What `bot_stop` did: the entries it cancelled, the stops it verified and what failed."""

    config: TradingConfig
    cancelled: list[str] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class KillResult:
    """The kill switch's outcome on one account (execution.safety.KillReport plus the account)."""

    account: str
    broker: str
    cancelled: list[str]
    flattened: list[int]
    errors: list[str]


def config_version_save(*, config: TradingConfig, changed: list[str], initial: dict, actor: str, now: datetime,
                        reason: str) -> None:
    """Save `config` as a new version when fields changed and audit each changed field: who, what, why.

    The one path for every edit of the trading configuration (the admin form and these controls):
    the version goes up by one in the database, so decisions and orders record which settings they
    ran under. Call it inside the transaction that locked the row.
    """
    with transaction.atomic():
        if config.pk is not None and changed:
            config.version = F("version") + 1
        config.save()
        config.refresh_from_db(fields=["version"])
        config_change_audit(config=config, changed=changed, initial=initial, actor=actor, now=now, reason=reason)


def _config_locked() -> TradingConfig:
    """Return the configuration row locked for this transaction, creating it with defaults on first use."""
    config = TradingConfig.objects.select_for_update().order_by("pk").first()
    if config is None:
        TradingConfig.objects.create()
        config = TradingConfig.objects.select_for_update().order_by("pk").first()
    return config


def _reason(reason: str, *, required: bool, what: str) -> str:
    reason = (reason or "").strip()
    if required and not reason:
        raise ControlRefused(f"{what} needs a reason")
    if len(reason) > REASON_MAX:
        raise ControlRefused(f"the reason is {len(reason)} characters long; at most {REASON_MAX}")
    return reason


def _status(config: TradingConfig, actor: str, reason: str, **extra) -> None:
    broadcast_on_commit("status", {"mode": config.mode, "paused": config.paused, "by": actor, "reason": reason,
                                   "config_version": config.version, **extra})


def _config_set(values: dict, *, actor: str, now: datetime, reason: str) -> tuple[TradingConfig, bool]:
    """Set `values` on the locked configuration; return (config, whether anything changed)."""
    with transaction.atomic():
        config = _config_locked()
        changed = [name for name, value in values.items() if getattr(config, name) != value]
        if not changed:
            return config, False
        initial = {name: getattr(config, name) for name in changed}
        for name in changed:
            setattr(config, name, values[name])
        config_version_save(config=config, changed=changed, initial=initial, actor=actor, now=now, reason=reason)
        _status(config, actor, reason)
    logger.info("%s set %s (%s)", actor, ", ".join(f"{n}={values[n]}" for n in changed), reason or "no reason")
    return config, True


def mode_set(*, mode: str, actor: str, now: datetime, reason: str) -> TradingConfig:
    """Switch the configured mode to SAFE, HYBRID or ON, audited; the same mode again changes nothing.

    Intended roles: SAFE for operators; HYBRID and ON for admins only (going ON after a confirmation
    step, since orders then reach the broker without approval). A running daily-loss circuit breaker
    (`safe_until`) still holds the effective mode at SAFE until it lifts.
    """
    if mode not in Mode.values:
        raise ControlRefused(f"unknown mode {mode!r}; modes are {', '.join(Mode.values)}")
    reason = _reason(reason, required=True, what=f"switching to {mode}")
    return _config_set({"mode": mode}, actor=actor, now=now, reason=reason)[0]


def bot_pause(*, actor: str, now: datetime, reason: str = "") -> TradingConfig:
    """Stop opening new positions (exits still run), audited; pausing a paused bot changes nothing.

    Intended role: operator.
    """
    return _config_set({"paused": True}, actor=actor, now=now,
                       reason=_reason(reason, required=False, what="pausing") or "paused")[0]


def bot_resume(*, actor: str, now: datetime, reason: str = "") -> TradingConfig:
    """Let the bot open positions again after a pause, a stop or the kill switch, audited.

    Intended role: operator. The mode is left as it is: after the kill switch it is SAFE, and going
    back to HYBRID or ON is an admin's separate, explicit `mode_set`.
    """
    return _config_set({"paused": False}, actor=actor, now=now,
                       reason=_reason(reason, required=False, what="resuming") or "resumed")[0]


def bot_stop(*, actor: str, now: datetime, reason: str = "") -> StopReport:
    """Stop trading: pause and cancel every working entry order; open positions keep their stops.

    Intended role: operator. Idempotent: a second stop finds nothing left to cancel. Only
    `bot_resume` starts trading again. A cancel the venue refuses is reported in `errors` and
    left to the next stop or the reconciliation; the pause holds either way.
    """
    reason = _reason(reason, required=False, what="stopping") or "stopped"
    config, _ = _config_set({"paused": True}, actor=actor, now=now, reason=reason)
    report = StopReport(config=config)
    for account in Account.objects.order_by("pk"):
        cancelled, verified, errors = _account_stop(account, config, now)
        report.cancelled += cancelled
        report.verified += verified
        report.errors += errors
        if cancelled or errors:
            with transaction.atomic():
                audit_append(kind=AuditRecord.Kind.ORDER, actor=actor, subject=f"account:{account.name}", now=now,
                             body={"action": "stop", "reason": reason, "cancelled": cancelled,
                                   "verified": verified, "errors": errors})
    broadcast_on_commit("status", {"mode": config.mode, "paused": True, "stopped": True, "by": actor,
                                   "reason": reason, "cancelled": len(report.cancelled)})
    return report


def entries_working(account: Account):
    """Return the account's entry orders resting at the venue (what a stop cancels), oldest first."""
    return (Order.objects.filter(account=account, leg__startswith="entry", status__in=WORKING)
            .select_related("instrument").order_by("created_at", "pk"))


def _account_stop(account: Account, config: TradingConfig, now: datetime) -> tuple[list[str], list[str], list[str]]:
    """Cancel the account's working entries and verify its positions' stops; return (cancelled, verified, errors)."""
    working = list(entries_working(account))
    positions = list(Position.objects.filter(account=account, status=Position.Status.OPEN)
                     .select_related("instrument"))
    if not working and not positions:
        return [], [], []
    try:
        broker = broker_for(account, config)
    except Exception as exc:  # noqa: BLE001  missing keys or a bad venue: report it, stop the other accounts
        return [], [], [f"{account.name}: no broker: {exc}"]
    cancelled, errors = [], []
    for order in working:
        try:
            _entry_cancel(order, broker, now)
            cancelled.append(order.client_order_id)
        except BrokerError as exc:
            errors.append(f"cancel {order.client_order_id}: {exc}")
    verified = []
    if not getattr(broker, "simulates_exits", False):
        # On a venue the stop is a resting order: check it is there, as a graceful shutdown does
        # (execution.safety.shutdown with flatten=False). Paper stops are simulated on every bar.
        for position in positions:
            try:
                result = stop_verify(position=position, broker=broker, now=now)
                verified.append(f"position {position.pk}: {result.detail}")
            except BrokerError as exc:
                errors.append(f"verify the stop of position {position.pk}: {exc}")
    return cancelled, verified, errors


def _entry_cancel(order: Order, broker: Broker, now: datetime) -> None:
    try:
        venue = broker.cancel(order.client_order_id, order.instrument.exchange_symbol)
    except OrderNotFound:  # gone already (filled or expired): book what the venue says
        venue = broker.fetch_order(order.client_order_id, order.instrument.exchange_symbol)
    order_apply_venue(order=order, venue=venue, broker=broker, now=now)


def kill_switch_all(*, actor: str, now: datetime, reason: str) -> list[KillResult]:
    """Run the kill switch on every account: cancel all, close all, SAFE and paused; audited per account.

    Intended role: operator, after a confirmation step. SAFE and paused are set first, so they hold
    even when no broker answers; each account's outcome (cancelled, closed, failed) is audited, and
    one account's broker error does not spare the others.
    """
    reason = _reason(reason, required=True, what="the kill switch")
    config, _ = _config_set({"mode": Mode.SAFE, "paused": True}, actor=actor, now=now, reason=reason)
    results = []
    for account in Account.objects.order_by("pk"):
        try:
            report = kill_switch(account=account, broker=broker_for(account, config), actor=actor, now=now,
                                 reason=reason)
            result = KillResult(account.name, account.broker, report.cancelled, report.flattened, report.errors)
        except Exception as exc:  # noqa: BLE001  a broken venue must not spare the other accounts
            logger.exception("kill switch on %s failed", account.name)
            result = KillResult(account.name, account.broker, [], [], [f"kill switch failed: {exc}"])
        with transaction.atomic():
            audit_append(kind=AuditRecord.Kind.ORDER, actor=actor, subject=f"account:{account.name}", now=now,
                         body={"action": "kill_switch", "reason": reason, "cancelled": result.cancelled,
                               "flattened": result.flattened, "errors": result.errors})
        results.append(result)
    logger.critical("kill switch on every account by %s: %s", actor, reason)
    return results
