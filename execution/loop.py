"""The execution loop: a long-running worker ticking every 1-3 s for one venue account.

Each tick: renew the engine lease (the dead man's switch: a second engine cannot start while it is
renewed, and a crashed engine's lease lapses), apply the user data stream's updates (or poll REST
per symbol every 5 s while the stream is stale), resolve orders of unknown outcome or lost, verify
that every open position has its exchange stop (placing protection for a position that has none,
flattening one whose stop is still missing after the grace period), and reconcile with the venue
every `reconcile_every`. The clock and the sleep are passed in, so tests tick it by hand.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from execution.brokers.base import Broker, BrokerError
from execution.locks import leases_release_dead
from execution.models import Account, Order, Position
from execution.orders import order_resolve, orders_unresolved
from execution.protective import protection_place, stop_verify
from execution.safety import engine_lease_acquire, engine_lease_release, engine_lease_renew
from execution.stream.applier import StreamApplier, StreamTick

logger = logging.getLogger(__name__)


@dataclass
class TickReport:
    at: datetime
    resolved: int = 0
    verified: dict[int, str] = field(default_factory=dict)     # position id -> verification status
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

    def start(self, now: datetime) -> None:
        """Take the engine lease and reconcile once before the first tick (raise if another engine runs)."""
        engine_lease_acquire(account=self.account, holder=self.holder, now=now)
        leases_release_dead(account=self.account)
        if self.reconcile is not None:
            self.reconcile(account=self.account, broker=self.broker, now=now, trigger="startup")
            self.last_reconciled = now

    def tick(self, now: datetime) -> TickReport:
        """Run one round of order resolution, stop verification and (when due) reconciliation."""
        if not engine_lease_renew(account=self.account, holder=self.holder, now=now):
            raise LeaseLost(f"engine lease of {self.account.name} taken over; {self.holder} stops")
        report = TickReport(now)
        if self.stream is not None:
            report.stream = self.stream.tick(now)
            report.errors += report.stream.errors
        moved = False
        for order in orders_unresolved(account=self.account, now=now):
            before = order.status
            report.resolved += self._guard(report, f"order {order.client_order_id}",
                                           lambda o=order: order_resolve(order=o, broker=self.broker, now=now))
            moved |= order.status != before
        # An order that just resolved (found filled, or resent) changes positions the books only learn
        # from reconciliation: run it now, before the protection round, rather than up to 30 s later.
        due = moved or self.last_reconciled is None or now - self.last_reconciled >= self.reconcile_every
        if self.reconcile is not None and due:
            self._guard(report, "reconciliation", lambda: self.reconcile(account=self.account, broker=self.broker,
                                                                        now=now, trigger="periodic"))
            self.last_reconciled, report.reconciled = now, True
        for position in Position.objects.filter(account=self.account, status=Position.Status.OPEN):
            self._guard(report, f"position {position.pk}", lambda p=position: self._protect(p, now, report))
        return report

    def _protect(self, position: Position, now: datetime, report: TickReport) -> int:
        has_stop_order = Order.objects.filter(account=self.account, instrument=position.instrument, leg="sl",
                                              intent_id__isnull=False, created_at__gte=position.opened_at).exists()
        if not has_stop_order:
            protection_place(position=position, broker=self.broker, now=now)
        report.verified[position.pk] = stop_verify(position=position, broker=self.broker, now=now).status
        return 1

    def _guard(self, report: TickReport, what: str, work: Callable[[], object]) -> int:
        # One failing symbol or venue hiccup must not stop the protection of the others.
        try:
            work()
            return 1
        except BrokerError as exc:
            report.errors.append(f"{what}: {exc}")
            logger.warning("execution loop %s: %s: %s", self.account.name, what, exc)
            return 0

    def stop(self) -> None:
        """Release the engine lease."""
        engine_lease_release(account=self.account, holder=self.holder)
