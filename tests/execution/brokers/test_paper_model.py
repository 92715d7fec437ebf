"""The paper venue's market model: resting limit fills, funding and liquidation."""
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from hypothesis import given, strategies as st

from execution.brokers.paper_model import (FUNDING_INTERVAL_MS, Bar, RestingLimit, funding_payment, funding_times,
                                           limit_fill, liquidation_clearance_fee, liquidation_price)

STEP = D("0.001")
BUY = RestingLimit("tb-abc-entry", "buy", D("100"), D("1.000"))
SELL = RestingLimit("tb-abc-entry", "sell", D("100"), D("1.000"))


def bar(open_, high, low, volume="100", open_ms=60_000) -> Bar:
    return Bar(open_ms, D(open_), D(high), D(low), D(volume))


def fill(order, b, participation="1"):
    return limit_fill(order, b, participation_fraction=D(participation), step_size=STEP,
                      maker_fee_fraction=D("0.0002"))


def ms(*args) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    "order, b, expected",
    [
        # a buy: touching the price is not enough (the queue), trading through fills at the limit
        (BUY, bar("101", "102", "100"), None),
        (BUY, bar("101", "102", "99.9"), ("100", "1.000")),
        # a bar that opens through the price still fills at the limit, never better
        (BUY, bar("97", "98", "96"), ("100", "1.000")),
        (BUY, bar("101", "105", "100.5"), None),
        # a sell mirrors it
        (SELL, bar("99", "100", "98"), None),
        (SELL, bar("99", "100.1", "98"), ("100", "1.000")),
        (SELL, bar("103", "104", "102"), ("100", "1.000")),
    ],
)
def test_limit_fill_trades_through_rule(order, b, expected):
    result = fill(order, b)

    assert (str(result.price), str(result.quantity)) == expected if expected else result is None


@pytest.mark.parametrize(
    "volume, participation, filled, expected",
    [
        ("5", "0.1", "0", "0.500"),          # a tenth of the bar's volume
        ("3.3333", "0.1", "0", "0.333"),     # rounded down to the step
        ("100", "0.1", "0.800", "0.200"),    # never more than what remains
        ("0.009", "0.1", "0", None),         # less than one step: no fill
    ],
)
def test_limit_fill_participation_caps_quantity(volume, participation, filled, expected):
    order = RestingLimit("tb-abc-entry", "buy", D("100"), D("1.000"), D(filled))

    result = fill(order, bar("101", "101", "99", volume), participation)

    assert (result.quantity if result else None) == (D(expected) if expected else None)


def test_limit_fill_is_maker_with_deterministic_trade_id():
    order = RestingLimit("tb-abc-entry", "buy", D("60000"), D("0.500"), exchange_order_id="paper-tb-abc-entry")

    result = fill(order, bar("60010", "60020", "59990", "3", open_ms=1_700_000_040_000), "0.1")

    assert (result.trade_id, result.ts_ms, result.liquidity) == ("paper-tb-abc-entry-1700000040000",
                                                                 1_700_000_040_000, "maker")
    assert (result.quantity, result.fee_usdt, result.exchange_order_id) == (D("0.300"), D("3.6"), "paper-tb-abc-entry")


def test_limit_fill_nothing_remaining_returns_none():
    assert fill(RestingLimit("c", "buy", D("100"), D("1"), D("1")), bar("90", "91", "89")) is None


prices = st.decimals(min_value=D("90"), max_value=D("110"), places=1)
bars = st.lists(st.tuples(prices, st.decimals(min_value=D("0"), max_value=D("5"), places=1),
                          st.decimals(min_value=D("0"), max_value=D("5"), places=1),
                          st.decimals(min_value=D("0"), max_value=D("20"), places=3)), max_size=12)


@given(st.sampled_from(["buy", "sell"]), bars, st.decimals(min_value=D("0.001"), max_value=D("1"), places=3))
def test_limit_fill_over_bars_never_exceeds_quantity_nor_worse_price(side, rows, participation):
    order, total = RestingLimit("c", side, D("100"), D("2.500")), D(0)

    for i, (open_, up, down, volume) in enumerate(rows):
        result = limit_fill(order, Bar(i, open_, open_ + up, open_ - down, volume),
                            participation_fraction=participation, step_size=STEP, maker_fee_fraction=D("0.0002"))
        if result is not None:
            traded_through = open_ - down < order.price if side == "buy" else open_ + up > order.price
            assert traded_through and result.price == order.price and result.quantity > 0
            total += result.quantity
            order = RestingLimit("c", side, order.price, order.quantity, order.filled + result.quantity)

    assert total <= order.quantity


@pytest.mark.parametrize(
    "start, end, expected",
    [
        # settlements at 00:00, 08:00 and 16:00 UTC; the start is excluded, the end included
        (ms(2026, 11, 25, 7, 0), ms(2026, 11, 25, 8, 0), [ms(2026, 11, 25, 8, 0)]),
        (ms(2026, 11, 25, 8, 0), ms(2026, 11, 25, 15, 59), []),
        (ms(2026, 11, 25, 7, 59), ms(2026, 11, 26, 0, 0),
         [ms(2026, 11, 25, 8, 0), ms(2026, 11, 25, 16, 0), ms(2026, 11, 26, 0, 0)]),
        (ms(2026, 11, 25, 9, 0), ms(2026, 11, 25, 8, 0), []),
    ],
)
def test_funding_times_every_eight_hours_utc(start, end, expected):
    assert funding_times(start, end) == expected


@pytest.mark.parametrize(
    "side, quantity, mark, rate, expected",
    [
        # a long pays a positive rate, a short receives it; a negative rate reverses both
        ("LONG", "0.5", "60100", "0.0001", "-3.005"),
        ("SHORT", "0.5", "60100", "0.0001", "3.005"),
        ("LONG", "0.5", "60100", "-0.0001", "3.005"),
        # quantized to 1e-8 USDT
        ("LONG", "0.001", "61234.5", "0.00003077", "-0.00188419"),
    ],
)
def test_funding_payment_sign_and_amount(side, quantity, mark, rate, expected):
    assert funding_payment(side, D(quantity), D(mark), D(rate)) == D(expected)


@given(st.sampled_from(["LONG", "SHORT"]), st.decimals(min_value=D("0.001"), max_value=D("100"), places=3),
       st.decimals(min_value=D("1"), max_value=D("100000"), places=1),
       st.decimals(min_value=D("-0.003"), max_value=D("0.003"), places=8))
def test_funding_payment_long_pays_positive_rate(side, quantity, mark, rate):
    amount = funding_payment(side, quantity, mark, rate)

    direction = 1 if side == "LONG" else -1
    assert amount * direction * rate <= 0
    assert abs(amount - (-direction * quantity * mark * rate)) <= D("0.000000005")


def test_funding_payment_unknown_side_raises():
    with pytest.raises(ValueError, match="LONG or SHORT"):
        funding_payment("buy", D("1"), D("1"), D("0.0001"))


def test_funding_interval_is_eight_hours():
    assert FUNDING_INTERVAL_MS == 28_800_000


@pytest.mark.parametrize(
    "side, entry, quantity, margin, mmr, expected",
    [
        # 3x isolated long and short of 1 BTC at 60 000 with Binance's first-bracket 0.4 %
        ("LONG", "60000", "1", "20000", "0.004", "40160.64257029"),
        ("SHORT", "60000", "1", "20000", "0.004", "79681.27490039"),
        # without maintenance margin the position is liquidated when the loss eats the margin
        ("LONG", "100", "2", "50", "0", "75"),
        ("SHORT", "100", "2", "50", "0", "125"),
        # a long with more margin than notional can never be liquidated
        ("LONG", "100", "1", "150", "0.004", "0"),
    ],
)
def test_liquidation_price_binance_isolated_formula(side, entry, quantity, margin, mmr, expected):
    assert liquidation_price(side, D(entry), D(quantity), D(margin), D(mmr)) == D(expected)


def test_liquidation_price_maintenance_amount_moves_it_away_from_entry():
    # Binance's maintenance margin is notional * rate - maintenance amount: the amount lowers it.
    plain = liquidation_price("LONG", D("60000"), D("1"), D("20000"), D("0.004"))

    with_cum = liquidation_price("LONG", D("60000"), D("1"), D("20000"), D("0.004"), D("50"))

    assert with_cum == D("40110.44176707") < plain


@pytest.mark.parametrize("args", [("LONG", D("0"), D("1"), D("1"), D("0")), ("LONG", D("1"), D("0"), D("1"), D("0")),
                                  ("SHORT", D("1"), D("1"), D("-1"), D("0")), ("LONG", D("1"), D("1"), D("1"), D("1"))])
def test_liquidation_price_invalid_input_raises(args):
    with pytest.raises(ValueError, match="need entry_price > 0"):
        liquidation_price(*args)


entries = st.decimals(min_value=D("1"), max_value=D("100000"), places=2)
quantities = st.decimals(min_value=D("0.001"), max_value=D("50"), places=3)
fractions = st.decimals(min_value=D("0.01"), max_value=D("1"), places=2)
mmrs = st.decimals(min_value=D("0"), max_value=D("0.05"), places=4)


@given(st.sampled_from(["LONG", "SHORT"]), entries, quantities, fractions, fractions, mmrs)
def test_liquidation_price_on_losing_side_and_monotone_in_margin(side, entry, quantity, f1, f2, mmr):
    notional = entry * quantity
    # Margin above the maintenance margin at entry: less would liquidate at once.
    low, high = sorted((notional * (mmr + f1 * D("0.9")), notional * (mmr + f2 * D("0.9"))))
    low, high = low + D("0.01"), high + D("0.01")

    at_low = liquidation_price(side, entry, quantity, low, mmr)
    at_high = liquidation_price(side, entry, quantity, high, mmr)

    if side == "LONG":
        assert at_low < entry and at_high <= at_low
    else:
        assert at_low > entry and at_high >= at_low


def test_liquidation_clearance_fee_makes_the_loss_the_whole_margin():
    price = liquidation_price("LONG", D("100"), D("2"), D("50"), D("0.01"))
    on_tick = D("75.8")                     # rounded up to a 0.1 tick, towards the entry, as the venue model does
    assert on_tick - D("0.1") < price <= on_tick

    for exit_price in (price.quantize(D("0.00000001")), on_tick):
        fee = liquidation_clearance_fee("LONG", D("2"), D("100"), exit_price, D("50"))
        assert (D("100") - exit_price) * 2 + fee == D("50")


def test_liquidation_clearance_fee_of_a_short_and_beyond_bankruptcy():
    price = liquidation_price("SHORT", D("100"), D("2"), D("50"), D("0.01"))
    fee = liquidation_clearance_fee("SHORT", D("2"), D("100"), price, D("50"))
    assert (price - D("100")) * 2 + fee == D("50") and fee > 0
    # A fill past the bankruptcy price (margin exhausted) takes no fee: the insurance fund covers the rest.
    assert liquidation_clearance_fee("SHORT", D("2"), D("100"), D("126"), D("50")) == 0
    with pytest.raises(ValueError):
        liquidation_clearance_fee("SHORT", D("2"), D("100"), price, D("-1"))

