"""Exchange-side protection of open positions: the stop, the take-profit ladder and their verification.

On a venue (testnet or live) every open position carries exactly one reduce-only STOP_MARKET of its
full size (mark-price trigger, in the Algo Order API) and its take-profit orders. `protection_place`
puts them there (idempotent: deterministic intent ids per position, leg and revision),
`stop_verify` checks the venue, not the books, and closes the position at market when its stop is
missing or the wrong size past the grace period. A stop refused as "would trigger immediately"
(-2021, -4142) means the price is already through it: close now.

The paper broker simulates these exits bar by bar instead (`execution.brokers.paper.ladder_step`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction

from dashboard.events import broadcast_on_commit
from decisions.risk.sizing import round_to_step
from execution.brokers.base import Broker, OrderNotFound, VenueOrder, WouldTriggerImmediately
from execution.crashpoints import crash_point
from execution.models import Order, Position
from execution.oms import OrderIntent, OrderRejected, make_intent_id
from execution.orders import audit_order, order_place

logger = logging.getLogger(__name__)
STOP_GRACE = timedelta(seconds=5)
STOP_TYPES = frozenset({"stop_market", "stop"})


@dataclass(frozen=True, slots=True)
class Verification:
    status: str                 # "ok", "waiting", "closed", "flat"
    detail: str


def _exit_side(position: Position) -> str:
    return "sell" if position.side == "LONG" else "buy"


def _intent(position: Position, leg: str, type_: str, quantity: Decimal, trigger: Decimal | None,
            revision: int = 0) -> OrderIntent:
    return OrderIntent(make_intent_id("protect", position.pk, leg, revision), leg, position.instrument.symbol,
                       _exit_side(position), type_, quantity, trigger_price=trigger, reduce_only=True)


def _place(position: Position, intent: OrderIntent, broker: Broker, now: datetime) -> Order:
    order, _ = order_place(account=position.account, instrument=position.instrument, intent=intent, broker=broker,
                           reference_price=intent.trigger_price or position.entry_price, now=now,
                           decision=position.decision)
    return order


def protection_place(*, position: Position, broker: Broker, now: datetime,
                     tp_order_style: str = "take_profit_market") -> list[Order]:
    """Place the position's stop and its unfilled take-profits on the venue; close at once if the stop is past."""
    crash_point("protect.before_stop")
    placed = []
    try:
        placed.append(_place(position, _intent(position, "sl", "stop_market", position.quantity,
                                               position.stop_price), broker, now))
    except WouldTriggerImmediately as exc:
        position_flatten(position=position, broker=broker, now=now, reason=f"stop refused: {exc}")
        return placed
    step = position.instrument.step_size
    targets = [t for t in position.take_profits if not t.get("filled")]
    left = position.quantity
    for i, target in enumerate(targets):
        last = i == len(targets) - 1
        quantity = left if last else min(left, round_to_step(position.initial_quantity * Decimal(target["share"]),
                                                             step))
        if quantity <= 0:
            continue
        left -= quantity
        leg = f"tp{position.take_profits.index(target) + 1}"
        try:
            placed.append(_place(position, _intent(position, leg, tp_order_style, quantity,
                                                   Decimal(str(target["price"]))), broker, now))
        except OrderRejected as exc:  # a missing target costs profit, not safety: record and go on
            logger.warning("take-profit %s of position %s refused: %s", leg, position.pk, exc)
    return placed


def _venue_stops(position: Position, broker: Broker) -> list[VenueOrder]:
    symbol = position.instrument.exchange_symbol
    return [o for o in broker.open_orders(symbol) if o.symbol == symbol and o.type in STOP_TYPES
            and o.reduce_only and o.side == _exit_side(position)]


def stop_verify(*, position: Position, broker: Broker, now: datetime) -> Verification:
    """Check that the venue holds an active stop covering the position; flatten if not, past 5 s.

    The right stop is one reduce-only stop of exactly the position's size; duplicates are cancelled.
    A larger reduce-only stop still protects (it cannot close more than the position) and passes
    with "resize due". A smaller one, or none, past the grace period means the position is closed.
    """
    position.refresh_from_db()
    if position.status != Position.Status.OPEN or position.quantity <= 0:
        return Verification("flat", "position closed")
    stops = _venue_stops(position, broker)
    right = [s for s in stops if s.quantity - s.filled == position.quantity]
    if len(right) >= 1:
        for extra in (s for s in stops if s is not right[0]):  # a duplicate or stale stop: cancel it
            _cancel_quietly(broker, extra)
        return Verification("ok", f"stop {right[0].client_order_id} for {position.quantity}")
    covering = [s for s in stops if s.quantity - s.filled > position.quantity]
    if covering:
        # A larger reduce-only stop (left from before a partial exit) still closes the whole position
        # and no more: protected. Reconciliation resizes it; flattening here would be the worse error.
        return Verification("ok", f"stop {covering[0].client_order_id} of {covering[0].quantity - covering[0].filled} "
                                  f"covers {position.quantity} (resize due)")
    sizes = ", ".join(str(s.quantity - s.filled) for s in stops) or "none"
    if now - position.opened_at < STOP_GRACE:
        return Verification("waiting", f"no stop of {position.quantity} yet (venue has {sizes})")
    position_flatten(position=position, broker=broker, now=now,
                     reason=f"no exchange stop of {position.quantity} {STOP_GRACE.seconds} s after entry "
                            f"(venue stops: {sizes})")
    return Verification("closed", f"flattened: venue stops {sizes}")


def _cancel_quietly(broker: Broker, order: VenueOrder) -> None:
    try:
        broker.cancel(order.client_order_id, order.symbol, conditional=order.conditional)
    except OrderNotFound:
        pass


def position_flatten(*, position: Position, broker: Broker, now: datetime, reason: str) -> Order | None:
    """Close the whole position reduce-only at market, cancel its exits on the venue, and alert."""
    logger.critical("flattening position %s (%s %s %s): %s", position.pk, position.side, position.quantity,
                    position.instrument, reason)
    symbol = position.instrument.exchange_symbol
    for order in broker.open_orders(symbol):
        if order.reduce_only and order.client_order_id.startswith("tb-"):
            _cancel_quietly(broker, order)
    intent = OrderIntent(make_intent_id("flatten", position.pk, position.quantity), "exit", position.instrument.symbol,
                         _exit_side(position), "market", position.quantity, reduce_only=True)
    order = _place(position, intent, broker, now)
    with transaction.atomic():
        audit_order(order, now, {"action": "flatten", "position": position.pk, "reason": reason[:200]})
        broadcast_on_commit("alert", {"level": "critical", "position": position.pk, "instrument": str(position.instrument),
                                      "message": f"position flattened: {reason}"})
    return order
