import json
from pathlib import Path

import ccxt
import pytest
from django.conf import settings

from market.exchanges.client import (
    NO_RETRY, CallStats, ClientOptions, RetryPolicy, call_with_retry, exchange_client, market_filters,
    market_resolve, rebase_urls,
)
from market.exchanges.errors import ExchangeRejected, ExchangeUnavailable

RECORDED = Path(settings.BASE_DIR).parent / "shared" / "fixtures" / "ccxt_binance" / "response.json"
START_MS = 1749254400000  # 2025-06-07 00:00 UTC, inside the emulator's BTCUSDT 1m recording
FAST = RetryPolicy(attempts=3, base_delay_s=0.5, max_delay_s=4.0)


@pytest.fixture
def client(binance_emulator):
    client = exchange_client(ClientOptions("binanceusdm", api_url=binance_emulator.url, timeout_ms=2_000))
    client.load_markets()
    return client


def klines(client):
    return lambda: client.fetch_ohlcv("BTC/USDT:USDT", "1m", START_MS, 5)


def test_rebase_urls_nested_tree_keeps_paths():
    urls = {"fapiPublic": "https://fapi.binance.com/fapi/v1", "nested": {"x": "https://api.{hostname}/api/v3"},
            "ws": None}

    rebased = rebase_urls(urls, "http://127.0.0.1:9/")

    assert rebased == {"fapiPublic": "http://127.0.0.1:9/fapi/v1", "nested": {"x": "http://127.0.0.1:9/api/v3"},
                       "ws": None}


def test_exchange_client_unknown_id_raises_rejected():
    with pytest.raises(ExchangeRejected, match="unknown exchange id 'nosuchexchange'"):
        exchange_client(ClientOptions("nosuchexchange"))


def test_exchange_client_public_ignores_configured_keys(settings):
    settings.EXCHANGE_API_KEY, settings.EXCHANGE_API_SECRET = "key-123", "secret-456"

    public = exchange_client(ClientOptions("binanceusdm"))
    keyed = exchange_client(ClientOptions("binanceusdm", with_keys=True))

    assert not public.apiKey and not public.secret
    assert (keyed.apiKey, keyed.secret) == ("key-123", "secret-456")


def test_exchange_client_defaults_rate_limit_and_timeout():
    client = exchange_client(ClientOptions("bitget", timeout_ms=3_000))

    assert client.enableRateLimit is True
    assert client.timeout == 3_000


def test_exchange_client_api_url_load_markets_only_asks_fapi_exchange_info(binance_emulator, client):
    assert [path for path, _ in binance_emulator.requests] == ["/fapi/v1/exchangeInfo"]
    assert client.market("BTC/USDT:USDT")["id"] == "BTCUSDT"


def test_market_resolve_venue_id_returns_linear_swap(client):
    market = market_resolve(client, "BTCUSDT")

    assert (market["symbol"], market["type"]) == ("BTC/USDT:USDT", "swap")


def test_market_resolve_unknown_symbol_raises_rejected(client):
    with pytest.raises(ExchangeRejected, match="has no market 'DOGEUSDT'"):
        market_resolve(client, "DOGEUSDT")


def test_market_filters_binance_returns_tick_step_and_min_notional(client):
    filters = market_filters(client, client.market("BTC/USDT:USDT"))

    assert filters == {"tick_size": "0.1", "step_size": "0.001", "min_notional": "100"}


def test_call_with_retry_429_honours_retry_after(binance_emulator, client):
    binance_emulator.fail("/fapi/v1/klines", status=429, times=2, retry_after_s=3)
    slept, stats = [], CallStats()

    rows = call_with_retry(client, klines(client), policy=FAST, sleep=slept.append, stats=stats)

    assert len(rows) == 5
    assert slept == [3.0, 3.0]
    assert (stats.requests, stats.retries) == (3, 2)
    assert binance_emulator.count("/fapi/v1/klines") == 3


def test_call_with_retry_418_and_5xx_back_off_exponentially(binance_emulator, client):
    binance_emulator.fail("/fapi/v1/klines", status=418)
    binance_emulator.fail("/fapi/v1/klines", status=503)
    slept = []

    call_with_retry(client, klines(client), policy=FAST, sleep=slept.append, stats=CallStats())

    assert slept == [0.5, 1.0]


def test_call_with_retry_retry_after_above_cap_waits_cap(binance_emulator, client):
    binance_emulator.fail("/fapi/v1/klines", status=429, retry_after_s=120)
    slept = []

    call_with_retry(client, klines(client), policy=FAST, sleep=slept.append, stats=CallStats())

    assert slept == [4.0]


def test_call_with_retry_timeout_is_retried(binance_emulator, binance_client_short_timeout):
    binance_emulator.fail("/fapi/v1/klines", delay_s=1.0)
    stats = CallStats()

    rows = call_with_retry(binance_client_short_timeout, klines(binance_client_short_timeout), policy=FAST,
                           sleep=lambda s: None, stats=stats)

    assert len(rows) == 5
    assert stats.retries == 1


@pytest.fixture
def binance_client_short_timeout(binance_emulator):
    client = exchange_client(ClientOptions("binanceusdm", api_url=binance_emulator.url, timeout_ms=300))
    client.load_markets()
    return client


def test_call_with_retry_persistent_failure_raises_unavailable(binance_emulator, client):
    binance_emulator.fail("/fapi/v1/klines", status=500, times=3)

    with pytest.raises(ExchangeUnavailable, match="binanceusdm: .*after 3 tries"):
        call_with_retry(client, klines(client), policy=FAST, sleep=lambda s: None, stats=CallStats())


def test_call_with_retry_bad_request_raises_rejected_without_retry(binance_emulator, client):
    stats = CallStats()

    with pytest.raises(ExchangeRejected):
        call_with_retry(client, lambda: client.fetch_ohlcv("BTC/USDT:USDT", "1m", START_MS, 5, {"limit": 5000}),
                        policy=FAST, sleep=lambda s: None, stats=stats)
    assert stats.requests == 1


def test_call_with_retry_closed_port_no_retry_raises_unavailable_once(closed_port_url):
    client = exchange_client(ClientOptions("binanceusdm", api_url=closed_port_url))
    stats = CallStats()

    with pytest.raises(ExchangeUnavailable, match="NetworkError"):
        call_with_retry(client, client.load_markets, policy=NO_RETRY, sleep=pytest.fail, stats=stats)
    assert stats.requests == 1


def test_emulator_klines_match_recorded_payload_types(client):
    recorded = json.loads(RECORDED.read_text())["methods"]["fetchOHLCV"][0]["httpResponse"]

    served = client.fapiPublicGetKlines({"symbol": "BTCUSDT", "interval": "1m", "startTime": START_MS, "limit": 3})

    assert len(served) == 3
    for served_row, recorded_row in zip(served, recorded):
        assert [type(v) for v in served_row] == [type(v) for v in recorded_row]
        assert served_row[6] - served_row[0] == recorded_row[6] - recorded_row[0]  # close time = open + 59 999 ms


def test_emulator_klines_limit_above_1500_is_refused(binance_emulator):
    client = exchange_client(ClientOptions("binanceusdm", api_url=binance_emulator.url))

    with pytest.raises(ccxt.BadRequest):
        client.fapiPublicGetKlines({"symbol": "BTCUSDT", "interval": "1m", "limit": 1501})
