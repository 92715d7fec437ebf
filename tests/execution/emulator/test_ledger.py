"""Positions, realised PnL, commissions and balances add up exactly (Decimal)."""
from decimal import Decimal as D

import pytest
from hypothesis import given, settings, strategies as st

from execution.emulator import ledger
from execution.emulator.params import OrderRequest
from execution.emulator.state import Position
from execution.emulator.venue import EmulatorConfig, Venue

BTC = "BTC/USDT:USDT"
START = D("10000")


def market(side: str, qty: str, client_order_id: str | None = None) -> OrderRequest:
    return OrderRequest("BTCUSDT", side, "MARKET", D(qty), D(0), "GTC", False, None, client_order_id)


RICH = D("1000000")  # enough margin for any generated sequence


def venue_at(price: str) -> Venue:
    venue = Venue(EmulatorConfig(starting_wallet_usdt=RICH))
    venue.set_price("BTCUSDT", D(price))
    return venue


def place(venue: Venue, request: OrderRequest) -> None:
    with venue.change() as now_ms:
        venue.engine.place_order(request, now_ms)


@pytest.mark.parametrize(("amount", "entry", "side", "qty", "price", "pnl", "new_amount", "new_entry"), [
    # opening and adding: volume-weighted entry, no PnL
    ("0", "0", "BUY", "1", "100", "0", "1", "100"),
    ("1", "100", "BUY", "3", "120", "0", "4", "115"),
    ("-1", "100", "SELL", "1", "90", "0", "-2", "95"),
    # reducing keeps the entry and books PnL
    ("2", "100", "SELL", "1", "110", "10", "1", "100"),
    ("-2", "100", "BUY", "1", "110", "-10", "-1", "100"),
    # closing resets the entry; flipping re-opens the rest at the fill price
    ("2", "100", "SELL", "2", "90", "-20", "0", "0"),
    ("1", "100", "SELL", "3", "105", "5", "-2", "105"),
])
def test_apply_fill_table(amount, entry, side, qty, price, pnl, new_amount, new_entry):
    position = Position("BTCUSDT", "BOTH", D(amount), D(entry))

    booked = ledger.apply_fill(position, side, D(qty), D(price), now_ms=1)

    assert (booked, position.amount, position.entry_price) == (D(pnl), D(new_amount), D(new_entry))


@pytest.mark.parametrize(("notional", "rate", "fee"), [
    ("600", "0.0005", "0.30000000"),
    ("0.123456789", "0.0002", "0.00002469"),  # half-up to 8 decimals
])
def test_commission_rounds_half_up_to_eight_places(notional, rate, fee):
    assert ledger.commission(D(notional), D(rate)) == D(fee)


def test_round_trip_wallet_is_start_plus_pnl_minus_fees(trading_emulator, usdm):
    usdm.create_order(BTC, "market", "buy", 0.02)
    usdm.create_order(BTC, "market", "buy", 0.01)
    trading_emulator.set_price("BTCUSDT", D("61500"))
    usdm.create_order(BTC, "market", "sell", 0.03)

    trades = usdm.fetch_my_trades(BTC)
    balance = usdm.fetch_balance()["info"]
    fees = sum(D(t["info"]["commission"]) for t in trades)
    pnl = sum(D(t["info"]["realizedPnl"]) for t in trades)
    assert pnl == D("45")  # (61500 - 60000) x 0.03
    assert fees == D("0.6") + D("0.3") + D("0.9225")  # 1200, 600 and 1845 USDT traded at 0.05 %
    assert D(balance["totalWalletBalance"]) == START + pnl - fees == D("10043.1775")


def test_entry_price_is_volume_weighted(trading_emulator, usdm):
    usdm.create_order(BTC, "market", "buy", 0.01)
    trading_emulator.set_price("BTCUSDT", D("63000"))
    usdm.create_order(BTC, "market", "buy", 0.02)

    info = usdm.fetch_positions([BTC])[0]["info"]

    assert (D(info["positionAmt"]), D(info["entryPrice"])) == (D("0.03"), D("62000"))
    assert D(info["unRealizedProfit"]) == D("30")  # (63000 - 62000) x 0.03
    assert D(info["notional"]) == D("1890")


def test_partial_close_keeps_entry_and_books_pnl(trading_emulator, usdm):
    usdm.create_order(BTC, "market", "buy", 0.03)
    trading_emulator.set_price("BTCUSDT", D("59000"))

    usdm.create_order(BTC, "market", "sell", 0.01)

    info = usdm.fetch_positions([BTC])[0]["info"]
    assert (D(info["positionAmt"]), D(info["entryPrice"])) == (D("0.02"), D("60000"))
    assert D(usdm.fetch_my_trades(BTC)[-1]["info"]["realizedPnl"]) == D("-10")


def test_flip_long_to_short_opens_remainder_at_fill_price(trading_emulator, usdm):
    usdm.create_order(BTC, "market", "buy", 0.01)
    trading_emulator.set_price("BTCUSDT", D("60500"))

    usdm.create_order(BTC, "market", "sell", 0.03)

    position = usdm.fetch_positions([BTC])[0]
    assert (position["side"], position["contracts"], position["entryPrice"]) == ("short", 0.02, 60500.0)


def test_balance_used_is_initial_margin_at_leverage(usdm):
    usdm.set_leverage(10, BTC)
    usdm.create_order(BTC, "market", "buy", 0.1)

    info = usdm.fetch_balance()["info"]

    assert D(info["totalPositionInitialMargin"]) == D("600")  # 6000 notional / 10
    assert D(info["availableBalance"]) == D(info["totalWalletBalance"]) - D("600")


def test_open_limit_order_reserves_margin(usdm):
    usdm.create_order(BTC, "limit", "buy", 0.1, 50000)

    info = usdm.fetch_balance()["info"]

    assert D(info["totalOpenOrderInitialMargin"]) == D("250")  # 5000 / default 20x


def test_hedge_mode_keeps_long_and_short_legs(usdm):
    usdm.set_position_mode(True)
    usdm.create_order(BTC, "market", "buy", 0.01, params={"positionSide": "LONG"})
    usdm.create_order(BTC, "market", "sell", 0.02, params={"positionSide": "SHORT"})

    legs = {p["info"]["positionSide"]: D(p["info"]["positionAmt"]) for p in usdm.fetch_positions([BTC])}

    assert legs == {"LONG": D("0.01"), "SHORT": D("-0.02")}


def test_v2_endpoints_report_leverage_and_flat_symbols(usdm):
    usdm.set_leverage(5, BTC)

    rows = usdm.fapiPrivateV2GetPositionRisk()
    balance = usdm.fapiPrivateV2GetBalance()

    assert {r["symbol"]: r["leverage"] for r in rows} == {"BTCUSDT": "5", "ETHUSDT": "20"}
    assert balance[0]["asset"] == "USDT" and D(balance[0]["balance"]) == START


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["BUY", "SELL"]), st.integers(1, 50), st.integers(55_000, 65_000)),
                min_size=1, max_size=12))
def test_wallet_equals_start_plus_booked_pnl_minus_fees(steps):
    venue = venue_at("60000")

    for side, qty_steps, price in steps:
        venue.set_price("BTCUSDT", D(price))
        place(venue, market(side, str(D(qty_steps) * D("0.01"))))

    trades = venue.state.trades
    booked = sum(t.realized_pnl - t.commission for t in trades)
    signed = sum(t.qty if t.side == "BUY" else -t.qty for t in trades)
    assert venue.state.wallet_usdt == RICH + booked
    assert venue.state.position("BTCUSDT", "BOTH").amount == signed


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 30), st.integers(55_000, 65_000)), min_size=1, max_size=8),
       st.integers(55_000, 65_000))
def test_closing_everything_books_exactly_the_marked_pnl(buys, exit_price):
    venue = venue_at("60000")
    for qty_steps, price in buys:
        venue.set_price("BTCUSDT", D(price))
        place(venue, market("BUY", str(D(qty_steps) * D("0.01"))))
    venue.set_price("BTCUSDT", D(exit_price))
    position = venue.state.position("BTCUSDT", "BOTH")
    marked_pnl = (D(exit_price) - position.entry_price) * position.amount

    place(venue, market("SELL", str(position.amount)))

    assert venue.state.trades[-1].realized_pnl == marked_pnl
    assert position.amount == 0
