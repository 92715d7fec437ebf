"""Reconciliation: compare the venue with the books and list the differences and what to do about each.

Pure: no Django, no I/O, no clock. The shell loads both views, calls `reconcile`, stores the result
as a reconciliation record and carries out the actions in the order given:

1. book_fill              facts first: book each trade id the books lack, once;
2. update_order_state     then make each known order say what the venue says;
3. adopt_external_order   record orders nobody here placed (manual, autoclose-*, adl_autoclose);
4. adopt_position_change  set the books' position to the venue's (liquidation, manual close);
5. restore_stop           protection next: a naked position is the largest risk;
6. resize_stop
7. restore_target
8. cancel_stray           then clean up: our exits on a flat symbol, duplicate stops;
9. mark_lost              count a miss for our live orders the venue does not list (the shell keeps the count);
10. balance_mismatch      report only.

Within one kind, actions are ordered by symbol, fill time, then client order or trade id. Actions set
values rather than add to them (a position becomes the venue's quantity, an order the venue's
state), so carrying them out and reconciling again finds nothing to do (tests/execution/test_reconcile.py).

An order state the books cannot reach from theirs (IllegalTransition) is a state_conflict difference
with no action: the operator decides, and the result is not clean.

Preconditions: both views spell symbols the same way (the shell maps them), and `OurView.orders` holds
every live order in the books plus every order whose client id the venue view mentions.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from execution.brokers.base import FillReport, VenueBalance, VenueOrder, VenuePosition
from execution.order_states import LIVE_STATES, IllegalTransition, OrderState, apply_venue_state
from execution.oms import is_ours, split_client_order_id

# Venue states in which an order still works (a triggered stop is about to fill: still protection).
ACTIVE_STATES = frozenset({OrderState.ACCEPTED, OrderState.TRIGGERED, OrderState.PARTIALLY_FILLED})
STOP_TYPES = frozenset({"stop", "stop_market", "trailing_stop_market"})
ENTRY_LEG_PREFIXES = ("entry", "chase")
EXIT_LEG_PREFIXES = ("sl", "tp", "exit")


@dataclass(frozen=True, slots=True)
class OurOrder:
    client_order_id: str
    symbol: str
    leg: str                       # "entry", "sl", "tp1" ...; "external" for adopted orders
    state: OrderState
    quantity: Decimal
    filled: Decimal = Decimal(0)
    conditional: bool = False      # placed through the Algo Order API


@dataclass(frozen=True, slots=True)
class ExpectedExit:
    """A stop or target that should be working for an open position."""

    leg: str                       # "sl", "tp1" ...
    side: str                      # "buy" or "sell"
    quantity: Decimal
    trigger_price: Decimal | None
    client_order_id: str = ""      # the order meant to carry it, once placed


@dataclass(frozen=True, slots=True)
class OurPosition:
    symbol: str
    quantity: Decimal              # signed: > 0 long, < 0 short
    exits: tuple[ExpectedExit, ...] = ()   # what should work now: filled targets are gone


@dataclass(frozen=True, slots=True)
class OurView:
    orders: tuple[OurOrder, ...] = ()
    booked_trade_ids: frozenset[tuple[str, str]] = frozenset()   # (venue symbol, trade id): ids are per symbol
    positions: tuple[OurPosition, ...] = ()
    wallet_usdt: Decimal | None = None


@dataclass(frozen=True, slots=True)
class SymbolFills:
    """The account's fills in one symbol since `since_ms`, as Broker.trades returns them."""

    symbol: str
    since_ms: int
    fills: tuple[FillReport, ...]


@dataclass(frozen=True, slots=True)
class VenueView:
    orders: tuple[VenueOrder, ...] = ()          # open orders, normal and conditional, plus any fetched by id
    positions: tuple[VenuePosition, ...] = ()
    fills: tuple[SymbolFills, ...] = ()
    balance: VenueBalance | None = None


class ActionKind(StrEnum):
    BOOK_FILL = "book_fill"
    UPDATE_ORDER_STATE = "update_order_state"
    ADOPT_EXTERNAL_ORDER = "adopt_external_order"
    ADOPT_POSITION_CHANGE = "adopt_position_change"
    RESTORE_STOP = "restore_stop"
    RESIZE_STOP = "resize_stop"
    RESTORE_TARGET = "restore_target"
    CANCEL_STRAY = "cancel_stray"
    MARK_LOST = "mark_lost"
    BALANCE_MISMATCH = "balance_mismatch"


class DifferenceKind(StrEnum):
    MISSING_FILL = "missing_fill"
    ORDER_STATE = "order_state"
    STATE_CONFLICT = "state_conflict"  # the venue's state is unreachable from ours: the operator decides
    EXTERNAL_ORDER = "external_order"
    POSITION = "position"
    MISSING_STOP = "missing_stop"
    STOP_SIZE = "stop_size"
    MISSING_TARGET = "missing_target"
    STRAY_ORDER = "stray_order"
    DUPLICATE_STOP = "duplicate_stop"
    ORDER_MISSING = "order_missing"
    BALANCE = "balance"


_RANK = {kind: rank for rank, kind in enumerate(ActionKind)}


@dataclass(frozen=True, slots=True)
class Difference:
    kind: DifferenceKind
    subject: str                   # client order id, trade id or symbol
    ours: str
    venue: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Action:
    kind: ActionKind
    symbol: str
    client_order_id: str = ""      # the order acted on; empty where the shell mints a new one
    state: OrderState | None = None
    quantity: Decimal | None = None  # filled (update), signed position (adopt), order size (restore, resize)
    side: str = ""
    leg: str = ""
    trigger_price: Decimal | None = None   # None on restore_stop: no stop was planned, the shell sets one
    conditional: bool = False
    fill: FillReport | None = None
    venue_order: VenueOrder | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    differences: tuple[Difference, ...]
    actions: tuple[Action, ...]
    clean: bool


_Found = list[tuple[Difference, Action | None]]
_Fills = list[tuple[str, FillReport]]   # (symbol, fill), each trade once, in time order


def reconcile(ours: OurView, venue: VenueView, *, balance_tolerance_usdt: Decimal = Decimal("0.01")) -> ReconcileResult:
    """Return the differences between the books and the venue and the actions that remove them."""
    fills = _unique_fills(venue)
    found: _Found = [
        *_missing_fills(ours, fills),
        *_order_states(ours, venue, fills),
        *_external_orders(ours, venue, fills),
        *_positions(ours, venue, fills),
        *_exits(ours, venue, fills),
        *_strays(venue),
        *_balance(ours, venue, balance_tolerance_usdt),
    ]
    found.sort(key=_sort_key)
    return ReconcileResult(tuple(d for d, _ in found), tuple(a for _, a in found if a is not None), not found)


def external_origin(client_order_id: str) -> str:
    """Return who placed an order: ours, liquidation, adl, settlement, unrecorded (ours, not booked) or manual."""
    if is_ours(client_order_id):
        return "ours"
    # Binance names the orders it places itself: autoclose-* (liquidation), adl_autoclose, settlement_autoclose-*.
    for prefix, origin in (("autoclose-", "liquidation"), ("adl_autoclose", "adl"),
                           ("settlement_autoclose", "settlement")):
        if client_order_id.startswith(prefix):
            return origin
    return "manual"


def _sort_key(item: tuple[Difference, Action | None]) -> tuple:
    diff, action = item
    if action is None:  # conflicts have no action; keep them beside the state updates
        return (_RANK[ActionKind.UPDATE_ORDER_STATE], "", 0, diff.subject, diff.kind)
    if action.fill is not None:
        return (_RANK[action.kind], action.symbol, action.fill.ts_ms, action.fill.trade_id, "")
    return (_RANK[action.kind], action.symbol, 0, action.client_order_id or diff.subject, action.leg)


def _unique_fills(venue: VenueView) -> _Fills:
    # A trade can be listed twice (overlapping pages, two queries); trade ids are unique per symbol only,
    # so the key is the symbol and the trade id.
    unique: dict[tuple[str, str], tuple[str, FillReport]] = {}
    for batch in venue.fills:
        for fill in batch.fills:
            unique.setdefault((batch.symbol, fill.trade_id), (batch.symbol, fill))
    return sorted(unique.values(), key=lambda sf: (sf[1].ts_ms, sf[1].trade_id))


def _missing_fills(ours: OurView, fills: _Fills) -> _Found:
    return [(Difference(DifferenceKind.MISSING_FILL, fill.trade_id, "", f"{fill.quantity}@{fill.price}",
                        fill.client_order_id),
             Action(ActionKind.BOOK_FILL, symbol, fill.client_order_id, fill=fill))
            for symbol, fill in fills if (symbol, fill.trade_id) not in ours.booked_trade_ids]


def _unbooked_qty(ours: OurView, fills: _Fills, client_order_id: str) -> Decimal:
    return sum((f.quantity for s, f in fills
                if f.client_order_id == client_order_id and (s, f.trade_id) not in ours.booked_trade_ids), Decimal(0))


def _order_states(ours: OurView, venue: VenueView, fills: _Fills) -> _Found:
    venue_by_id = {v.client_order_id: v for v in venue.orders}
    found: _Found = []
    for order in ours.orders:
        listed = venue_by_id.get(order.client_order_id)
        if listed is not None:
            found.extend(_order_state(order, listed))
        elif order.state in LIVE_STATES:
            found.append(_order_unlisted(order, order.filled + _unbooked_qty(ours, fills, order.client_order_id)))
    return found


def _order_state(order: OurOrder, listed: VenueOrder) -> _Found:
    if listed.status == order.state and listed.filled == order.filled:
        return []
    ours_text, venue_text = f"{order.state} {order.filled}", f"{listed.status} {listed.filled}"
    try:
        change = apply_venue_state(order.state, listed.status, order.filled, listed.filled)
    except (IllegalTransition, ValueError) as exc:
        return [(Difference(DifferenceKind.STATE_CONFLICT, order.client_order_id, ours_text, venue_text, str(exc)),
                 None)]
    detail = "the venue filled more than is booked" if change.fills_missing else ""
    return [(Difference(DifferenceKind.ORDER_STATE, order.client_order_id, ours_text, venue_text, detail),
             Action(ActionKind.UPDATE_ORDER_STATE, order.symbol, order.client_order_id, change.state, listed.filled,
                    conditional=order.conditional, venue_order=listed))]


def _order_unlisted(order: OurOrder, filled_qty: Decimal) -> tuple[Difference, Action]:
    # Open-order lists omit finished orders: trades covering the whole quantity say how it ended.
    if filled_qty >= order.quantity:
        return (Difference(DifferenceKind.ORDER_STATE, order.client_order_id, str(order.state), "not listed",
                           f"trades fill all {order.quantity}"),
                Action(ActionKind.UPDATE_ORDER_STATE, order.symbol, order.client_order_id, OrderState.FILLED,
                       filled_qty, conditional=order.conditional))
    return (Difference(DifferenceKind.ORDER_MISSING, order.client_order_id, str(order.state), "not listed",
                       "query by client id and count a miss"),
            Action(ActionKind.MARK_LOST, order.symbol, order.client_order_id, conditional=order.conditional))


def _external_orders(ours: OurView, venue: VenueView, fills: _Fills) -> _Found:
    known = {o.client_order_id for o in ours.orders}
    found: _Found = []
    for listed in venue.orders:
        if listed.client_order_id in known:
            continue
        known.add(listed.client_order_id)
        origin = _origin_label(listed.client_order_id)
        found.append((Difference(DifferenceKind.EXTERNAL_ORDER, listed.client_order_id, "",
                                 f"{listed.side} {listed.quantity} {listed.type} {listed.status}", origin),
                      Action(ActionKind.ADOPT_EXTERNAL_ORDER, listed.symbol, listed.client_order_id,
                             _state_or_none(listed.status), listed.quantity, listed.side,
                             conditional=listed.conditional, venue_order=listed, detail=origin)))
    # A finished order shows only in the trades: adopt it from them (the shell may fetch it by id).
    for symbol, fill in fills:
        if fill.client_order_id in known or (symbol, fill.trade_id) in ours.booked_trade_ids:
            continue
        known.add(fill.client_order_id)
        quantity = _unbooked_qty(ours, fills, fill.client_order_id)
        origin = _origin_label(fill.client_order_id)
        found.append((Difference(DifferenceKind.EXTERNAL_ORDER, fill.client_order_id, "", f"trades {quantity}",
                                 origin),
                      Action(ActionKind.ADOPT_EXTERNAL_ORDER, symbol, fill.client_order_id, OrderState.FILLED,
                             quantity, detail=origin)))
    return found


def _state_or_none(status: str) -> OrderState | None:
    try:
        return OrderState(status)
    except ValueError:
        return None


def _origin_label(client_order_id: str) -> str:
    origin = external_origin(client_order_id)
    return "unrecorded" if origin == "ours" else origin


def _positions(ours: OurView, venue: VenueView, fills: _Fills) -> _Found:
    booked = {p.symbol: p.quantity for p in ours.positions}
    held = {p.symbol: p.quantity for p in venue.positions}
    found: _Found = []
    for symbol in sorted(booked.keys() | held.keys()):
        ours_qty, venue_qty = booked.get(symbol, Decimal(0)), held.get(symbol, Decimal(0))
        if ours_qty != venue_qty:
            cause = _position_cause(ours, venue, fills, symbol)
            found.append((Difference(DifferenceKind.POSITION, symbol, str(ours_qty), str(venue_qty), cause),
                          Action(ActionKind.ADOPT_POSITION_CHANGE, symbol, quantity=venue_qty, detail=cause)))
    return found


def _position_cause(ours: OurView, venue: VenueView, fills: _Fills, symbol: str) -> str:
    unbooked = [f.client_order_id for s, f in fills if s == symbol and (s, f.trade_id) not in ours.booked_trade_ids]
    listed = [v.client_order_id for v in venue.orders if v.symbol == symbol and v.filled > 0]
    origins = sorted({external_origin(cid) for cid in unbooked + listed} - {"ours"})
    if origins:
        return ",".join(origins)
    return "missing fills" if unbooked else "unexplained"


def _exits(ours: OurView, venue: VenueView, fills: _Fills) -> _Found:
    expected = {p.symbol: p.exits for p in ours.positions}
    found: _Found = []
    for position in venue.positions:
        if position.quantity != 0:
            exits = expected.get(position.symbol, ())
            found.extend(_stop(position, venue, exits))
            found.extend(_targets(position, ours, venue, fills, exits))
    return found


def _remaining(order: VenueOrder) -> Decimal:
    return order.quantity - order.filled


def _stop(position: VenuePosition, venue: VenueView, exits: tuple[ExpectedExit, ...]) -> _Found:
    # Only our own stops count: an external one is adopted, but its owner may cancel it at any time.
    side, want = "sell" if position.quantity > 0 else "buy", abs(position.quantity)
    planned = next((e for e in exits if e.leg == "sl"), None)
    planned_id = planned.client_order_id if planned else ""
    # Keep the stop of the right size, then the planned one, then the first by id; the rest are duplicates.
    stops = sorted((v for v in venue.orders
                    if v.symbol == position.symbol and is_ours(v.client_order_id) and v.status in ACTIVE_STATES
                    and v.reduce_only and v.side == side and v.type in STOP_TYPES),
                   key=lambda v: (_remaining(v) != want, v.client_order_id != planned_id, v.client_order_id))
    if not stops:
        trigger = planned.trigger_price if planned else None
        return [(Difference(DifferenceKind.MISSING_STOP, position.symbol, str(trigger), "none", f"{side} {want}"),
                 Action(ActionKind.RESTORE_STOP, position.symbol, "", quantity=want, side=side, leg="sl",
                        trigger_price=trigger, conditional=True))]
    keep, *duplicates = stops
    found: _Found = [(Difference(DifferenceKind.DUPLICATE_STOP, v.client_order_id, "", str(_remaining(v)),
                                 f"keeping {keep.client_order_id}"),
                      Action(ActionKind.CANCEL_STRAY, v.symbol, v.client_order_id, conditional=v.conditional,
                             detail="duplicate stop")) for v in duplicates]
    if _remaining(keep) != want:
        found.append((Difference(DifferenceKind.STOP_SIZE, keep.client_order_id, str(want), str(_remaining(keep))),
                      Action(ActionKind.RESIZE_STOP, position.symbol, keep.client_order_id, quantity=want, side=side,
                             leg="sl", trigger_price=keep.trigger_price, conditional=keep.conditional)))
    return found


def _targets(position: VenuePosition, ours: OurView, venue: VenueView, fills: _Fills,
             exits: tuple[ExpectedExit, ...]) -> _Found:
    side, want = "sell" if position.quantity > 0 else "buy", abs(position.quantity)
    found: _Found = []
    for planned in exits:
        # A target on the other side belongs to a position that has since flipped: nothing to restore.
        if not planned.leg.startswith("tp") or planned.side != side or planned.quantity <= 0:
            continue
        if planned.client_order_id and _target_working_or_done(planned.client_order_id, ours, venue, fills):
            continue
        quantity = min(planned.quantity, want)
        found.append((Difference(DifferenceKind.MISSING_TARGET, f"{position.symbol} {planned.leg}",
                                 f"{planned.side} {quantity} @ {planned.trigger_price}", "none",
                                 planned.client_order_id),
                      Action(ActionKind.RESTORE_TARGET, position.symbol, "", quantity=quantity, side=side,
                             leg=planned.leg, trigger_price=planned.trigger_price, conditional=True)))
    return found


def _target_working_or_done(client_order_id: str, ours: OurView, venue: VenueView, fills: _Fills) -> bool:
    # A target that has filled, even in part, did its job; the books drop it once its fills are booked.
    # The venue's word on the filled quantity wins over the books' (update_order_state adopts it).
    listed = next((v for v in venue.orders if v.client_order_id == client_order_id), None)
    booked = next((o for o in ours.orders if o.client_order_id == client_order_id), None)
    if listed is not None and (listed.status in ACTIVE_STATES or listed.filled > 0):
        return True
    if listed is None and booked is not None and booked.filled > 0:
        return True
    return any(f.client_order_id == client_order_id for _, f in fills)


def _strays(venue: VenueView) -> _Found:
    held = {p.symbol for p in venue.positions if p.quantity != 0}
    waiting = _intents_with_working_entry(venue)
    found: _Found = []
    for listed in venue.orders:
        parts = split_client_order_id(listed.client_order_id)
        if listed.symbol in held or parts is None or listed.status not in ACTIVE_STATES:
            continue
        intent_id, leg = parts
        # An exit placed with its entry waits for the entry to fill; only a real leftover is stray.
        if (listed.reduce_only or leg.startswith(EXIT_LEG_PREFIXES)) and intent_id not in waiting:
            found.append((Difference(DifferenceKind.STRAY_ORDER, listed.client_order_id, "flat",
                                     f"{listed.side} {_remaining(listed)} {listed.type}", "our exit on a flat symbol"),
                          Action(ActionKind.CANCEL_STRAY, listed.symbol, listed.client_order_id,
                                 conditional=listed.conditional, detail="flat")))
    return found


def _intents_with_working_entry(venue: VenueView) -> set[str]:
    # The venue decides: an entry it does not list works nowhere (the books' view gets a mark_lost).
    parts = (split_client_order_id(v.client_order_id) for v in venue.orders if v.status in ACTIVE_STATES)
    return {p[0] for p in parts if p is not None and p[1].startswith(ENTRY_LEG_PREFIXES)}


def _balance(ours: OurView, venue: VenueView, tolerance_usdt: Decimal) -> _Found:
    if ours.wallet_usdt is None or venue.balance is None:
        return []
    gap_usdt = venue.balance.wallet_usdt - ours.wallet_usdt
    if abs(gap_usdt) <= tolerance_usdt:
        return []
    return [(Difference(DifferenceKind.BALANCE, "wallet_usdt", str(ours.wallet_usdt), str(venue.balance.wallet_usdt),
                        f"gap {gap_usdt} USDT"),
             Action(ActionKind.BALANCE_MISMATCH, "", quantity=gap_usdt, detail="report only"))]
