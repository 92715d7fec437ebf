from decimal import Decimal as D

from hypothesis import given, strategies as st

import pytest

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


def test_paper_submit_limit_order_rejected():
    broker = PaperBroker(taker_fee_fraction=D("0"), slippage_bps=D("0"))
    intent = OrderIntent("abc", "entry", "X", "buy", "limit", D("1"), price=D("1"))

    assert broker.submit(intent, reference_price=D("1"), ts_ms=0).status == "rejected"


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
