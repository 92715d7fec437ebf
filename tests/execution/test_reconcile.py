from dataclasses import replace
from decimal import Decimal as D

import pytest
from hypothesis import given, settings, strategies as st

from execution.brokers.base import FillReport, VenueBalance, VenueOrder, VenuePosition
from execution.oms import TRANSITIONS, VENUE_STATES, OrderState, split_client_order_id
from execution.reconcile import (Action, ActionKind, DifferenceKind, ExpectedExit, OurOrder, OurPosition, OurView,
                                 SymbolFills, VenueView, external_origin, reconcile)

K = ActionKind
S = OrderState
BTC = "BTCUSDT"
ENTRY, SL, TP1 = "tb-i1-entry", "tb-i1-sl", "tb-i1-tp1"


def _vorder(cid, status="accepted", *, type="stop_market", side="sell", qty="1", filled="0", reduce_only=True,
            symbol=BTC, trigger="95") -> VenueOrder:
    return VenueOrder(cid, f"x-{cid}", symbol, side, type, status, D(qty), D(filled),
                      trigger_price=D(trigger) if trigger else None, reduce_only=reduce_only,
                      conditional=type != "limit" and type != "market")


def _oorder(cid, state="accepted", qty="1", filled="0", symbol=BTC) -> OurOrder:
    parts = split_client_order_id(cid)
    return OurOrder(cid, symbol, parts[1] if parts else "external", S(state), D(qty), D(filled),
                    conditional=parts is not None and parts[1] != "entry")


def _fill(trade_id, cid, qty="1", ts_ms=1_000, price="100") -> FillReport:
    return FillReport(cid, trade_id, ts_ms, D(price), D(qty), D("0.04"))


# A long of 1 BTC with its stop and first target working, everything booked.
OURS = OurView(
    orders=(_oorder(ENTRY, "filled", filled="1"), _oorder(SL), _oorder(TP1, qty="0.5")),
    booked_trade_ids=frozenset({(BTC, "t1")}),
    positions=(OurPosition(BTC, D("1"), (ExpectedExit("sl", "sell", D("1"), D("95"), SL),
                                         ExpectedExit("tp1", "sell", D("0.5"), D("110"), TP1))),),
    wallet_usdt=D("1000"),
)
VENUE = VenueView(
    orders=(_vorder(SL), _vorder(TP1, type="take_profit_market", qty="0.5", trigger="110")),
    positions=(VenuePosition(BTC, D("1"), D("100")),),
    fills=(SymbolFills(BTC, 0, (_fill("t1", ENTRY),)),),
    balance=VenueBalance(D("1000"), D("900")),
)


def _with_venue_orders(*orders: VenueOrder) -> tuple[VenueOrder, ...]:
    return (*VENUE.orders, *orders)


def _summary(actions: tuple[Action, ...]) -> list[tuple[str, str]]:
    return [(a.kind.value, a.fill.trade_id if a.fill else a.client_order_id or a.leg or a.symbol or "wallet")
            for a in actions]


SCENARIOS = {
    "clean": (OURS, VENUE, []),
    "missing fill": (replace(OURS, booked_trade_ids=frozenset()), VENUE, [("book_fill", "t1")]),
    "duplicate fill rows": (
        replace(OURS, booked_trade_ids=frozenset()),
        replace(VENUE, fills=(*VENUE.fills, SymbolFills(BTC, 500, (_fill("t1", ENTRY), _fill("t1", ENTRY))))),
        [("book_fill", "t1")]),
    # TP1 filled on the venue while the books think it open: book, update, shrink position and stop.
    "venue filled an order we think open": (
        OURS,
        replace(VENUE, orders=(_vorder(SL), _vorder(TP1, "filled", type="take_profit_market", qty="0.5",
                                                    filled="0.5", trigger="110")),
                positions=(VenuePosition(BTC, D("0.5"), D("100")),),
                fills=(SymbolFills(BTC, 0, (_fill("t1", ENTRY), _fill("t2", TP1, "0.5", 2_000, "110"))),)),
        [("book_fill", "t2"), ("update_order_state", TP1), ("adopt_position_change", BTC), ("resize_stop", SL)]),
    "our open order gone from the venue": (
        replace(OURS, orders=(*OURS.orders, _oorder("tb-i2-entry", qty="1"))),
        VENUE,
        [("mark_lost", "tb-i2-entry")]),
    "our open order gone, trades show it filled": (
        replace(OURS, orders=(*OURS.orders, _oorder("tb-i2-exit", qty="1"))),
        replace(VENUE, fills=(SymbolFills(BTC, 0, (_fill("t1", ENTRY), _fill("t5", "tb-i2-exit"))),)),
        [("book_fill", "t5"), ("update_order_state", "tb-i2-exit")]),
    "liquidation": (
        OURS,
        replace(VENUE, orders=_with_venue_orders(_vorder("autoclose-1700000000000", "filled", type="market",
                                                         filled="1", reduce_only=False, trigger=None)),
                positions=(),
                fills=(SymbolFills(BTC, 0, (_fill("t1", ENTRY), _fill("t9", "autoclose-1700000000000", ts_ms=9_000,
                                                                       price="80"))),)),
        [("book_fill", "t9"), ("adopt_external_order", "autoclose-1700000000000"), ("adopt_position_change", BTC),
         ("cancel_stray", SL), ("cancel_stray", TP1)]),
    "manual close": (
        OURS,
        replace(VENUE, positions=(), fills=(SymbolFills(BTC, 0, (_fill("t1", ENTRY), _fill("t8", "web_Kq2"))),)),
        [("book_fill", "t8"), ("adopt_external_order", "web_Kq2"), ("adopt_position_change", BTC),
         ("cancel_stray", SL), ("cancel_stray", TP1)]),
    "position without a stop": (
        replace(OURS, orders=(OURS.orders[0], _oorder(SL, "canceled"), OURS.orders[2])),
        replace(VENUE, orders=(_vorder(SL, "canceled"), VENUE.orders[1])),
        [("restore_stop", "sl")]),
    "unknown position: adopt and protect it": (
        OURS,
        replace(VENUE, positions=(*VENUE.positions, VenuePosition("ETHUSDT", D("-2"), D("3000")))),
        [("adopt_position_change", "ETHUSDT"), ("restore_stop", "sl")]),
    "stop of the wrong size after a partial take-profit": (
        replace(OURS, orders=(*OURS.orders[:2], _oorder(TP1, "filled", qty="0.5", filled="0.5")),
                booked_trade_ids=frozenset({(BTC, "t1"), (BTC, "t2")}),
                positions=(replace(OURS.positions[0], quantity=D("0.5"), exits=OURS.positions[0].exits[:1]),)),
        replace(VENUE, orders=(_vorder(SL),), positions=(VenuePosition(BTC, D("0.5"), D("100")),)),
        [("resize_stop", SL)]),
    "duplicate stop": (
        OURS,
        replace(VENUE, orders=_with_venue_orders(_vorder("tb-i0-sl"))),
        [("adopt_external_order", "tb-i0-sl"), ("cancel_stray", "tb-i0-sl")]),
    "missing target": (
        OURS,
        replace(VENUE, orders=(_vorder(SL), _vorder(TP1, "canceled", type="take_profit_market", qty="0.5"))),
        [("update_order_state", TP1), ("restore_target", "tp1")]),
    "stray orders after flat": (
        replace(OURS, positions=()),
        replace(VENUE, positions=()),
        [("cancel_stray", SL), ("cancel_stray", TP1)]),
    "exit waiting for its working entry is not stray": (
        replace(OURS, orders=(_oorder("tb-i3-entry"), _oorder("tb-i3-sl")), positions=()),
        replace(VENUE, orders=(_vorder("tb-i3-entry", type="limit", side="buy", reduce_only=False, trigger=None),
                               _vorder("tb-i3-sl")), positions=()),
        []),
    "external manual order adopted": (
        OURS,
        replace(VENUE, orders=_with_venue_orders(_vorder("web_x1", type="limit", side="buy", reduce_only=False,
                                                         trigger=None))),
        [("adopt_external_order", "web_x1")]),
    "balance mismatch": (OURS, replace(VENUE, balance=VenueBalance(D("1000.5"), D("900"))),
                         [("balance_mismatch", "wallet")]),
    "balance within tolerance": (OURS, replace(VENUE, balance=VenueBalance(D("1000.01"), D("900"))), []),
}


@pytest.mark.parametrize("ours, venue, expected", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_reconcile_scenario_actions_in_order(ours, venue, expected):
    result = reconcile(ours, venue)

    assert _summary(result.actions) == expected
    assert result.clean is (not expected)


def test_reconcile_liquidation_says_so():
    ours, venue, _ = SCENARIOS["liquidation"]

    result = reconcile(ours, venue)

    adopt = next(a for a in result.actions if a.kind == K.ADOPT_EXTERNAL_ORDER)
    position = next(a for a in result.actions if a.kind == K.ADOPT_POSITION_CHANGE)
    assert (adopt.detail, position.detail, position.quantity) == ("liquidation", "liquidation", 0)


def test_reconcile_restore_stop_uses_the_planned_trigger():
    ours, venue, _ = SCENARIOS["position without a stop"]

    (action,) = reconcile(ours, venue).actions

    assert (action.side, action.quantity, action.trigger_price) == ("sell", D("1"), D("95"))


def test_reconcile_unknown_position_stop_left_to_the_shell():
    ours, venue, _ = SCENARIOS["unknown position: adopt and protect it"]

    stop = reconcile(ours, venue).actions[-1]

    assert (stop.side, stop.quantity, stop.trigger_price) == ("buy", D("2"), None)


def test_reconcile_state_conflict_reported_without_action():
    venue = replace(VENUE, orders=_with_venue_orders(_vorder(ENTRY, "accepted", type="limit", side="buy",
                                                             reduce_only=False, trigger=None)))

    result = reconcile(OURS, venue)

    assert result.actions == ()
    assert [d.kind for d in result.differences] == [DifferenceKind.STATE_CONFLICT]
    assert not result.clean


def test_reconcile_fills_booked_in_time_order():
    venue = replace(VENUE, fills=(SymbolFills(BTC, 0, (_fill("t7", ENTRY, ts_ms=7), _fill("t3", ENTRY, ts_ms=3))),))

    result = reconcile(replace(OURS, booked_trade_ids=frozenset()), venue)

    assert _summary(result.actions) == [("book_fill", "t3"), ("book_fill", "t7")]


@pytest.mark.parametrize("client_id, origin", [
    ("autoclose-1700000000000", "liquidation"), ("adl_autoclose", "adl"),
    ("settlement_autoclose-1", "settlement"), ("web_x1", "manual"), ("tb-i1-sl", "ours"),
])
def test_external_origin_by_client_id(client_id, origin):
    assert external_origin(client_id) == origin


# --- invariants: carrying out the actions leaves nothing to do -----------------------------------

SYMBOL_OF_INTENT = {"a": BTC, "b": "ETHUSDT"}
OUR_IDS = [(f"tb-{intent}-{leg}", symbol) for intent, symbol in SYMBOL_OF_INTENT.items()
           for leg in ("entry", "sl", "tp1", "tp2")]
CLIENT_IDS = [*OUR_IDS, ("autoclose-1", BTC), ("adl_autoclose", "ETHUSDT"), ("web_1", BTC)]
QTY = st.sampled_from([D("0"), D("0.5"), D("1"), D("2")])
_TYPES = {"entry": "limit", "sl": "stop_market", "tp1": "take_profit_market", "tp2": "take_profit_market"}


@st.composite
def _order_pair(draw, cid: str, symbol: str) -> tuple[OurOrder | None, VenueOrder | None]:
    parts = split_client_order_id(cid)
    leg = parts[1] if parts else "external"
    quantity = draw(st.sampled_from([D("1"), D("2")]))
    state = draw(st.sampled_from(list(OrderState)))
    ours = OurOrder(cid, symbol, leg, state, quantity, draw(QTY)) if draw(st.booleans()) else None
    # Only venue states the books' state may move to: conflicts are the operator's, tested above.
    options = sorted(s for s in VENUE_STATES if ours is None or s == state or s in TRANSITIONS[state])
    if not options or not draw(st.booleans()):
        return ours, None
    exit_leg = leg.startswith(("sl", "tp"))
    venue = VenueOrder(cid, "x", symbol, draw(st.sampled_from(["buy", "sell"])), _TYPES.get(leg, "market"),
                       draw(st.sampled_from(options)), quantity, min(draw(QTY), quantity),
                       reduce_only=exit_leg or draw(st.booleans()), conditional=exit_leg)
    return ours, venue


@st.composite
def _position(draw, symbol: str, intent: str) -> OurPosition | None:
    quantity = draw(st.sampled_from([D("-2"), D("-1"), D("0"), D("1"), D("2")]))
    exits = tuple(ExpectedExit(leg, draw(st.sampled_from(["buy", "sell"])), draw(QTY), D("100"),
                               draw(st.sampled_from(["", f"tb-{intent}-{leg}"])))
                  for leg in ("sl", "tp1", "tp2") if draw(st.booleans()))
    return OurPosition(symbol, quantity, exits) if draw(st.booleans()) else None


@st.composite
def worlds(draw) -> tuple[OurView, VenueView]:
    pairs = [draw(_order_pair(cid, symbol)) for cid, symbol in CLIENT_IDS]
    symbol_of = dict(CLIENT_IDS)
    trades = [(f"t{i}", draw(st.sampled_from([cid for cid, _ in CLIENT_IDS]))) for i in range(5)]
    listed = draw(st.lists(st.sampled_from(trades), max_size=8))     # repeats: the same trade listed twice
    fills = tuple(SymbolFills(symbol_of[cid], 0, (_fill(tid, cid, "0.5", int(tid[1:])),)) for tid, cid in listed)
    booked = frozenset((symbol_of[cid], t) for t, cid in draw(st.lists(st.sampled_from(trades))))
    positions = tuple(p for intent, symbol in SYMBOL_OF_INTENT.items() if (p := draw(_position(symbol, intent))))
    venue_positions = tuple(VenuePosition(symbol, q, D("100")) for symbol in SYMBOL_OF_INTENT.values()
                            if (q := draw(st.sampled_from([D("-2"), D("0"), D("1"), D("2")]))) or draw(st.booleans()))
    wallet = st.sampled_from([D("1000"), D("1000.5")])
    ours = OurView(tuple(o for o, _ in pairs if o), booked, positions, draw(wallet))
    venue = VenueView(tuple(v for _, v in pairs if v), venue_positions, fills, VenueBalance(draw(wallet), D("0")))
    return ours, venue


def apply(ours: OurView, venue: VenueView, actions: tuple[Action, ...]) -> tuple[OurView, VenueView]:
    """Carry out the actions as the shell would, on both views (the venue side as if it always complied)."""
    orders = {o.client_order_id: o for o in ours.orders}
    listed = {v.client_order_id: v for v in venue.orders}
    positions = {p.symbol: p for p in ours.positions}
    booked, wallet = set(ours.booked_trade_ids), ours.wallet_usdt
    for n, a in enumerate(actions):
        cid = a.client_order_id
        if a.kind == K.BOOK_FILL:
            booked.add((a.symbol, a.fill.trade_id))
        elif a.kind == K.UPDATE_ORDER_STATE:
            orders[cid] = replace(orders[cid], state=a.state, filled=a.quantity)
        elif a.kind == K.ADOPT_EXTERNAL_ORDER:
            v = a.venue_order
            orders[cid] = OurOrder(cid, a.symbol, "external", a.state, a.quantity, v.filled if v else a.quantity)
        elif a.kind == K.ADOPT_POSITION_CHANGE:
            old = positions.pop(a.symbol, OurPosition(a.symbol, D(0)))
            if a.quantity != 0:
                positions[a.symbol] = replace(old, quantity=a.quantity)
        elif a.kind in (K.RESTORE_STOP, K.RESTORE_TARGET):
            cid = f"tb-r{n}-{a.leg}"
            listed[cid] = VenueOrder(cid, "x", a.symbol, a.side, "stop_market" if a.leg == "sl" else "take_profit",
                                     "accepted", a.quantity, trigger_price=a.trigger_price, reduce_only=True,
                                     conditional=True)
            orders[cid] = OurOrder(cid, a.symbol, a.leg, S.ACCEPTED, a.quantity, conditional=True)
            old = positions[a.symbol]
            exits = tuple(replace(e, client_order_id=cid) if e.leg == a.leg else e for e in old.exits)
            positions[a.symbol] = replace(old, exits=exits)
        elif a.kind == K.RESIZE_STOP:
            listed[cid] = replace(listed[cid], quantity=a.quantity, filled=D(0))
            orders[cid] = replace(orders[cid], quantity=a.quantity, filled=D(0))
        elif a.kind == K.CANCEL_STRAY:
            listed[cid] = replace(listed[cid], status="canceled")
            orders[cid] = replace(orders[cid], state=S.CANCELED)
        elif a.kind == K.MARK_LOST:
            orders[cid] = replace(orders[cid], state=S.LOST)
        elif a.kind == K.BALANCE_MISMATCH:
            wallet = venue.balance.wallet_usdt   # the operator settles a reported gap
    return (OurView(tuple(orders.values()), frozenset(booked), tuple(positions.values()), wallet),
            replace(venue, orders=tuple(listed.values())))


@settings(max_examples=400)
@given(worlds())
def test_reconcile_after_applying_actions_is_clean(world):
    ours, venue = world

    result = reconcile(*apply(ours, venue, reconcile(ours, venue).actions))

    assert result.clean, result.differences
    assert result.actions == ()


@settings(max_examples=300)
@given(worlds())
def test_reconcile_books_each_missing_trade_once(world):
    ours, venue = world

    booked = [(a.symbol, a.fill.trade_id) for a in reconcile(ours, venue).actions if a.kind == K.BOOK_FILL]

    assert len(booked) == len(set(booked))
    assert not set(booked) & ours.booked_trade_ids
    venue_trades = {(batch.symbol, f.trade_id) for batch in venue.fills for f in batch.fills}
    assert set(booked) == venue_trades - ours.booked_trade_ids


def test_reconcile_same_trade_id_on_two_symbols_books_both():
    eth_fill = _fill("t1", "tb-eth-entry")
    venue = replace(VENUE, fills=(*VENUE.fills, SymbolFills("ETHUSDT", 0, (eth_fill,))))

    result = reconcile(OURS, venue)

    assert [(a.symbol, a.fill.trade_id) for a in result.actions if a.kind == K.BOOK_FILL] == [("ETHUSDT", "t1")]


@settings(max_examples=200)
@given(worlds(), st.randoms(use_true_random=False))
def test_reconcile_ignores_input_order(world, rnd):
    ours, venue = world
    shuffled = replace(venue, orders=tuple(rnd.sample(venue.orders, len(venue.orders))),
                       positions=tuple(reversed(venue.positions)))

    assert reconcile(ours, shuffled).actions == reconcile(ours, venue).actions
