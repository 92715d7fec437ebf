"""Book what the user stream reports, and poll REST per symbol while the stream cannot be trusted.

Both paths end in the same writes, `order_apply_report` (state through the state machine, each fill
once: Fill is unique per order and trade id) and `order_apply_venue` when the venue reports fills the
update did not carry. UserStream's thread only queues updates (`enqueue`); `tick` applies them and
polls in the caller's thread, the execution loop's, which owns the database connection.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from queue import Empty, SimpleQueue

from django.db.models import Min

from execution.brokers.base import (Broker, BrokerError, ExecutionReport, FillReport, OrderNotFound, VenueBalance,
                                    VenueOrder, VenuePosition)
from execution.models import Account, Order
from execution.order_states import VENUE_STATES, IllegalTransition, OrderState, transition
from execution.orders import order_apply_report, order_apply_venue
from execution.stream.health import StreamHealth, StreamPolicy

logger = logging.getLogger(__name__)

# Acknowledged and working at the venue: the orders a poll asks about. Orders being sent, of unknown
# outcome or lost belong to order_send and order_resolve (their updates from the stream still apply).
POLLED_STATES = (OrderState.ACCEPTED, OrderState.TRIGGERED, OrderState.PARTIALLY_FILLED, OrderState.PENDING_CANCEL)
TRADE_LOOKBACK_MS = 60_000        # trades are read from a minute before the oldest working order


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass
class Pending:
    """What the stream said about one client order id since the last tick."""

    venues: list[VenueOrder] = field(default_factory=list)
    fills: list[FillReport] = field(default_factory=list)


@dataclass
class StreamTick:
    at: datetime
    stale: bool = False
    orders: int = 0                                          # orders written
    fills: int = 0                                           # fills booked
    polled: list[str] = field(default_factory=list)          # symbols read over REST
    errors: list[str] = field(default_factory=list)


class StreamApplier:
    """One account's stream updates into the books; REST polls stand in while the stream is stale."""

    def __init__(self, *, account: Account, broker: Broker, policy: StreamPolicy = StreamPolicy()):
        self.account = account
        self.broker = broker
        self.health = StreamHealth(policy=policy)
        self.positions: dict[str, VenuePosition] = {}      # the latest the stream reported, per venue symbol
        self.balance: VenueBalance | None = None
        self.last_trade_ms: dict[str, int] = {}            # newest trade seen per venue symbol
        self._queue: SimpleQueue = SimpleQueue()
        self._retry: dict[str, Pending] = {}

    def enqueue(self, kind: str, payload: object, received_ms: int) -> None:
        """Queue one update from the stream thread (UserStream's `on_update`); thread-safe, never raises."""
        self._queue.put((kind, payload, received_ms))

    def tick(self, now: datetime) -> StreamTick:
        """Apply the queued updates, then poll every symbol whose poll is due; return what happened."""
        report = StreamTick(now)
        pending = self._drain()
        self._apply_pending(pending, now, report)
        now_ms = _ms(now)
        report.stale = self.health.is_stale(now_ms)
        for symbol, working_since_ms in self._working_symbols().items():
            if self.health.poll_due(symbol, now_ms, working_since_ms):
                self._guard(report, f"poll {symbol}", lambda s=symbol: self.poll(s, now, report))
        return report

    # -- the stream -----------------------------------------------------------------------------

    def _drain(self) -> dict[str, Pending]:
        pending, self._retry = self._retry, {}
        while True:
            try:
                kind, payload, received_ms = self._queue.get_nowait()
            except Empty:
                return pending
            self._note(kind, payload, received_ms, pending)

    def _note(self, kind: str, payload, received_ms: int, pending: dict[str, Pending]) -> None:
        if kind == "connected":
            self.health = self.health.with_connected(received_ms, payload)
        elif kind == "disconnected":
            self.health = self.health.with_disconnected(received_ms)
        elif kind == "heartbeat":
            self.health = self.health.with_event(received_ms, payload)
        else:
            self.health = self.health.with_event(received_ms)
            if kind == "order":
                pending.setdefault(payload.client_order_id, Pending()).venues.append(payload)
            elif kind == "fill":
                pending.setdefault(payload.client_order_id, Pending()).fills.append(payload)
            elif kind == "position":
                self.positions[payload.symbol] = payload
            elif kind == "balance":
                self.balance = payload

    def _apply_pending(self, pending: dict[str, Pending], now: datetime, report: StreamTick) -> None:
        orders = Order.objects.filter(account=self.account, client_order_id__in=list(pending)).select_related(
            "instrument")
        for order in orders:
            updates = pending[order.client_order_id]
            # A triggered stop trades through a plain order of its own: only the algo updates carry
            # the stop's state; the plain order's fills still belong to it.
            venues = [v for v in updates.venues if v.conditional or not order.conditional]
            venue = venues[-1] if venues else None
            try:
                self._apply(order, venue, updates.fills, now, report)
            except BrokerError as exc:
                self._retry[order.client_order_id] = updates      # the venue read failed: try again next tick
                report.errors.append(f"order {order.client_order_id}: {exc}")
                logger.warning("user stream: order %s not applied: %s", order.client_order_id, exc)

    # -- REST while stale -----------------------------------------------------------------------

    def poll(self, symbol: str, now: datetime, report: StreamTick | None = None) -> None:
        """Read `symbol`'s open orders and recent trades over REST and book them like stream updates."""
        report = report if report is not None else StreamTick(now)
        now_ms = _ms(now)
        working = list(Order.objects.filter(account=self.account, instrument__exchange_symbol=symbol,
                                            status__in=POLLED_STATES).select_related("instrument"))
        if working:
            oldest_ms = min(_ms(o.created_at) for o in working) - TRADE_LOOKBACK_MS
            since_ms = max(self.last_trade_ms.get(symbol, 0), oldest_ms)
            listed = {o.client_order_id: o for o in self.broker.open_orders(symbol)}
            fills: dict[str, list[FillReport]] = defaultdict(list)
            for fill in self.broker.trades(symbol, since_ms):
                fills[fill.client_order_id].append(fill)
            late = Order.objects.filter(account=self.account, client_order_id__in=list(fills)).exclude(
                pk__in=[o.pk for o in working]).select_related("instrument")
            for order in [*working, *late]:
                venue = listed.get(order.client_order_id)
                if venue is None and order.status in POLLED_STATES:
                    venue = self._fetch(order, symbol)
                self._apply(order, venue, fills.get(order.client_order_id, []), now, report)
        self.health = self.health.with_poll(symbol, now_ms)
        report.polled.append(symbol)

    def _fetch(self, order: Order, symbol: str) -> VenueOrder | None:
        """Return the venue's view of an order that left the book; None when it says it has none."""
        try:
            return self.broker.fetch_order(order.client_order_id, symbol, conditional=order.conditional)
        except OrderNotFound:
            return None     # counting misses towards "lost" is order_resolve's business

    def _working_symbols(self) -> dict[str, int]:
        """Return each symbol with working orders and when the oldest of them was created (ms)."""
        rows = (Order.objects.filter(account=self.account, status__in=POLLED_STATES)
                .order_by().values("instrument__exchange_symbol").annotate(oldest=Min("created_at")))
        return {row["instrument__exchange_symbol"]: _ms(row["oldest"]) for row in rows}

    # -- the one write path ---------------------------------------------------------------------

    def _apply(self, order: Order, venue: VenueOrder | None, fills: list[FillReport], now: datetime,
               report: StreamTick) -> None:
        """Bring `order` up to `venue` and `fills`; write nothing when neither says anything new."""
        if venue is not None and not _may_move(order.status, venue.status):
            # Older than the books (the send's reply was read first) or a status unknown here:
            # the fills still count; reconciliation settles a real disagreement.
            logger.debug("order %s: stream says %s, books %s; state kept", order.client_order_id, venue.status,
                         order.status)
            venue = None
        symbol = order.instrument.exchange_symbol
        for fill in fills:
            self.last_trade_ms[symbol] = max(self.last_trade_ms.get(symbol, 0), fill.ts_ms)
        booked = set(order.fills.values_list("trade_id", flat=True))
        new = list({f.trade_id: f for f in fills if f.trade_id not in booked}.values())
        booked_qty = order.filled_quantity + sum((f.quantity for f in new), Decimal(0))
        fills_before = len(booked)
        if venue is not None and _venue_filled(venue) > booked_qty:
            # Fills the update did not carry (a stop's trades, a dropped event): the trade list has them.
            order = order_apply_venue(order=order, venue=venue, broker=self.broker, now=now)
        elif venue is not None and (new or venue.status != order.status):
            order = order_apply_report(order=order, now=now, report=ExecutionReport(
                order.client_order_id, venue.status, tuple(new), venue.exchange_order_id))
        elif venue is None and new:
            status = OrderState.FILLED if booked_qty >= order.quantity else OrderState.PARTIALLY_FILLED
            order = order_apply_report(order=order, now=now,
                                       report=ExecutionReport(order.client_order_id, status, tuple(new)))
        else:
            return
        report.orders += 1
        report.fills += order.fills.count() - fills_before

    def _guard(self, report: StreamTick, what: str, work) -> None:
        # One symbol's failing poll must not stop the others; it is retried at the next tick.
        try:
            work()
        except BrokerError as exc:
            report.errors.append(f"{what}: {exc}")
            logger.warning("user stream %s: %s: %s", self.account.name, what, exc)


def _may_move(current: str, target: str) -> bool:
    """Return True when the state machine lets an order in `current` take the venue's `target`."""
    if target not in VENUE_STATES:
        return False
    try:
        transition(current, target)
    except IllegalTransition:
        return False
    return True


def _venue_filled(venue: VenueOrder) -> Decimal:
    """Return what the venue has filled; a finished conditional order may report none of its own."""
    if venue.status == OrderState.FILLED and not venue.filled:
        return venue.quantity
    return venue.filled
