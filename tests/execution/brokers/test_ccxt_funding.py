"""CcxtBroker.funding_payments: Binance's income history (FUNDING_FEE) through ccxt's fetch_funding_history.

Two venues: FakeVenue (test_ccxt_requests) answering with ccxt's RECORDED fetchFundingHistory reply and
SYNTHETIC edits of it (times and tranIds changed, marked where made), and the local emulator with the
real ccxt client.
"""
from decimal import Decimal as D

import pytest

from execution.brokers.base import ExchangeUnavailable, FundingReport, RateLimited
from execution.brokers.ccxt import FUNDING_PAGE, CcxtBroker
from execution.emulator.rest_account import settle_funding
from tests.emulator.fixtures import usdm_client
from tests.execution.brokers.test_ccxt_requests import RESPONSES, recorded_request

INCOME = "/fapi/v1/income"
# RECORDED: a portfolio-margin FUNDING_FEE row (time and tranId as digit strings; USD-M sends numbers).
RECORDED_ROW = RESPONSES["fetchFundingHistory"][0]["httpResponse"][0]
RECORDED_MS = 1707465600000


def income_row(ts_ms: int, tran_id: int, income: str = "-0.04618913", **fields) -> dict:
    """Return the recorded row with its time, id and amount changed (SYNTHETIC)."""
    return RECORDED_ROW | {"time": ts_ms, "tranId": tran_id, "income": income} | fields


def test_funding_payments_recorded_reply_reports_exact_decimal(broker, venue):
    venue.reply("GET", INCOME, [RECORDED_ROW])

    reports = broker.funding_payments("BTCUSDT", RECORDED_MS - 1)

    assert reports == [FundingReport("BTCUSDT", RECORDED_MS, D("-0.04618913"), None, "8082457372019390060")]


@pytest.mark.parametrize(("symbol", "params"), [
    ("BTCUSDT", {"incomeType": "FUNDING_FEE", "symbol": "BTCUSDT", "startTime": "1000", "limit": "1000"}),
    ("BTC/USDT:USDT", {"incomeType": "FUNDING_FEE", "symbol": "BTCUSDT", "startTime": "1000", "limit": "1000"}),
    # every symbol: no symbol parameter
    (None, {"incomeType": "FUNDING_FEE", "startTime": "1000", "limit": "1000"}),
])
def test_funding_payments_sends_exact_request(broker, venue, symbol, params):
    venue.reply("GET", INCOME, [])

    broker.funding_payments(symbol, 1000)

    assert [(s.method, s.path, s.params) for s in venue.sent if s.path == INCOME] == [("GET", INCOME, params)]


def test_funding_payments_request_matches_recorded_ccxt_request(broker, venue):
    path, names = recorded_request("fetchFundingHistory", "Fetch Funding History - linear")
    venue.reply("GET", INCOME, [])

    broker.funding_payments("BTCUSDT", 1000)

    # the recorded call had no start and no limit; ours pages from a start
    assert set(venue.last(path).params) == names | {"startTime", "limit"}


def test_funding_payments_full_page_reads_next_page_from_last_time_once_each(broker, venue):
    first = [income_row(1_000 + n, 10_000 + n) for n in range(FUNDING_PAGE - 1)]
    last_ms = 1_000 + FUNDING_PAGE
    shared = income_row(last_ms, 90_000, symbol="BTCUSDT")
    venue.reply("GET", INCOME, [*first, shared])
    # the next page starts at the last row's time: that row again, then one more of the same instant
    venue.reply("GET", INCOME, [shared, income_row(last_ms, 90_001, symbol="LTCUSDT")])

    reports = broker.funding_payments(None, 1_000)

    assert [s.params["startTime"] for s in venue.sent if s.path == INCOME] == ["1000", str(last_ms)]
    assert len(reports) == FUNDING_PAGE + 1
    assert [(r.symbol, r.venue_id) for r in reports[-2:]] == [("BTCUSDT", "90000"), ("LTCUSDT", "90001")]


def test_funding_payments_full_page_of_one_instant_stops(broker, venue):
    venue.reply("GET", INCOME, [income_row(5_000, n) for n in range(FUNDING_PAGE)])

    reports = broker.funding_payments(None, 5_000)

    assert len(reports) == FUNDING_PAGE and len([s for s in venue.sent if s.path == INCOME]) == 1


def test_funding_payments_other_asset_skipped(broker, venue):
    venue.reply("GET", INCOME, [RECORDED_ROW, income_row(RECORDED_MS, 2, asset="USDC", symbol="BTCUSDC")])

    assert [r.venue_id for r in broker.funding_payments(None, 0)] == ["8082457372019390060"]


@pytest.mark.parametrize(("status", "body", "error", "sleeps_expected"), [
    # SYNTHETIC error bodies in Binance's form; a read is retried with backoff, then gives up
    (503, '{"code": -1001, "msg": "Internal error; unable to process your request."}', ExchangeUnavailable,
     [0.5, 1.0]),
    (429, '{"code": -1003, "msg": "Too many requests."}', RateLimited, []),
])
def test_funding_payments_venue_error_translated(broker, venue, sleeps, status, body, error, sleeps_expected):
    venue.reply("GET", INCOME, body, status=status, times=3)

    with pytest.raises(error, match=r"-100[13] "):
        broker.funding_payments(None, 0)
    assert sleeps == sleeps_expected


# -- against the emulator, with the real ccxt client ------------------------------------------------

def test_funding_payments_emulator_every_symbol_oldest_first(trading_emulator):
    client = usdm_client(trading_emulator)
    client.load_markets()
    broker = CcxtBroker(client, sleep=lambda s: None)
    client.create_order("BTC/USDT:USDT", "market", "buy", 0.01)
    client.create_order("ETH/USDT:USDT", "market", "sell", 0.1)
    now_ms = broker.server_time_ms()
    older, newer = now_ms - 8 * 3_600_000, now_ms - 1_000
    settle_funding(trading_emulator.venue, "ETHUSDT", D("0.0001"), D("2500"), newer)
    settle_funding(trading_emulator.venue, "BTCUSDT", D("0.0001"), D("60000"), older)
    settle_funding(trading_emulator.venue, "BTCUSDT", D("-0.0002"), D("61000"), newer)

    reports = broker.funding_payments(None, older)

    assert [(r.symbol, r.ts_ms, r.amount_usdt) for r in reports] == [
        ("BTCUSDT", older, D("-0.06")), ("BTCUSDT", newer, D("0.122")), ("ETHUSDT", newer, D("0.025"))]
    assert broker.funding_payments("ETHUSDT", newer + 1) == []
    assert trading_emulator.params(INCOME)[-1]["startTime"] == str(newer + 1)
