"""Stops triggered by the mark price and liquidation in the paper ladder."""
from decimal import Decimal as D

import pytest
from hypothesis import given, strategies as st

from execution.brokers.paper import LadderPosition, Target, ladder_step

STEP = D("0.001")
LONG = LadderPosition("LONG", D("100"), D("1"), D("1"), D("95"), (Target(D("110"), D("1")),))
SHORT = LadderPosition("SHORT", D("100"), D("1"), D("1"), D("105"), (Target(D("90"), D("1")),))


def step(position, bar, trigger=None, liquidation=None):
    """Return (leg, reason, price) of the bar's first exit, or None."""
    high, low = (D(v) for v in trigger) if trigger else (None, None)
    exits, _ = ladder_step(position, *(D(v) for v in bar), STEP, trigger_high=high, trigger_low=low,
                           liquidation_price=D(liquidation) if liquidation else None)
    return (exits[0].leg, exits[0].reason, str(exits[0].price)) if exits else None


@pytest.mark.parametrize(
    "position, bar, trigger, expected",
    [
        # long, stop 95: a last-price wick the mark did not follow does not trigger
        (LONG, ("100", "101", "94"), ("100.5", "96"), None),
        # the mark reached the stop while the last price did too: fill at the stop
        (LONG, ("100", "101", "94"), ("100.5", "94.5"), ("sl", "stop", "95")),
        # the mark reached it, the last price never did: the worst last price of the bar
        (LONG, ("100", "101", "96"), ("100.5", "94.8"), ("sl", "stop", "96")),
        # the last price opened through the stop and the mark followed: the open
        (LONG, ("93", "96", "92"), ("95.5", "93.5"), ("sl", "stop", "93")),
        # the last price opened through but the mark stayed above: no trigger on MARK_PRICE
        (LONG, ("93", "96", "92"), ("97", "95.5"), None),
        # no trigger range: the last price triggers, as before
        (LONG, ("100", "101", "94"), None, ("sl", "stop", "95")),
        # short, stop 105, mirrored
        (SHORT, ("100", "106", "99"), ("104.5", "99.5"), None),
        (SHORT, ("100", "104", "99"), ("105.2", "99.5"), ("sl", "stop", "104")),
        (SHORT, ("107", "108", "106"), ("107.5", "105.5"), ("sl", "stop", "107")),
        # targets keep triggering on the last price, whatever the mark did
        (LONG, ("100", "111", "99"), ("109", "99.5"), ("tp1", "target", "110")),
    ],
)
def test_ladder_step_stop_triggers_on_working_price(position, bar, trigger, expected):
    assert step(position, bar, trigger) == expected


LONG_WIDE = LadderPosition("LONG", D("100"), D("1"), D("1"), D("50"), (Target(D("110"), D("1")),))
SHORT_WIDE = LadderPosition("SHORT", D("100"), D("1"), D("1"), D("150"), (Target(D("90"), D("1")),))


@pytest.mark.parametrize(
    "position, bar, trigger, liquidation, expected",
    [
        # the stop sits closer than the liquidation price: it fires first, even in a crash
        (LONG, ("100", "101", "60"), ("100", "60"), "70", ("sl", "stop", "95")),
        # ... unless the bar opened past the liquidation price
        (LONG, ("65", "66", "60"), ("66", "60"), "70", ("liq", "liquidation", "70")),
        # a stop beyond the liquidation price: the position is liquidated before the stop fires
        (LONG_WIDE, ("100", "101", "65"), ("100", "65"), "70", ("liq", "liquidation", "70")),
        (LONG_WIDE, ("100", "101", "45"), ("100", "45"), "70", ("liq", "liquidation", "70")),
        (LONG_WIDE, ("100", "101", "75"), ("100", "75"), "70", None),
        # the mark decides: a last-price wick through it does not liquidate
        (LONG_WIDE, ("100", "101", "65"), ("100", "72"), "70", None),
        (SHORT_WIDE, ("100", "135", "99"), ("135", "99"), "130", ("liq", "liquidation", "130")),
        (SHORT_WIDE, ("100", "125", "99"), ("125", "99"), "130", None),
        # a stop at the liquidation price: the stop order wins the tie
        (LadderPosition("LONG", D("100"), D("1"), D("1"), D("70"), ()), ("100", "101", "65"), None, "70",
         ("sl", "stop", "70")),
        # liquidation price 0 (never liquidated) changes nothing
        (LONG_WIDE, ("100", "101", "45"), None, "0", ("sl", "stop", "50")),
    ],
)
def test_ladder_step_liquidation_before_stop(position, bar, trigger, liquidation, expected):
    assert step(position, bar, trigger, liquidation) == expected


def test_ladder_step_liquidation_closes_whole_position():
    exits, after = ladder_step(LONG_WIDE, D("100"), D("101"), D("60"), STEP, liquidation_price=D("70"))

    assert [(e.leg, e.quantity) for e in exits] == [("liq", D("1"))]
    assert after.quantity == 0


LADDER = LadderPosition("LONG", D("100"), D("1.000"), D("1.000"), D("98"),
                        (Target(D("102"), D("0.4")), Target(D("104"), D("0.6"))))
moves = st.decimals(min_value=D("0"), max_value=D("10"), places=1)


@given(st.decimals(min_value=D("90"), max_value=D("110"), places=1), moves, moves, moves, moves,
       st.sampled_from([None, D("0"), D("80"), D("97")]))
def test_ladder_step_with_triggers_never_closes_more_than_open(bar_open, up, down, mark_up, mark_down, liquidation):
    exits, after = ladder_step(LADDER, bar_open, bar_open + up, bar_open - down, STEP,
                               trigger_high=bar_open + mark_up, trigger_low=bar_open - mark_down,
                               liquidation_price=liquidation)

    assert sum(e.quantity for e in exits) + after.quantity == LADDER.quantity
    # Stops and targets fill at a price the last price traded in the bar.
    assert all(bar_open - down <= e.price <= bar_open + up for e in exits if e.reason != "liquidation")
