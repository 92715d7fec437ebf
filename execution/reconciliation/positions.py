"""Reconciliation actions on positions and their protection: adopt the venue's size, restore exits.

Restored and resized exits go through `order_place` with the intent id ("protect", position id, leg,
revision) that execution.protective uses, so a repeated or concurrent run finds the same order and
sends nothing. The revision counts the position's earlier orders of that leg whose outcome is known;
one still unresolved (submitted, unknown) is reused rather than doubled, and mark_lost resolves it.

A restore_stop without a planned trigger price (a position the books lacked, adopted in this run)
uses an emergency stop: the position's stop_price, which adoption sets to the venue's entry price
2 % against the position (EMERGENCY_STOP_FRACTION).
"""
from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from django.db.models import Sum

from dashboard.events import broadcast_on_commit
from decisions.risk.sizing import round_to_tick
from decisions.selectors import trading_config_get
from execution.brokers.base import BrokerError, WouldTriggerImmediately
from execution.brokers.paper import position_pnl
from execution.entries import entries_to_sync, entry_position_sync
from execution.funding import fifo_position_trip
from execution.models import Fill, Position
from execution.oms import OrderIntent, OrderRejected, make_intent_id
from execution.orders import audit_order, order_apply_venue, order_place
from execution.protective import WORKING, exit_revision, position_flatten
from execution.reconcile import Action
from execution.reconciliation.context import Context, Outcome
from execution.reconciliation.views import position_exit_side
from execution.services import position_payload

logger = logging.getLogger(__name__)
EMERGENCY_STOP_FRACTION = Decimal("0.02")
# Who closed a position, from the origins the core names; the first that applies wins.
EXIT_ORIGINS = ("liquidation", "adl", "settlement", "manual")
EXIT_LEG_REASONS = (("sl", "stop"), ("tp", "target"), ("exit", "exit"), ("external", "manual"))


def emergency_stop_price(side: str, entry_price: Decimal, tick_size: Decimal) -> Decimal:
    """Return the stop for a position nobody planned: 2 % against it from the entry, on the tick grid."""
    factor = 1 - EMERGENCY_STOP_FRACTION if side == "LONG" else 1 + EMERGENCY_STOP_FRACTION
    return round_to_tick(entry_price * factor, tick_size)


def _closing_fills(position: Position):
    return Fill.objects.filter(order__account=position.account_id, order__instrument=position.instrument_id,
                               order__side=position_exit_side(position), ts__gte=position.opened_at)


def _exit_reason(position: Position, cause: str) -> str:
    origins = set(cause.split(","))
    for origin in EXIT_ORIGINS:
        if origin in origins:
            return origin
    last = _closing_fills(position).select_related("order").order_by("-ts").first()
    if last is not None:
        for prefix, reason in EXIT_LEG_REASONS:
            if last.order.leg.startswith(prefix):
                return reason
    return "unexplained" if cause == "unexplained" else "reconciled"


def _book_reduction(position: Position, quantity: Decimal) -> None:
    # The realised PnL is the position's round trip in the venue's fills, FIFO, after fees, plus the
    # funding booked on it. Without its fills (not booked yet), the part the venue closed is valued at
    # the average of the closing fills booked since entry, gross, until the fills arrive.
    totals = _closing_fills(position).aggregate(quantity=Sum("quantity"))
    if not totals["quantity"]:
        return
    rows = _closing_fills(position).values_list("quantity", "price")
    exit_price = sum((q * p for q, p in rows), Decimal(0)) / totals["quantity"]
    position.exit_price = exit_price
    trip = fifo_position_trip(position)
    if trip is not None and trip.book.closings:
        position.realized_pnl_usdt = trip.book.net_realized_usdt + position.funding_usdt
    else:
        position.realized_pnl_usdt += position_pnl(position.side, quantity, position.entry_price, exit_price)


def _position_close(position: Position, cause: str, now: datetime) -> str:
    reason = _exit_reason(position, cause)
    _book_reduction(position, position.quantity)
    position.quantity, position.status, position.open_key = Decimal(0), Position.Status.CLOSED, None
    position.closed_at, position.exit_reason = now, reason[:16]
    position.save()
    broadcast_on_commit("position", position_payload(position))
    return f"closed position {position.pk} ({reason})"


def _position_from_entry(ctx: Context, instrument, quantity: Decimal) -> Position | None:
    # An entry of ours whose reply was lost (or that filled after its send returned) is the books'
    # trade with the decision's stop and targets, not an external one with an emergency stop.
    side = "LONG" if quantity > 0 else "SHORT"
    for decision in entries_to_sync(ctx.account):
        if decision.instrument_id == instrument.pk and decision.action == side:
            position, _ = entry_position_sync(decision=decision, account=ctx.account, now=ctx.now,
                                              trail_atr_multiple=trading_config_get().trail_atr_multiple)
            if position is not None:
                return position
    return None


def _position_adopt(ctx: Context, symbol: str, quantity: Decimal) -> str:
    # The books lack it: decision=None marks it external. No target is planned (target_price 0).
    instrument = ctx.instrument(symbol)
    position = _position_from_entry(ctx, instrument, quantity)
    if position is not None:
        return (f"opened position {position.pk} {position.side} {position.quantity} from the fills of decision "
                f"{position.decision_id}'s entry")
    held = ctx.venue_position(symbol)
    side = "LONG" if quantity > 0 else "SHORT"
    entry = held.entry_price if held is not None else Decimal(0)
    position = Position.objects.create(
        account=ctx.account, instrument=instrument, decision=None, side=side, open_key=instrument.pk,
        quantity=abs(quantity), initial_quantity=abs(quantity), entry_price=entry,
        stop_price=emergency_stop_price(side, entry, instrument.tick_size) if entry else Decimal(0),
        target_price=Decimal(0), take_profits=[], opened_at=ctx.now)
    broadcast_on_commit("position", position_payload(position))
    return f"opened external position {position.pk} {side} {abs(quantity)} @ {entry}"


def adopt_position_change(ctx: Context, action: Action) -> Outcome:
    """Make the books' position the venue's: resize, close (with who closed it) or adopt one the books lack."""
    position, venue_qty = ctx.open_position(action.symbol), action.quantity
    notes, closed = [], False
    if position is not None:
        same_side = venue_qty != 0 and (venue_qty > 0) == (position.side == "LONG")
        if same_side:
            before = position.quantity
            if abs(venue_qty) < before:
                _book_reduction(position, before - abs(venue_qty))
            else:  # added to outside the books: the venue's average entry holds for the whole
                held = ctx.venue_position(action.symbol)
                position.entry_price = held.entry_price if held is not None else position.entry_price
            position.quantity = abs(venue_qty)
            position.initial_quantity = max(position.initial_quantity or before, position.quantity)
            position.save()
            broadcast_on_commit("position", position_payload(position))
            notes.append(f"position {position.pk} {before} -> {position.quantity} ({action.detail})")
        else:  # flat, or flipped to the other side
            notes.append(_position_close(position, action.detail, ctx.now))
            closed = True
    if (position is None or closed) and venue_qty != 0:
        notes.append(_position_adopt(ctx, action.symbol, venue_qty))
    return Outcome("applied", "; ".join(notes))


def _place_exit(ctx: Context, position: Position, leg: str, type_: str, quantity: Decimal,
                trigger: Decimal) -> Outcome:
    instrument = position.instrument
    intent = OrderIntent(make_intent_id("protect", position.pk, leg, exit_revision(position, leg)), leg,
                         instrument.symbol, position_exit_side(position), type_, quantity,
                         trigger_price=round_to_tick(trigger, instrument.tick_size), reduce_only=True)
    held = ctx.venue_position(instrument.exchange_symbol)
    reference = (held.mark_price if held is not None and held.mark_price else None) or position.entry_price
    try:
        order, sent = order_place(account=ctx.account, instrument=instrument, intent=intent, broker=ctx.broker,
                                  reference_price=reference, now=ctx.now, decision=position.decision)
    except WouldTriggerImmediately as exc:
        if leg == "sl":  # the price is through the stop already: a naked position closes now
            position_flatten(position=position, broker=ctx.broker, now=ctx.now,
                             reason=f"reconciliation could not restore the stop at {intent.trigger_price}: {exc}")
            return Outcome("applied", f"stop at {intent.trigger_price} would trigger immediately: position flattened")
        logger.warning("position %s: %s at %s refused, price already past it: %s", position.pk, leg,
                       intent.trigger_price, exc)
        broadcast_on_commit("alert", {"level": "warning", "position": position.pk, "instrument": str(instrument),
                                      "message": f"reconciliation could not restore {leg}: price past "
                                                 f"{intent.trigger_price}"})
        return Outcome("refused", f"{leg} at {intent.trigger_price} would trigger immediately: {exc}")
    except OrderRejected as exc:
        return Outcome("refused", f"{leg} rejected: {exc}")
    verb = "placed" if sent else "already placed"
    return Outcome("applied" if sent else "unchanged",
                   f"{verb} {order.client_order_id} {quantity} @ {intent.trigger_price} ({order.status})", order)


def restore_stop(ctx: Context, action: Action) -> Outcome:
    """Place the missing stop of a venue position (the planned price, else the emergency stop)."""
    position = ctx.open_position(action.symbol)
    if position is None:
        return Outcome("skipped", "no open position in the books to protect")
    trigger = action.trigger_price
    if trigger is None:
        trigger = position.stop_price or emergency_stop_price(position.side, position.entry_price,
                                                              position.instrument.tick_size)
    return _place_exit(ctx, position, "sl", "stop_market", action.quantity, trigger)


def resize_stop(ctx: Context, action: Action) -> Outcome:
    """Replace a stop of the wrong size: place the right one first, then cancel the old one."""
    position = ctx.open_position(action.symbol)
    if position is None:
        return Outcome("skipped", "no open position in the books to protect")
    placed = _place_exit(ctx, position, "sl", "stop_market", action.quantity,
                         action.trigger_price or position.stop_price)
    new = placed.order
    if new is None or new.status not in WORKING or new.client_order_id == action.client_order_id:
        return Outcome(placed.status, f"{placed.note}; kept {action.client_order_id}")
    try:
        venue = ctx.broker.cancel(action.client_order_id, action.symbol, conditional=action.conditional)
    except BrokerError as exc:   # two stops for a while: the next run cancels the duplicate
        return Outcome("applied", f"{placed.note}; cancel of {action.client_order_id} failed: {exc}", new)
    old = ctx.order(action.client_order_id)
    if old is not None:
        order_apply_venue(order=old, venue=venue, broker=ctx.broker, now=ctx.now)
        audit_order(old, ctx.now, {"action": "replaced", "by": new.client_order_id, "run": ctx.run.pk})
    return Outcome("applied", f"{placed.note}; cancelled {action.client_order_id} ({venue.status})", new)


def restore_target(ctx: Context, action: Action) -> Outcome:
    """Place a planned take-profit the venue does not hold."""
    position = ctx.open_position(action.symbol)
    if position is None:
        return Outcome("skipped", "no open position in the books")
    if action.trigger_price is None:
        return Outcome("skipped", f"{action.leg} has no planned price")
    return _place_exit(ctx, position, action.leg, "take_profit_market", action.quantity, action.trigger_price)
