from decimal import Decimal as D

import pytest
from hypothesis import given, strategies as st

from decisions.risk.sizing import (
    SizingInput, VenueFilters, brackets_from_ccxt, filters_from_ccxt_market, maintenance_margin_rate,
    precision_check, round_stop, round_to_tick, size_detail, size_position,
)


def make_input(**overrides) -> SizingInput:
    base = dict(equity_usdt=D("10000"), risk_fraction=D("0.01"), entry_price=D("100"),
                stop_price=D("98"), step_size=D("0.001"), min_notional_usdt=D("5"))
    return SizingInput(**(base | overrides))


def test_size_position_rounds_down_to_step():
    assert size_position(make_input(stop_price=D("97"))) == D("33.333")


def test_size_position_below_min_notional_returns_zero():
    assert size_position(make_input(equity_usdt=D("1"))) == 0


def test_size_position_tight_stop_capped_by_leverage():
    # 1 % risk over a 0.10 stop would be 1000 units (100 000 USDT); 3x leverage caps it at 300
    # once the margin cap allows all of equity as margin.
    assert size_position(make_input(stop_price=D("99.9"), max_margin_fraction=D("1"))) == D("300")


def test_size_position_tight_stop_default_margin_cap_halves_leverage_cap():
    # Default: margin at most 50 % of equity, so 5 000 USDT x 3 = 15 000 USDT = 150 units.
    assert size_position(make_input(stop_price=D("99.9"))) == D("150")


def test_size_position_zero_stop_distance_returns_zero():
    assert size_position(make_input(stop_price=D("100"))) == 0


def test_size_position_positional_arguments_keep_their_meaning():
    # decisions/services.py passes the first seven fields by position.
    inp = SizingInput(D("10000"), D("0.01"), D("100"), D("98"), D("0.001"), D("5"), D("3"))

    assert size_position(inp) == D("50")


def test_round_to_tick_nearest():
    assert round_to_tick(D("100.26"), D("0.1")) == D("100.3")


@pytest.mark.parametrize("overrides, binding, quantity", [
    # risk: 100 USDT over a 2.00 stop
    (dict(), "risk", D("50")),
    # leverage: a 0.10 stop with all equity allowed as margin
    (dict(stop_price=D("99.9"), max_margin_fraction=D("1")), "leverage", D("300")),
    # margin: 3 000 USDT already in use leaves 2 000 USDT of room, x3 = 6 000 USDT = 60 units
    (dict(stop_price=D("99.9"), margin_in_use_usdt=D("3000")), "margin", D("60")),
    # venue max quantity
    (dict(max_quantity=D("12.5")), "max_quantity", D("12.5")),
])
def test_size_detail_names_binding_cap(overrides, binding, quantity):
    result = size_detail(make_input(**overrides))

    assert (result.binding, result.quantity) == (binding, quantity)
    assert result.notional_usdt == quantity * D("100")
    assert result.margin_usdt == result.notional_usdt / D("3")


@pytest.mark.parametrize("overrides, binding, reason", [
    # the examples, word for word
    (dict(equity_usdt=D("100"), entry_price=D("43000"), stop_price=D("40000"), risk_fraction=D("0.03"),
          min_notional_usdt=D("100")),
     "min_notional", "below min notional: 0.001 x 43000 = 43 USDT < 100 USDT"),
    (dict(margin_in_use_usdt=D("5200")),
     "margin", "margin in use 5200 USDT already at the cap 5000 USDT (50% of equity)"),
    (dict(open_positions=3, max_positions=3), "max_positions", "3 positions open, at the cap of 3"),
    (dict(stop_price=D("100")), "stop", "stop distance is zero"),
    # entry 100.04 -> 100.0, a long's stop 100.01 floors to 100.0 as well
    (dict(entry_price=D("100.04"), stop_price=D("100.01"), tick_size=D("0.1")),
     "stop", "stop distance is zero at tick 0.1"),
    (dict(equity_usdt=D("0")), "equity", "equity 0 USDT is not positive"),
    (dict(equity_usdt=D("0.01"), min_notional_usdt=D("0")),
     "step", "rounds down to 0: the risk cap allows 0.00005 < one step 0.001"),
    (dict(min_quantity=D("60")), "min_quantity", "below min quantity: 50 < 60"),
])
def test_size_detail_zero_says_why(overrides, binding, reason):
    result = size_detail(make_input(**overrides))

    assert result.quantity == 0
    assert (result.binding, result.reason) == (binding, reason)


def test_size_detail_positions_below_cap_sizes_normally():
    assert size_detail(make_input(open_positions=2, max_positions=3)).quantity == D("50")


def test_size_detail_tick_size_sizes_on_rounded_stop():
    # Long: entry 100.04 -> 100.0, stop 98.06 floors to 98.0: a 2.0 distance, not 1.98.
    result = size_detail(make_input(entry_price=D("100.04"), stop_price=D("98.06"), tick_size=D("0.1")))

    assert result.stop_distance == D("2.0")
    assert result.quantity == D("50")


@pytest.mark.parametrize("stop, entry, expected", [
    (D("98.06"), D("100"), D("98.0")),     # long: down, away from the entry
    (D("101.94"), D("100"), D("102.0")),   # short: up, away from the entry
    (D("98.1"), D("100"), D("98.1")),      # already on the grid
])
def test_round_stop_moves_away_from_entry(stop, entry, expected):
    assert round_stop(stop, entry, D("0.1")) == expected


BTC = VenueFilters(tick_size=D("0.1"), step_size=D("0.001"), min_quantity=D("0.001"), max_quantity=D("120"),
                   min_notional=D("100"))


@pytest.mark.parametrize("price, quantity, kwargs, expected", [
    # entries and targets: nearest tick; quantity: down to the step
    (D("104264.94"), D("0.0019"), {}, (D("104264.9"), D("0.001"), "")),
    (D("104264.95"), D("0.25"), {}, (D("104265.0"), D("0.25"), "")),
    # a short's stop rounds up, away from its entry
    (D("104264.91"), D("0.01"), dict(stop_for_entry=D("103000")), (D("104265.0"), D("0.01"), "")),
    # a long's stop rounds down, away from its entry
    (D("103000.09"), D("0.01"), dict(stop_for_entry=D("104000")), (D("103000.0"), D("0.01"), "")),
])
def test_precision_check_rounds_to_grid(price, quantity, kwargs, expected):
    result = precision_check(price, quantity, BTC, **kwargs)

    assert (result.price, result.quantity, result.reason) == expected


@pytest.mark.parametrize("price, quantity, kwargs, reason", [
    (D("43000"), D("0.001"), {}, "below min notional: 0.001 x 43000 = 43 USDT < 100 USDT"),
    (D("100000"), D("130"), {}, "above max quantity: 130 > 120"),
    (D("100000"), D("0.0004"), {}, "quantity 0.0004 rounds down to 0 at step 0.001"),
    (D("0"), D("1"), {}, "price 0 is not positive"),
])
def test_precision_check_rejects_with_reason(price, quantity, kwargs, reason):
    result = precision_check(price, quantity, BTC, **kwargs)

    assert not result.ok
    assert result.reason == reason


def test_precision_check_reduce_only_skips_min_notional():
    assert precision_check(D("43000"), D("0.001"), BTC, reduce_only=True).ok


def test_precision_check_below_min_quantity_rejects():
    filters = VenueFilters(tick_size=D("0.01"), step_size=D("0.01"), min_quantity=D("0.1"))

    assert precision_check(D("50"), D("0.05"), filters).reason == "below min quantity: 0.05 < 0.1"


# Shape of ccxt's unified market, as binanceusdm.load_markets() builds it (floats).
CCXT_MARKET = {
    "symbol": "BTC/USDT:USDT",
    "precision": {"amount": 0.001, "price": 0.1, "base": 1e-08, "quote": 1e-08},
    "limits": {"leverage": {"min": None, "max": None}, "amount": {"min": 0.001, "max": 1000.0},
               "price": {"min": 0.1, "max": 4529764.0}, "cost": {"min": 100.0, "max": None},
               "market": {"min": 0.001, "max": 120.0}},
}


@pytest.mark.parametrize("market_order, max_quantity", [
    (False, D("1000")),   # LOT_SIZE
    (True, D("120")),     # MARKET_LOT_SIZE is tighter
])
def test_filters_from_ccxt_market_reads_tick_step_and_limits(market_order, max_quantity):
    filters = filters_from_ccxt_market(CCXT_MARKET, market_order=market_order)

    assert filters == VenueFilters(D("0.1"), D("0.001"), D("0.001"), max_quantity, D("100"))


def test_filters_from_ccxt_market_without_precision_raises():
    with pytest.raises(ValueError, match="market 'X' has no price/amount precision"):
        filters_from_ccxt_market({"symbol": "X", "precision": {"price": None}})


def test_filters_from_ccxt_market_missing_limits_default_open():
    filters = filters_from_ccxt_market({"precision": {"amount": "1", "price": "0.5"}})

    assert filters == VenueFilters(D("0.5"), D("1"), D("0"), None, D("0"))


@pytest.mark.parametrize("notional, rate", [
    (D("0"), D("0.004")),
    (D("49999.99"), D("0.004")),
    (D("50000"), D("0.005")),        # a floor is inclusive
    (D("-60000"), D("0.005")),       # a short's negative notional
    (D("500000000"), D("0.5")),
])
def test_maintenance_margin_rate_picks_bracket(notional, rate):
    brackets = brackets_from_ccxt([["50000", "0.005"], ["0", "0.004"], ["300000000", "0.5"]])

    assert maintenance_margin_rate(notional, brackets) == rate


# Invariants: whatever the inputs, no cap is ever exceeded.
prices = st.decimals(min_value=D("0.01"), max_value=D("200000"), places=2)


@st.composite
def sizing_inputs(draw) -> SizingInput:
    equity = draw(st.decimals(min_value=D("0"), max_value=D("1000000"), places=2))
    entry = draw(prices)
    # Stops within 20 % of the entry, either side, as the strategies place them.
    stop_offset = draw(st.decimals(min_value=D("-0.2"), max_value=D("0.2"), places=4))
    # Margin in use as a share of equity, so every cap gets its turn to bind.
    in_use_fraction = draw(st.one_of(st.just(D("0")), st.decimals(min_value=D("0"), max_value=D("1.2"), places=2)))
    return SizingInput(
        equity_usdt=equity,
        risk_fraction=draw(st.decimals(min_value=D("0.0001"), max_value=D("0.05"), places=4)),
        entry_price=entry,
        stop_price=(entry * (1 + stop_offset)).quantize(D("0.01")),
        step_size=draw(st.sampled_from([D("0.001"), D("0.01"), D("0.1"), D("1")])),
        min_notional_usdt=draw(st.sampled_from([D("0"), D("5"), D("20"), D("100")])),
        max_leverage=draw(st.decimals(min_value=D("1"), max_value=D("125"), places=1)),
        tick_size=draw(st.sampled_from([None, D("0.01"), D("0.1")])),
        margin_in_use_usdt=equity * in_use_fraction,
        max_margin_fraction=draw(st.one_of(st.just(D("1")), st.decimals(min_value=D("0.05"), max_value=D("1"),
                                                                          places=2))),
        open_positions=draw(st.integers(min_value=0, max_value=3)),
        max_positions=draw(st.one_of(st.none(), st.integers(min_value=0, max_value=6))),
        max_quantity=draw(st.one_of(st.none(), st.decimals(min_value=D("0"), max_value=D("1000"), places=3))),
        min_quantity=draw(st.sampled_from([D("0"), D("0.001"), D("0.01")])),
    )


@given(sizing_inputs())
def test_size_detail_never_exceeds_any_cap(inp):
    result = size_detail(inp)
    qty = result.quantity

    assert qty >= 0
    assert qty * result.stop_distance <= inp.equity_usdt * inp.risk_fraction
    assert result.notional_usdt <= inp.equity_usdt * inp.max_leverage
    # margin_in_use + notional / leverage <= fraction x equity, multiplied out to avoid a division.
    assert (inp.margin_in_use_usdt * inp.max_leverage + result.notional_usdt
            <= inp.max_margin_fraction * inp.equity_usdt * inp.max_leverage) or qty == 0
    assert inp.max_quantity is None or qty <= inp.max_quantity


@given(sizing_inputs())
def test_size_detail_result_is_venue_valid_or_zero(inp):
    result = size_detail(inp)

    assert result.quantity % inp.step_size == 0
    assert result.quantity == 0 or (result.notional_usdt >= inp.min_notional_usdt
                                    and result.quantity >= inp.min_quantity)
    assert (result.quantity == 0) == (result.notional_usdt == 0)
    if inp.max_positions is not None and inp.open_positions >= inp.max_positions:
        assert result.quantity == 0


@given(sizing_inputs())
def test_size_detail_always_names_binding_and_reason(inp):
    result = size_detail(inp)

    assert result.reason
    assert result.quantity == 0 or result.binding in {"risk", "leverage", "margin", "max_quantity"}


@given(st.decimals(min_value=D("0.01"), max_value=D("99.99"), places=2))
def test_size_position_never_risks_more_than_budget(stop):
    inp = make_input(stop_price=stop)

    assert size_position(inp) * (inp.entry_price - stop) <= D("100")  # 1 % of 10 000


@given(prices, st.decimals(min_value=D("0"), max_value=D("500"), places=6), st.booleans())
def test_precision_check_accepted_orders_sit_on_the_grid(price, quantity, reduce_only):
    result = precision_check(price, quantity, BTC, reduce_only=reduce_only)

    assert result.quantity <= quantity
    assert result.price % BTC.tick_size == 0 and result.quantity % BTC.step_size == 0
    if result.ok:
        assert BTC.min_quantity <= result.quantity <= BTC.max_quantity
        assert reduce_only or result.price * result.quantity >= BTC.min_notional
