from decimal import Decimal as D

from hypothesis import given, strategies as st

import pytest

from execution.brokers.base import WouldTriggerImmediately
from execution.brokers.paper import LadderPosition, PaperBroker, Target, ladder_step, position_pnl
from execution.oms import OrderIntent

LONG = LadderPosition("LONG", D("100"), D("1"), D("1"), D("95"), (Target(D("110"), D("1")),))
SHORT = LadderPosition("SHORT", D("100"), D("1"), D("1"), D("105"), (Target(D("90"), D("1")),))


def test_paper_submit_market_buy_pays_slippage_and_fee():
    broker = PaperBroker(taker_fee_fraction=D("0.0004"), slippage_bps=D("10"))
    intent = OrderIntent("abc", "entry", "BTC/USDT:USDT", "buy", "market", D("2"))

    report = broker.submit(intent, reference_price=D("100"), ts_ms=0)

    fill = report.fills[0]
    assert report.status == "filled"
    assert fill.price == D("100.1")
    assert fill.fee_usdt == D("0.08008")


BROKER = PaperBroker(taker_fee_fraction=D("0.0004"), slippage_bps=D("10"))


def _intent(type_, side="buy", price=None, trigger=None) -> OrderIntent:
    return OrderIntent("abc", "entry", "BTC/USDT:USDT", side, type_, D("2"), price=price, trigger_price=trigger)


@pytest.mark.parametrize(
    "intent, status, fill",
    [
        # a passive limit rests; one at the reference price rests too (the reference is the other side)
        (_intent("limit", "buy", D("99")), "accepted", None),
        (_intent("limit", "buy", D("100")), "accepted", None),
        (_intent("limit", "sell", D("101")), "accepted", None),
        # a crossing post-only limit (limit_maker, Binance GTX) expires instead of taking
        (_intent("limit_maker", "buy", D("101")), "expired", None),
        (_intent("limit_maker", "sell", D("99")), "expired", None),
        (_intent("limit_maker", "buy", D("99")), "accepted", None),
        # a crossing plain limit takes at once with slippage, never beyond its price
        (_intent("limit", "buy", D("101")), "filled", D("100.1")),
        (_intent("limit", "buy", D("100.05")), "filled", D("100.05")),
        (_intent("limit", "sell", D("99.95")), "filled", D("99.95")),
        # conditionals rest until their trigger
        (_intent("stop_market", "sell", trigger=D("95")), "accepted", None),
        (_intent("stop_market", "buy", trigger=D("105")), "accepted", None),
        (_intent("take_profit_market", "sell", trigger=D("110")), "accepted", None),
        (_intent("take_profit", "buy", D("90"), D("90")), "accepted", None),
        # an order the paper venue cannot place
        (_intent("limit", "buy"), "rejected", None),
        (_intent("stop_market", "sell"), "rejected", None),
        (_intent("trailing_stop_market", "sell", trigger=D("95")), "rejected", None),
    ],
)
def test_paper_submit_order_types_answer_like_the_venue(intent, status, fill):
    report = BROKER.submit(intent, reference_price=D("100"), ts_ms=0)

    assert report.status == status
    assert (report.fills[0].price if report.fills else None) == fill
    assert report.exchange_order_id == ("paper-tb-abc-entry" if status != "rejected" else "")


def test_paper_submit_post_only_flag_expires_crossing_limit_with_5022():
    report = BROKER.submit(_intent("limit", "buy", D("101")), reference_price=D("100"), ts_ms=0, post_only=True)

    assert (report.status, report.fills) == ("expired", ())
    assert report.reason.startswith("-5022")


@pytest.mark.parametrize(
    "intent",
    [
        _intent("stop_market", "sell", trigger=D("100")),
        _intent("stop_market", "buy", trigger=D("99")),
        _intent("take_profit_market", "sell", trigger=D("99")),
        _intent("take_profit", "buy", D("101"), D("101")),
    ],
)
def test_paper_submit_conditional_already_past_trigger_raises(intent):
    with pytest.raises(WouldTriggerImmediately, match="-2021"):
        BROKER.submit(intent, reference_price=D("100"), ts_ms=0)


def test_paper_submit_crossing_limit_pays_taker_fee_on_tick_grid():
    report = BROKER.submit(_intent("limit", "buy", D("101")), reference_price=D("100.03"), ts_ms=5, tick_size=D("0.1"))

    fill = report.fills[0]
    assert (fill.price, fill.fee_usdt, fill.liquidity, fill.ts_ms) == (D("100.2"), D("0.08016"), "taker", 5)


def test_paper_broker_maker_fee_defaults_to_binance_base_tier():
    assert BROKER.maker_fee_fraction == D("0.0002")


@pytest.mark.parametrize(
    "position, bar, expected",
    [
        # long: stop touched, target touched, both touched (stop assumed first), gap below stop
        (LONG, ("100", "101", "94"), ("stop", "95")),
        (LONG, ("100", "111", "99"), ("target", "110")),
        (LONG, ("100", "111", "94"), ("stop", "95")),
        (LONG, ("93", "96", "92"), ("stop", "93")),
        # short mirrored, and a quiet bar that touches nothing
        (SHORT, ("100", "106", "99"), ("stop", "105")),
        (SHORT, ("100", "101", "89"), ("target", "90")),
        (SHORT, ("100", "101", "99"), None),
    ],
)
def test_ladder_step_single_target_levels(position, bar, expected):
    exits, _ = ladder_step(position, *(D(v) for v in bar), D("0.001"))

    assert (exits[0].reason, str(exits[0].price)) == expected if exits else expected is None


def test_position_pnl_short_gains_when_price_falls():
    assert position_pnl("SHORT", D("2"), D("100"), D("90")) == D("20")


LADDER = LadderPosition("LONG", D("100"), D("1.000"), D("1.000"), D("98"),
                        (Target(D("102"), D("0.4")), Target(D("104"), D("0.4")), Target(D("106"), D("0.2"))))


def test_ladder_step_first_target_closes_its_share_and_moves_stop_to_entry():
    exits, after = ladder_step(LADDER, D("100"), D("102.5"), D("99.5"), D("0.001"))

    assert [(e.leg, e.price, e.quantity) for e in exits] == [("tp1", D("102"), D("0.400"))]
    assert (after.quantity, after.stop_price) == (D("0.600"), D("100"))
    assert [t.filled for t in after.targets] == [True, False, False]


def test_ladder_step_bar_through_all_targets_closes_everything_last_takes_rest():
    exits, after = ladder_step(LADDER, D("100"), D("107"), D("99.5"), D("0.001"))

    assert [(e.leg, e.quantity) for e in exits] == [("tp1", D("0.400")), ("tp2", D("0.400")), ("tp3", D("0.200"))]
    assert after.quantity == 0


def test_ladder_step_stop_first_when_bar_touches_both():
    exits, after = ladder_step(LADDER, D("100"), D("103"), D("97"), D("0.001"))

    assert [(e.leg, e.reason, e.price, e.quantity) for e in exits] == [("sl", "stop", D("98"), D("1.000"))]
    assert after.quantity == 0


def test_ladder_step_short_mirrors():
    short = LadderPosition("SHORT", D("100"), D("1"), D("1"), D("102"), (Target(D("98"), D("0.5")), Target(D("96"), D("0.5"))))

    exits, after = ladder_step(short, D("99"), D("99.5"), D("97.5"), D("0.1"))

    assert [(e.leg, e.quantity) for e in exits] == [("tp1", D("0.5"))]
    assert after.stop_price == D("100")


@given(st.decimals(min_value=D("90"), max_value=D("110"), places=1), st.decimals(min_value=D("0"), max_value=D("10"), places=1),
       st.decimals(min_value=D("0"), max_value=D("10"), places=1))
def test_ladder_step_never_closes_more_than_open(bar_open, up, down):
    exits, after = ladder_step(LADDER, bar_open, bar_open + up, bar_open - down, D("0.001"))

    assert sum(e.quantity for e in exits) + after.quantity == LADDER.quantity
    assert after.quantity >= 0


def test_ladder_step_default_position_keeps_stop_at_entry_on_new_highs():
    _, after_tp1 = ladder_step(LADDER, D("100"), D("102.5"), D("99.5"), D("0.001"))

    _, after = ladder_step(after_tp1, D("102"), D("103.9"), D("101"), D("0.001"), tick_size=D("0.1"))

    assert (LADDER.trail_distance, after.stop_price, after.best_price) == (None, D("100"), D("103.9"))


@pytest.mark.parametrize(
    "side, slip, expected",
    [
        # without slippage the price only moves onto the tick grid, against the taker
        ("sell", False, D("59000.1")),
        ("buy", False, D("59000.2")),
        # with it, 10 bps against the taker first
        ("sell", True, D("58941.1")),
    ],
)
def test_paper_fill_at_rounds_against_taker(side, slip, expected):
    intent = OrderIntent("abc", "sl", "BTC/USDT:USDT", side, "market", D("1"), reduce_only=True)

    report = BROKER.fill_at(intent, D("59000.15"), 7, slip=slip, tick_size=D("0.1"))

    assert (report.status, report.fills[0].price, report.fills[0].trade_id) == ("filled", expected, "paper-tb-abc-sl")
