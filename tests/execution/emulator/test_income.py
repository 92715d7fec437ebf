"""Funding settlement and the income history (GET /fapi/v1/income), through the real ccxt client.

Reference shape: the RECORDED fetchFundingHistory reply in shared/fixtures/ccxt_binance/response.json
(a portfolio-margin one, whose time and tranId are digit strings; USD-M sends numbers, as the emulator does).
"""
import json
from decimal import Decimal as D
from pathlib import Path

import ccxt
import pytest
from django.conf import settings

from execution.emulator import Emulator, ledger
from execution.emulator.rest_account import settle_funding
from execution.emulator.state import AccountState, Position
from tests.emulator.fixtures import usdm_client

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
HOUR_MS = 3_600_000
RECORDED = json.loads((Path(settings.BASE_DIR).parent / "shared" / "fixtures" / "ccxt_binance" /
                       "response.json").read_text())["methods"]


def funding_time(emulator, hours_ago: int) -> int:
    """Return a funding time `hours_ago` before the venue's clock, on Binance's 8-hour grid or not."""
    return emulator.venue.now_ms() - hours_ago * HOUR_MS


# -- the settlement itself (pure ledger) ---------------------------------------------------------------

@pytest.mark.parametrize(("amount", "mark", "rate", "payment"), [
    # a long pays a positive rate, a short receives it
    ("0.010", "60000", "0.0001", "-0.06"),
    ("-0.010", "60000", "0.0001", "0.06"),
    # a negative rate turns it round
    ("0.5", "2500", "-0.00025", "0.3125"),
    # half-up to 8 decimals, as Binance prints income
    ("0.001", "12345.67", "0.000012345", "-0.00015241"),
])
def test_settle_funding_pays_minus_amount_times_mark_times_rate(amount, mark, rate, payment):
    state = AccountState(wallet_usdt=D("1000"), positions={"BTCUSDT:BOTH": Position("BTCUSDT", "BOTH", D(amount))})

    rows = ledger.settle_funding(state, "BTCUSDT", D(rate), D(mark), ts_ms=28_800_000)

    assert [(r.symbol, r.income_type, r.amount, r.time_ms) for r in rows] == [
        ("BTCUSDT", "FUNDING_FEE", D(payment), 28_800_000)]
    assert state.wallet_usdt == D("1000") + D(payment)
    assert state.income == rows


@pytest.mark.parametrize("positions", [
    {},                                                                     # nothing held
    {"BTCUSDT:BOTH": Position("BTCUSDT", "BOTH", D(0))},                    # flat leg
    {"ETHUSDT:BOTH": Position("ETHUSDT", "BOTH", D("1"))},                  # another symbol
    {"BTCUSDT:BOTH": Position("BTCUSDT", "BOTH", D("0.0000000008"))},       # 0.0000000048 rounds to 0
])
def test_settle_funding_without_payment_books_nothing(positions):
    state = AccountState(wallet_usdt=D("1000"), positions=positions)

    assert ledger.settle_funding(state, "BTCUSDT", D("0.0001"), D("60000"), ts_ms=1) == []
    assert (state.wallet_usdt, state.income) == (D("1000"), [])


# -- GET /fapi/v1/income ------------------------------------------------------------------------------

def test_fetch_funding_history_reads_settled_payment(trading_emulator, usdm):
    usdm.create_order(BTC, "market", "buy", 0.01)
    wallet = D(usdm.fetch_balance()["info"]["totalWalletBalance"])
    ts_ms = funding_time(trading_emulator, 1)

    settle_funding(trading_emulator.venue, "BTCUSDT", D("0.0001"), D("60000"), ts_ms)
    history = usdm.fetch_funding_history(BTC, ts_ms - 1)

    assert [(h["symbol"], h["timestamp"], h["info"]["income"], h["code"]) for h in history] == [
        (BTC, ts_ms, "-0.06000000", "USDT")]
    assert D(usdm.fetch_balance()["info"]["totalWalletBalance"]) == wallet - D("0.06")


def test_income_reply_has_recorded_field_names_and_types(trading_emulator, usdm):
    usdm.create_order(BTC, "market", "buy", 0.01)
    settle_funding(trading_emulator.venue, "BTCUSDT", D("0.0001"), D("60000"), funding_time(trading_emulator, 1))

    served = usdm.fapiPrivateGetIncome({"incomeType": "FUNDING_FEE"})[0]
    reference = RECORDED["fetchFundingHistory"][0]["httpResponse"][0]

    assert set(served) == set(reference)
    assert isinstance(served["time"], int) and isinstance(served["tranId"], int)   # numbers on USD-M
    assert (served["incomeType"], served["info"], served["asset"], served["tradeId"]) == (
        "FUNDING_FEE", "FUNDING_FEE", "USDT", "")


def test_income_realized_pnl_and_commission_rows_follow_the_trades(usdm):
    usdm.create_order(BTC, "market", "buy", 0.01)
    close = usdm.create_order(BTC, "market", "sell", 0.01, params={"reduceOnly": True})
    trades = usdm.fetch_my_trades(BTC)

    commissions = usdm.fapiPrivateGetIncome({"incomeType": "COMMISSION"})
    realized = usdm.fapiPrivateGetIncome({"incomeType": "REALIZED_PNL", "symbol": "BTCUSDT"})

    assert [(c["tradeId"], c["income"]) for c in commissions] == [
        (t["id"], f"{-D(str(t['fee']['cost'])):.8f}") for t in trades]
    # the close at the unchanged price realises nothing: no REALIZED_PNL row, as on Binance
    assert close["status"] == "closed" and realized == []


def test_income_sums_to_the_wallet_change(trading_emulator, usdm):
    usdm.create_order(BTC, "market", "buy", 0.01)
    settle_funding(trading_emulator.venue, "BTCUSDT", D("0.0001"), D("60000"), funding_time(trading_emulator, 2))
    trading_emulator.set_price("BTCUSDT", D("61000"))
    usdm.create_order(BTC, "market", "sell", 0.01, params={"reduceOnly": True})

    rows = usdm.fapiPrivateGetIncome({"limit": 1000})

    assert {r["incomeType"] for r in rows} == {"FUNDING_FEE", "REALIZED_PNL", "COMMISSION"}
    assert D("10000") + sum(D(r["income"]) for r in rows) == D(usdm.fetch_balance()["info"]["totalWalletBalance"])


@pytest.mark.parametrize(("params", "expected_hours_ago"), [
    # startTime and endTime are inclusive; endTime alone reaches back past the last 7 days
    ({"startTime": "{t2}"}, [2, 1]),
    ({"endTime": "{t2}"}, [200, 3, 2]),
    ({"startTime": "{t3}", "endTime": "{t2}"}, [3, 2]),
    # from a start, the first rows; without one, the last rows
    ({"startTime": "{t3}", "limit": "1"}, [3]),
    ({"limit": "1"}, [1]),
    # without a window: the last 7 days only
    ({}, [3, 2, 1]),
])
def test_income_time_window_and_limit(trading_emulator, usdm, params, expected_hours_ago):
    usdm.create_order(BTC, "market", "buy", 0.01)
    times = {hours: funding_time(trading_emulator, hours) for hours in (200, 3, 2, 1)}
    for ts_ms in times.values():
        settle_funding(trading_emulator.venue, "BTCUSDT", D("0.0001"), D("60000"), ts_ms)
    query = {key: value.format(**{f"t{h}": t for h, t in times.items()}) for key, value in params.items()}

    rows = usdm.fapiPrivateGetIncome({"incomeType": "FUNDING_FEE", **query})

    assert [r["time"] for r in rows] == [times[h] for h in expected_hours_ago]


def test_income_symbol_filter_and_each_leg_settled_apart(trading_emulator, usdm):
    usdm.create_order(BTC, "market", "buy", 0.01)
    usdm.create_order(ETH, "market", "sell", 0.1)
    ts_ms = funding_time(trading_emulator, 1)
    settle_funding(trading_emulator.venue, "BTCUSDT", D("0.0001"), D("60000"), ts_ms)
    settle_funding(trading_emulator.venue, "ETHUSDT", D("0.0001"), D("2500"), ts_ms)

    eth = usdm.fapiPrivateGetIncome({"incomeType": "FUNDING_FEE", "symbol": "ETHUSDT"})

    assert [(r["symbol"], r["income"]) for r in eth] == [("ETHUSDT", "0.02500000")]


@pytest.mark.parametrize(("params", "message"), [
    ({"limit": "1001"}, "-1130"),
    ({"symbol": "NOPEUSDT"}, "-1121"),
])
def test_income_invalid_parameter_refused(usdm, params, message):
    with pytest.raises(ccxt.BadRequest, match=message):
        usdm.fapiPrivateGetIncome(params)


def test_settle_funding_publishes_wallet_update(trading_emulator, usdm):
    usdm.create_order(BTC, "market", "buy", 0.01)
    published = []
    trading_emulator.venue.listeners.append(published.extend)

    settle_funding(trading_emulator.venue, "BTCUSDT", D("0.0001"), D("60000"), funding_time(trading_emulator, 1))

    [event] = published
    assert (event["e"], event["a"]["m"], event["a"]["P"]) == ("ACCOUNT_UPDATE", "FUNDING_FEE", [])
    assert D(event["a"]["B"][0]["wb"]) == D(usdm.fetch_balance()["info"]["totalWalletBalance"])


def test_income_survives_restart(trading_emulator, usdm, emulator_state_file):
    usdm.create_order(BTC, "market", "buy", 0.01)
    ts_ms = funding_time(trading_emulator, 1)
    settle_funding(trading_emulator.venue, "BTCUSDT", D("0.0001"), D("60000"), ts_ms)
    trading_emulator.stop()

    with Emulator(state_file=emulator_state_file) as restarted:
        rows = usdm_client(restarted).fapiPrivateGetIncome({"incomeType": "FUNDING_FEE"})

    assert [(r["time"], r["income"]) for r in rows] == [(ts_ms, "-0.06000000")]
