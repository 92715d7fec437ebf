"""The limit-entry chase decisions: pure values in, one step out."""
from dataclasses import replace
from decimal import Decimal as D

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from execution.chase import ChasePolicy, ChaseState, chase_leg, chase_step, drift_bps, passive_price

TICK = D("0.1")
POLICY = ChasePolicy(interval_s=5, max_reprices=3, max_drift_bps=D("15"), market_fallback=True)


def make_state(**overrides) -> ChaseState:
    """A buy resting one tick under a 60 000 entry (zone 59 900-60 100), due for its first check."""
    base = dict(side="buy", decision_price=D("60000"), zone_low=D("59900"), zone_high=D("60100"),
                order_price=D("59999.9"), reprices=0, order_age_s=5.0, entry_age_s=5.0,
                market_price=D("60000"), tick_size=TICK)
    return ChaseState(**(base | overrides))


@pytest.mark.parametrize(("side", "market", "expected"), [
    # A buy rests one tick under the market, on the grid.
    ("buy", D("60000"), D("59999.9")),
    ("buy", D("60000.05"), D("59999.9")),     # off-grid market: floor to the grid first
    # A sell rests one tick above.
    ("sell", D("60000"), D("60000.1")),
    ("sell", D("60000.05"), D("60000.2")),
])
def test_passive_price_rests_one_tick_on_our_side(side, market, expected):
    assert passive_price(side, market, TICK) == expected


@pytest.mark.parametrize(("side", "price", "expected"), [
    ("buy", D("60060"), D("10")),        # a buy paying more is worse
    ("buy", D("59940"), D("-10")),       # paying less is better: negative
    ("sell", D("59940"), D("10")),       # a sell receiving less is worse
    ("sell", D("60060"), D("-10")),
])
def test_drift_bps_is_positive_when_worse_than_the_entry(side, price, expected):
    assert drift_bps(side, D("60000"), price) == expected


@pytest.mark.parametrize(("reprices", "leg"), [(0, "entry"), (1, "entry1"), (2, "entry2"), (12, "entry12")])
def test_chase_leg_numbers_each_reprice(reprices, leg):
    assert chase_leg(reprices) == leg


@pytest.mark.parametrize(("overrides", "policy", "action", "price", "reason"), [
    # Waiting: too young, or the market did not move away (a buy whose market fell will fill where it is).
    (dict(order_age_s=4.9, market_price=D("60050")), POLICY, "wait", None, "resting 5 s of 5 s"),
    (dict(), POLICY, "wait", None, "still at the order's price"),
    (dict(market_price=D("59950")), POLICY, "wait", None, "still at the order's price"),
    # The market moved up: re-price one tick under it.
    (dict(market_price=D("60020")), POLICY, "reprice", D("60019.9"), "re-price 59999.9 -> 60019.9"),
    (dict(market_price=D("60020"), reprices=2), POLICY, "reprice", D("60019.9"), "60019.9"),
    # A sell chases down.
    (dict(side="sell", order_price=D("60000.1"), market_price=D("59980")), POLICY, "reprice", D("59980.1"),
     "re-price 60000.1 -> 59980.1"),
    # Re-prices used up: market while inside the zone and the drift limit.
    (dict(market_price=D("60020"), reprices=3), POLICY, "market", None, "re-prices used up (3)"),
    (dict(market_price=D("60020"), reprices=3, zone_low=None, zone_high=None), POLICY, "market", None,
     "3.3 bps from the entry"),
    # ... else give up: fallback off, past the drift limit, or outside the entry zone.
    (dict(market_price=D("60020"), reprices=3), replace(POLICY, market_fallback=False), "give_up", None,
     "market fallback is off"),
    (dict(market_price=D("60100"), reprices=3, zone_low=None, zone_high=None), POLICY, "give_up", None,
     "16.7 bps past the entry, over the 15 bps limit"),
    (dict(market_price=D("60080"), reprices=3, zone_high=D("60050")), POLICY, "give_up", None,
     "outside the entry zone [59900, 60050]"),
    # A re-price that would pass the drift limit ends the chase, re-prices left or not.
    # (60101: 16.65 bps would print by the decimal context's rounding, which ccxt sets to half-up.)
    (dict(market_price=D("60101"), zone_low=None, zone_high=None), POLICY, "give_up", None,
     "re-price to 60100.9 would be 16.8 bps past the entry"),
    # The whole chase lasts interval * (max_reprices + 1) = 20 s, moved or not.
    (dict(entry_age_s=20.0, reprices=1), POLICY, "market", None, "not filled in 20 s"),
    (dict(entry_age_s=19.9, reprices=1), POLICY, "wait", None, "still at the order's price"),
    (dict(entry_age_s=20.0, reprices=1), replace(POLICY, market_fallback=False), "give_up", None,
     "not filled in 20 s; market fallback is off"),
])
def test_chase_step_table(overrides, policy, action, price, reason):
    step = chase_step(make_state(**overrides), policy)

    assert (step.action, step.price) == (action, price)
    assert reason in step.reason


prices = st.decimals(min_value=D("59000"), max_value=D("61000"), places=2)
ticks = st.sampled_from([D("0.1"), D("0.01"), D("0.5"), D("1")])
sides = st.sampled_from(["buy", "sell"])
policies = st.builds(ChasePolicy, interval_s=st.integers(1, 10), max_reprices=st.integers(0, 5),
                     max_drift_bps=st.decimals(min_value=D("0"), max_value=D("50"), places=1),
                     market_fallback=st.booleans())


@st.composite
def states(draw) -> ChaseState:
    side, tick = draw(sides), draw(ticks)
    decision = draw(prices)
    low = draw(st.none() | st.decimals(min_value=D("59000"), max_value=decision, places=2))
    entry_age = draw(st.floats(0, 100))
    return ChaseState(side, decision, low, None if low is None else 2 * decision - low,
                      passive_price(side, draw(prices), tick), draw(st.integers(0, 6)),
                      draw(st.floats(0, entry_age)), entry_age, draw(prices), tick)


@given(states(), policies)
def test_chase_step_reprice_never_beyond_max_drift(state, policy):
    step = chase_step(state, policy)

    if step.action == "reprice":
        assert drift_bps(state.side, state.decision_price, step.price) <= policy.max_drift_bps
        assert state.reprices < policy.max_reprices


@given(states(), policies)
def test_chase_step_market_only_inside_zone_and_drift(state, policy):
    step = chase_step(state, policy)

    if step.action == "market":
        assert policy.market_fallback
        assert drift_bps(state.side, state.decision_price, state.market_price) <= policy.max_drift_bps
        assert state.zone_low is None or state.zone_low <= state.market_price <= state.zone_high


@given(states(), policies)
def test_chase_step_before_interval_only_waits(state, policy):
    young = replace(state, order_age_s=min(state.order_age_s, policy.interval_s - 0.001))

    assert chase_step(young, policy).action == "wait"


@given(prices, ticks)
def test_passive_price_buy_below_and_sell_above_market_on_the_grid(market, tick):
    buy, sell = passive_price("buy", market, tick), passive_price("sell", market, tick)

    assert buy < market < sell
    assert market - buy <= 2 * tick and sell - market <= 2 * tick
    assert buy % tick == 0 and sell % tick == 0


def drive(side: str, policy: ChasePolicy, markets: list[D], tick_every_s: int) -> tuple[int, int | None]:
    """Run one chase through a market path, one step per loop tick; return (re-prices, when it ended or None)."""
    decision, tick = D("60000"), D("0.1")
    order_price, reprices, placed_at = passive_price(side, decision, tick), 0, 0
    for n, market in enumerate(markets):
        now = n * tick_every_s
        step = chase_step(ChaseState(side, decision, None, None, order_price, reprices, now - placed_at, now,
                                     market, tick), policy)
        if step.action == "reprice":
            order_price, reprices, placed_at = step.price, reprices + 1, now
        elif step.action != "wait":
            return reprices, now
    return reprices, None


market_paths = st.lists(prices, min_size=1, max_size=40)


@given(sides, policies, market_paths, st.integers(1, 4))
def test_chase_step_reprices_never_exceed_the_policy(side, policy, markets, tick_every_s):
    reprices, _ = drive(side, policy, markets, tick_every_s)

    assert reprices <= policy.max_reprices


# A third re-price at 19 s of a 20 s budget rests until 24 s: the docstring's "at most" does not hold.
LATE_REPRICE = [D("60000")] * 5 + [D("60005")] * 5 + [D("60010")] * 9 + [D("60015")] * 11


@example("buy", POLICY, LATE_REPRICE, 1)
@given(sides, policies, market_paths, st.integers(1, 4))
def test_chase_step_ends_within_the_budget_give_or_take_one_tick(side, policy, markets, tick_every_s):
    budget_s = policy.interval_s * (policy.max_reprices + 1)

    _, ended = drive(side, policy, markets, tick_every_s)

    if (len(markets) - 1) * tick_every_s >= budget_s + tick_every_s:
        assert ended is not None and ended < budget_s + tick_every_s
