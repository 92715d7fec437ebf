"""Engine safety: one engine per account, start-up assertions, the kill switch and graceful shutdown.

- `engine_lease_acquire` lets one engine run per account; a second refuses to start while the
  first renews its lease (every tick). A crashed engine's lease expires after `ENGINE_TTL`.
- `startup_problems` checks the venue against the configuration before any order: one-way position
  mode, the configured leverage and margin mode per symbol, a key that can read the futures
  account, and a clock within `max_skew_ms` of the venue's.
- `kill_switch` cancels every order of ours, closes every position reduce-only at market and holds
  the bot in SAFE and paused, audited. `shutdown` either flattens or leaves positions protected.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q

from dashboard.events import broadcast_on_commit
from decisions.audit_services import audit_append
from decisions.models import AuditRecord, Mode, TradingConfig
from execution.brokers.base import Broker, BrokerError, OrderNotFound
from execution.locks import holder_dead
from execution.models import Account, EngineLease, Order, Position
from execution.oms import is_ours
from execution.protective import position_flatten, stop_verify

logger = logging.getLogger(__name__)
ENGINE_TTL = timedelta(seconds=30)


class EngineAlreadyRunning(RuntimeError):
    """Another engine holds this account: stop this one (two engines would double every order)."""


class StartupCheckFailed(RuntimeError):
    """The venue is not set up as configured: fix the account or the configuration, then start again."""


def engine_lease_acquire(*, account: Account, holder: str, now: datetime, ttl: timedelta = ENGINE_TTL) -> None:
    """Take the account's engine lease or raise EngineAlreadyRunning naming the holder."""
    lease, _ = EngineLease.objects.get_or_create(account=account)
    free = Q(holder="") | Q(expires_at__lt=now) | Q(holder=holder)
    if lease.holder and holder_dead(lease.holder):
        # The last engine of this host died (kill -9, power cut): restart at once, not after its TTL.
        free |= Q(holder=lease.holder)
    taken = EngineLease.objects.filter(free, pk=lease.pk).update(holder=holder, started_at=now, heartbeat_at=now,
                                                                 expires_at=now + ttl)
    if not taken:
        lease.refresh_from_db()
        raise EngineAlreadyRunning(f"an engine ({lease.holder}) already runs account {account.name}; its lease "
                                   f"lasts until {lease.expires_at:%Y-%m-%d %H:%M:%S} UTC unless renewed")


def engine_lease_renew(*, account: Account, holder: str, now: datetime, ttl: timedelta = ENGINE_TTL) -> bool:
    """Extend this engine's lease (the dead man's switch); False when another engine has taken it over."""
    return EngineLease.objects.filter(account=account, holder=holder).update(heartbeat_at=now,
                                                                              expires_at=now + ttl) == 1


def engine_lease_release(*, account: Account, holder: str) -> None:
    """Give the lease back on a clean stop."""
    EngineLease.objects.filter(account=account, holder=holder).update(holder="", expires_at=None)


@dataclass(frozen=True, slots=True)
class Expectations:
    leverage: int
    margin_mode: str = "cross"
    max_skew_ms: int = 1_000
    symbols: tuple[str, ...] = ()


def startup_problems(*, broker, expected: Expectations, now_ms: int) -> list[str]:
    """Return what differs between the venue and the configuration; empty when trading may start."""
    problems = []
    try:
        broker.balance()
    except BrokerError as exc:
        return [f"the API key cannot read the futures account: {exc}"]
    skew = abs(broker.server_time_ms() - now_ms)
    if skew > expected.max_skew_ms:
        problems.append(f"clock differs from the venue by {skew} ms (limit {expected.max_skew_ms} ms)")
    mode = broker.position_mode()
    if mode != "one-way":
        problems.append(f"position mode is {mode}; the engine needs one-way")
    for symbol in expected.symbols:
        leverage = broker.leverage(symbol)
        if leverage != expected.leverage:
            problems.append(f"{symbol} leverage is {leverage}x, configured {expected.leverage}x")
        margin = broker.margin_mode(symbol)
        if margin != expected.margin_mode:
            problems.append(f"{symbol} margin mode is {margin}, configured {expected.margin_mode}")
    return problems


def startup_check(*, broker, expected: Expectations, now_ms: int) -> None:
    """Raise StartupCheckFailed listing every problem, or return when the venue is as configured."""
    problems = startup_problems(broker=broker, expected=expected, now_ms=now_ms)
    if problems:
        raise StartupCheckFailed("; ".join(problems))


@dataclass
class KillReport:
    cancelled: list[str] = field(default_factory=list)
    flattened: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _hold_safe(*, actor: str, now: datetime, reason: str) -> None:
    with transaction.atomic():
        config = TradingConfig.objects.select_for_update().order_by("pk").first() or TradingConfig.objects.create()
        before = config.mode
        if before == Mode.SAFE and config.paused:
            return  # already held (the kill switch of another account got here first): nothing to record
        TradingConfig.objects.filter(pk=config.pk).update(mode=Mode.SAFE, paused=True)
        audit_append(kind=AuditRecord.Kind.MODE_CHANGE, actor=actor, subject=f"config:{config.pk}", now=now,
                     body={"from": before, "to": Mode.SAFE, "paused": True, "reason": reason})
        broadcast_on_commit("status", {"mode": Mode.SAFE, "paused": True, "reason": reason})


def kill_switch(*, account: Account, broker: Broker, actor: str, now: datetime, reason: str = "kill switch") -> KillReport:
    """Hold SAFE and paused, cancel every order of ours on the venue and close every position at market."""
    _hold_safe(actor=actor, now=now, reason=reason)
    report = KillReport()
    if getattr(broker, "simulates_exits", False):
        return _paper_flatten(account=account, broker=broker, now=now, report=report)
    for order in broker.open_orders():
        if not is_ours(order.client_order_id):
            continue
        try:
            broker.cancel(order.client_order_id, order.symbol, conditional=order.conditional)
            report.cancelled.append(order.client_order_id)
        except OrderNotFound:
            pass
        except BrokerError as exc:
            report.errors.append(f"cancel {order.client_order_id}: {exc}")
    for position in Position.objects.filter(account=account, status=Position.Status.OPEN).select_related("instrument"):
        try:
            position_flatten(position=position, broker=broker, now=now, reason=f"{reason} by {actor}")
            report.flattened.append(position.pk)
        except BrokerError as exc:
            report.errors.append(f"flatten position {position.pk}: {exc}")
    logger.critical("kill switch by %s on %s: %d orders cancelled, %d positions flattened, %d errors", actor,
                    account.name, len(report.cancelled), len(report.flattened), len(report.errors))
    return report


def _paper_flatten(*, account: Account, broker, now: datetime, report: KillReport) -> KillReport:
    """Cancel the paper venue's resting orders, then close paper positions at the last closed price."""
    from execution.brokers.paper import LadderExit
    from execution.orders import order_apply_venue
    from execution.selectors import last_close
    from execution.services import position_reduce

    for order in Order.objects.filter(account=account, status__in=("accepted", "partially_filled")):
        try:
            order_apply_venue(order=order, venue=broker.cancel(order.client_order_id, order.instrument.symbol),
                              broker=broker, now=now)
            report.cancelled.append(order.client_order_id)
        except BrokerError as exc:
            report.errors.append(f"cancel {order.client_order_id}: {exc}")
    for position in Position.objects.filter(account=account, status=Position.Status.OPEN).select_related("instrument"):
        price = last_close(instrument=position.instrument, now=now)
        if price is None:
            report.errors.append(f"position {position.pk}: no closed candle to price the exit")
            continue
        position_reduce(position=position, broker=broker, exit_=LadderExit("exit", "stop", price[0], position.quantity),
                        now=now)
        report.flattened.append(position.pk)
    return report


def shutdown(*, account: Account, broker: Broker, now: datetime, flatten: bool, actor: str = "engine") -> None:
    """Stop trading: flatten every position, or leave each protected by a verified exchange stop."""
    if flatten:
        kill_switch(account=account, broker=broker, actor=actor, now=now, reason="shutdown (flatten)")
        return
    for position in Position.objects.filter(account=account, status=Position.Status.OPEN).select_related("instrument"):
        result = stop_verify(position=position, broker=broker, now=now)
        logger.info("shutdown: position %s %s", position.pk, result.detail)
