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
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from django.db import transaction

from dashboard.events import broadcast_on_commit
from decisions.audit_services import ENGINE, audit_append
from decisions.models import AuditRecord
from decisions.risk.sizing import round_to_step, round_to_tick
from execution.brokers.base import Broker, OrderNotFound, VenueOrder, WouldTriggerImmediately
from execution.crashpoints import crash_point
from execution.models import Order, Position
from execution.oms import OrderIntent, OrderRejected, make_intent_id
from execution.order_states import OrderState
from execution.orders import audit_order, order_apply_venue, order_place

logger = logging.getLogger(__name__)
STOP_GRACE = timedelta(seconds=5)
STOP_TYPES = frozenset({"stop_market", "stop"})
UNRESOLVED = frozenset({OrderState.NEW, OrderState.SUBMITTED, OrderState.UNKNOWN})
WORKING = frozenset({OrderState.ACCEPTED, OrderState.TRIGGERED, OrderState.PARTIALLY_FILLED})
# A trailed stop is replaced on the venue only when it moves by at least this share of the trail
# distance: each replacement costs two requests, and a tick-by-tick trail would spend the budget.
TRAIL_MIN_STEP_FRACTION = Decimal("0.1")


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
    except OrderRejected as exc:
        # Recorded on the stop order; the position is open and the decision executed. The loop's
        # stop_verify closes it if no stop is in place when the grace period ends.
        logger.error("stop of position %s refused: %s", position.pk, exc)
        broadcast_on_commit("alert", {"level": "critical", "position": position.pk, "instrument": str(position.instrument),
                                      "message": f"stop refused: {exc}; closing unless a stop is in place within "
                                                 f"{STOP_GRACE.seconds} s"})
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
    current = [o.client_order_id for o in leg_orders(position, "sl") if o.status in WORKING]
    # The books' newest working stop first: after a replacement (even one whose cancel failed, so both
    # revisions are still working in the books) the older one is the duplicate to cancel.
    rank = {cid: n for n, cid in enumerate(reversed(current))}
    right = sorted((s for s in stops if s.quantity - s.filled == position.quantity),
                   key=lambda s: rank.get(s.client_order_id, len(rank)))
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
    # The quantity's text, normalised: 0.0100000000 from the database and 0.0100000000000000 in memory are one intent.
    intent = OrderIntent(make_intent_id("flatten", position.pk, f"{position.quantity.normalize():f}"), "exit",
                         position.instrument.symbol,
                         _exit_side(position), "market", position.quantity, reduce_only=True)
    order = _place(position, intent, broker, now)
    with transaction.atomic():
        audit_order(order, now, {"action": "flatten", "position": position.pk, "reason": reason[:200]})
        broadcast_on_commit("alert", {"level": "critical", "position": position.pk, "instrument": str(position.instrument),
                                      "message": f"position flattened: {reason}"})
    return order


def exit_revision(position: Position, leg: str) -> int:
    """Return the revision of the next `leg` order of `position`: past every one with a known outcome."""
    revision = 0
    while True:
        order = Order.objects.filter(intent_id=make_intent_id("protect", position.pk, leg, revision), leg=leg).first()
        if order is None or order.status in UNRESOLVED:
            return revision
        revision += 1


def leg_orders(position: Position, leg: str) -> list[Order]:
    """Return the position's protective orders of `leg`, every revision, oldest first."""
    ids = [make_intent_id("protect", position.pk, leg, r) for r in range(exit_revision(position, leg) + 1)]
    orders = {o.intent_id: o for o in Order.objects.filter(intent_id__in=ids, leg=leg)}
    return [orders[i] for i in ids if i in orders]


def targets_mark_filled(position: Position) -> bool:
    """Mark the targets whose take-profit order filled on the venue; return whether any changed."""
    changed = False
    for i, target in enumerate(position.take_profits):
        if not target.get("filled") and any(o.status == OrderState.FILLED for o in leg_orders(position, f"tp{i + 1}")):
            target["filled"], changed = True, True
    if changed:
        position.save(update_fields=["take_profits"])
    return changed


def trailed_stop(position: Position, mark_price: Decimal, *, breakeven: bool) -> Decimal | None:
    """Return the tightened stop once TP1 has filled (breakeven, then the trail), or None to keep it.

    Records the best price seen. The stop never loosens, and moves only by a step worth a replacement.
    """
    if not (position.take_profits and position.take_profits[0].get("filled")):
        return None
    long = position.side == "LONG"
    tighter = max if long else min
    best = mark_price if position.best_price is None else tighter(position.best_price, mark_price)
    if best != position.best_price:
        position.best_price = best
        position.save(update_fields=["best_price"])
    levels = [position.stop_price] + ([position.entry_price] if breakeven else [])
    tick = position.instrument.tick_size
    if position.trail_distance:
        trailed = best - position.trail_distance if long else best + position.trail_distance
        # Away from the market on both sides: floor for a long, ceiling for a short.
        levels.append((trailed / tick).to_integral_value(ROUND_FLOOR if long else ROUND_CEILING) * tick)
    new = tighter(levels)
    min_step = max(tick, (position.trail_distance or tick) * TRAIL_MIN_STEP_FRACTION)
    moved = new - position.stop_price if long else position.stop_price - new
    # The first move (to breakeven) goes through whatever its size: it is the one that locks the trade.
    first_move = breakeven and position.stop_price != position.entry_price and new == position.entry_price
    return new if moved > 0 and (moved >= min_step or first_move) else None


def _cancel_books(order: Order, broker: Broker, now: datetime) -> str:
    try:
        venue = broker.cancel(order.client_order_id, order.instrument.exchange_symbol, conditional=order.conditional)
    except OrderNotFound:
        return f"{order.client_order_id} gone already"
    order_apply_venue(order=order, venue=venue, broker=broker, now=now)
    return f"cancelled {order.client_order_id} ({order.status})"


def _replace(position: Position, leg: str, type_: str, quantity: Decimal, trigger: Decimal,
             old: list[Order], broker: Broker, now: datetime) -> list[str]:
    """Place the leg's next revision, then cancel the old ones: never a moment without the order."""
    new = _place(position, _intent(position, leg, type_, quantity, trigger, exit_revision(position, leg)),
                 broker, now)
    notes = [f"placed {new.client_order_id} {quantity} @ {trigger} ({new.status})"]
    if new.status in WORKING:
        notes += [_cancel_books(o, broker, now) for o in old if o.pk != new.pk]
    return notes


def _stop_refresh(position: Position, broker: Broker, now: datetime) -> list[str]:
    stops = [o for o in leg_orders(position, "sl") if o.status in WORKING | UNRESOLVED]
    if not stops or any(o.status in UNRESOLVED for o in stops):
        return []       # none placed yet (protection_place's job), or an outcome to resolve first
    trigger = round_to_tick(position.stop_price, position.instrument.tick_size)
    right = [o for o in stops if o.quantity - o.filled_quantity == position.quantity and o.trigger_price == trigger]
    if right:
        return []
    try:
        return _replace(position, "sl", "stop_market", position.quantity, trigger, stops, broker, now)
    except WouldTriggerImmediately as exc:
        position_flatten(position=position, broker=broker, now=now, reason=f"stop at {trigger} refused: {exc}")
        return [f"stop at {trigger} would trigger immediately: flattened"]


def _targets_refresh(position: Position, broker: Broker, now: datetime, tp_order_style: str) -> list[str]:
    notes, left = [], position.quantity
    open_targets = [(i, t) for i, t in enumerate(position.take_profits) if not t.get("filled")]
    for n, (i, target) in enumerate(open_targets):
        leg = f"tp{i + 1}"
        orders = leg_orders(position, leg)
        live = [o for o in orders if o.status in WORKING | UNRESOLVED]
        if any(o.filled_quantity > 0 or o.status in UNRESOLVED for o in live + orders[-1:]):
            left -= sum((o.quantity - o.filled_quantity for o in live), Decimal(0))
            continue    # partly taken, or its outcome is unknown: leave it be
        last = n == len(open_targets) - 1
        wanted = left if last else min(left, round_to_step(position.initial_quantity * Decimal(target["share"]),
                                                           position.instrument.step_size))
        left -= wanted
        price = Decimal(str(target["price"]))
        if wanted <= 0 or any(o.quantity == wanted and o.trigger_price == price for o in live):
            continue
        try:
            notes += _replace(position, leg, tp_order_style, wanted, price, live, broker, now)
        except OrderRejected as exc:  # a missing target costs profit, not safety
            notes.append(f"{leg} at {price} refused: {exc}")
    return notes


def protection_refresh(*, position: Position, broker: Broker, now: datetime, mark_price: Decimal | None = None,
                       breakeven: bool = True, tp_order_style: str = "take_profit_market") -> list[str]:
    """Bring the venue's exits of an open position to the books: size, trail and missing targets.

    After a take-profit fill the stop shrinks to the position; after TP1 it moves to breakeven and
    trails `trail_distance` behind the best mark price; an entry that filled further grows the stop
    and re-sizes the untouched targets; a target lost in a crash is placed. Every change places the
    new order first and cancels the old one after, so the position is never without its stop.
    """
    position.refresh_from_db()
    if position.status != Position.Status.OPEN or position.quantity <= 0:
        return []
    notes = ["targets filled: " + ",".join(str(i + 1) for i, t in enumerate(position.take_profits) if t.get("filled"))
             ] if targets_mark_filled(position) else []
    if mark_price is not None:
        new = trailed_stop(position, mark_price, breakeven=breakeven)
        if new is not None:
            notes.append(f"stop {position.stop_price} -> {new} (best {position.best_price})")
            position.stop_price = new
            position.save(update_fields=["stop_price"])
    notes += _stop_refresh(position, broker, now)
    notes += _targets_refresh(position, broker, now, tp_order_style)
    if notes:
        with transaction.atomic():
            audit_append(kind=AuditRecord.Kind.ORDER, actor=ENGINE, subject=f"position:{position.pk}",
                         body={"action": "protection_refresh", "notes": [n[:120] for n in notes]}, now=now)
    return notes
