"""The execution loop: a long-running worker ticking every 1-3 s for one venue account.

Each tick: renew the engine lease (the dead man's switch: a second engine cannot start while it is
renewed, and a crashed engine's lease lapses), apply the user data stream's updates (or poll REST
per symbol every 5 s while the stream is stale), resolve orders of unknown outcome or lost, open
or grow the positions of entries that filled, reconcile with the venue every `reconcile_every` (and
at once after a fill), chase resting limit entries, bring each position's exits to the books
(the stop follows take-profit fills, moves to breakeven and trails after TP1; missing targets are
placed) and verify that every open position has its exchange stop (placing protection for a
position that has none, flattening one whose stop is still missing after the grace period). The clock and the sleep are passed in, so tests tick it by hand.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Callable

from decisions.selectors import trading_config_get
from analytics.services import ms_to_datetime
from dashboard.events import broadcast_on_commit
from execution.brokers.base import Broker, BrokerError, IpBanned
from execution.oms import OrderRejected
from execution.entries import entries_to_sync, entries_work, entry_position_sync
from execution.locks import leases_release_dead
from execution.models import Account, Order, Position
from execution.orders import order_resolve, orders_unresolved
from execution.protective import protection_place, protection_refresh, stop_verify
from execution.selectors import last_close
from execution.safety import engine_lease_acquire, engine_lease_release, engine_lease_renew
from execution.stream.applier import StreamApplier, StreamTick

logger = logging.getLogger(__name__)


@dataclass
class TickReport:
    at: datetime
    resolved: int = 0
    verified: dict[int, str] = field(default_factory=dict)     # position id -> verification status
    refreshed: dict[int, list[str]] = field(default_factory=dict)  # position id -> exits replaced or placed
    entries: dict[str, str] = field(default_factory=dict)      # entry order or decision -> what was done
    reconciled: bool = False
    errors: list[str] = field(default_factory=list)
    stream: StreamTick | None = None


class LeaseLost(RuntimeError):
    """Another engine took this account over: stop at once, without touching orders."""


@dataclass
class ExecutionLoop:
    account: Account
    broker: Broker
    holder: str
    reconcile: Callable[..., object] | None = None    # reconciliation_run(account=, broker=, now=, trigger=)
    reconcile_every: timedelta = timedelta(seconds=30)
    last_reconciled: datetime | None = None
    stream: StreamApplier | None = None     # the user data stream's updates; polls REST while it is stale
    banned_until_ms: int = 0                # the 418 ban already alerted

    def start(self, now: datetime) -> None:
        """Take the engine lease and reconcile once before the first tick (raise if another engine runs)."""
        engine_lease_acquire(account=self.account, holder=self.holder, now=now)
        leases_release_dead(account=self.account)
        if self.reconcile is not None:
            self.reconcile(account=self.account, broker=self.broker, now=now, trigger="startup")
            self.last_reconciled = now

    def tick(self, now: datetime) -> TickReport:
        """Run one round of order resolution, entries, reconciliation (when due) and protection."""
        if not engine_lease_renew(account=self.account, holder=self.holder, now=now):
            raise LeaseLost(f"engine lease of {self.account.name} taken over; {self.holder} stops")
        report = TickReport(now)
        config = trading_config_get()
        if self.stream is not None:
            report.stream = self.stream.tick(now)
            report.errors += report.stream.errors
        moved = bool(report.stream and report.stream.fills)
        for order in orders_unresolved(account=self.account, now=now):
            before = order.status
            report.resolved += self._guard(report, f"order {order.client_order_id}",
                                           lambda o=order: order_resolve(order=o, broker=self.broker, now=now))
            moved |= order.status != before
        self._entries_sync(report, now, config)
        # A fill or a resolved order changes positions the books learn from reconciliation: run it now,
        # before the protection round (the stop follows a take-profit fill in the same tick), not 30 s later.
        due = moved or self.last_reconciled is None or now - self.last_reconciled >= self.reconcile_every
        if self.reconcile is not None and due:
            self._guard(report, "reconciliation", lambda: self.reconcile(account=self.account, broker=self.broker,
                                                                        now=now, trigger="periodic"))
            self.last_reconciled, report.reconciled = now, True
        self._guard(report, "entries", lambda: report.entries.update(entries_work(
            account=self.account, broker=self.broker, now=now, price_of=lambda i: self._price(i, now), config=config)))
        # A market fallback, or a fill the chase's cancel learned, is protected in this tick's protection round.
        self._entries_sync(report, now, config)
        positions = list(Position.objects.filter(account=self.account, status=Position.Status.OPEN)
                         .select_related("instrument"))
        marks = self._marks(report) if positions else {}
        for position in positions:
            self._guard(report, f"position {position.pk}",
                        lambda p=position: self._protect(p, now, report, config, marks))
        if self.reconcile is not None and "closed" in report.verified.values():
            # A flatten's fill closes the position only once reconciliation books it: now, not 30 s later
            # (meanwhile every tick would flatten it again).
            self._guard(report, "reconciliation", lambda: self.reconcile(account=self.account, broker=self.broker,
                                                                        now=now, trigger="periodic"))
            self.last_reconciled, report.reconciled = now, True
        return report

    def _entries_sync(self, report: TickReport, now: datetime, config) -> None:
        for decision in entries_to_sync(self.account):
            position, change = entry_position_sync(decision=decision, account=self.account, now=now,
                                                   trail_atr_multiple=config.trail_atr_multiple)
            if change:
                report.entries[f"decision {decision.pk}"] = f"position {position.pk} {change}"

    def _price(self, instrument, now: datetime) -> Decimal | None:
        """Return the market price to chase: the venue's ticker where the broker reads one, else the last close."""
        read = getattr(self.broker, "market_price", None)
        if read is not None:
            return read(instrument.exchange_symbol)
        close = last_close(instrument=instrument, now=now)
        return close[0] if close else None

    def _marks(self, report: TickReport) -> dict[str, Decimal]:
        try:
            return {p.symbol: p.mark_price for p in self.broker.positions() if p.mark_price}
        except BrokerError as exc:   # no trail this tick; the stop itself stands
            report.errors.append(f"positions: {exc}")
            return {}

    def _protect(self, position: Position, now: datetime, report: TickReport, config,
                 marks: dict[str, Decimal]) -> int:
        has_stop_order = Order.objects.filter(account=self.account, instrument=position.instrument, leg="sl",
                                              intent_id__isnull=False, created_at__gte=position.opened_at).exists()
        if not has_stop_order:
            protection_place(position=position, broker=self.broker, now=now, tp_order_style=config.tp_order_style)
        else:
            notes = protection_refresh(position=position, broker=self.broker, now=now,
                                       mark_price=marks.get(position.instrument.exchange_symbol),
                                       breakeven=config.breakeven_after_tp1, tp_order_style=config.tp_order_style)
            if notes:
                report.refreshed[position.pk] = notes
        report.verified[position.pk] = stop_verify(position=position, broker=self.broker, now=now).status
        return 1

    def _guard(self, report: TickReport, what: str, work: Callable[[], object]) -> int:
        # One failing symbol or venue hiccup must not stop the protection of the others.
        try:
            work()
            return 1
        except (BrokerError, OrderRejected) as exc:   # a refusal is already recorded on its order
            report.errors.append(f"{what}: {exc}")
            if isinstance(exc, IpBanned) and exc.until_ms != self.banned_until_ms:
                self.banned_until_ms = exc.until_ms      # one alert per ban, not one per request refused
                broadcast_on_commit("alert", {"level": "critical", "account": self.account.name,
                                              "message": f"IP banned (418): all REST halted until "
                                                         f"{ms_to_datetime(exc.until_ms):%H:%M:%S} UTC"})
            logger.warning("execution loop %s: %s: %s", self.account.name, what, exc)
            return 0

    def stop(self) -> None:
        """Release the engine lease."""
        engine_lease_release(account=self.account, holder=self.holder)
