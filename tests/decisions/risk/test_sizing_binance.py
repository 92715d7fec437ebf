"""Sizing and the precision gate against Binance USD-M's real filters and ccxt's recorded payloads.

Markets come from ccxt talking to the local emulator (tests/emulator/binance.py), whose exchangeInfo
carries Binance's real BTCUSDT/ETHUSDT filters; prices are real recorded 1m candles. The recorded
requests and responses are ccxt's static Binance fixtures in ../shared/fixtures/ccxt_binance/.
"""
import json
from decimal import ROUND_DOWN, Decimal as D
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from django.conf import settings

from decisions.risk.sizing import (
    SizingInput, VenueFilters, brackets_from_ccxt, filters_from_ccxt_market, maintenance_margin_rate,
    precision_check, round_stop, size_detail,
)
from market.exchanges.client import ClientOptions, exchange_client

RECORDED = Path(settings.BASE_DIR).parent / "shared" / "fixtures" / "ccxt_binance"
BTC_CANDLE_MS = 1749254400000  # 2025-06-07 00:00 UTC, BTCUSDT close 104264.9
ETH_CANDLE_MS = 1749285840000  # the first ETHUSDT minute of the recording, close 2485.35


def recorded(name: str) -> dict:
    # parse_float=Decimal keeps the recorded numbers exactly as written.
    return json.loads((RECORDED / name).read_text(), parse_float=D)


@pytest.fixture
def client(binance_emulator):
    client = exchange_client(ClientOptions("binanceusdm", api_url=binance_emulator.url, timeout_ms=2_000))
    client.load_markets()
    return client


def close_at(client, symbol: str, open_time_ms: int) -> D:
    [candle] = client.fetch_ohlcv(symbol, "1m", open_time_ms, 1)
    return D(repr(candle[4]))


def sizing(filters: VenueFilters, equity: str, risk: str, entry: D, stop: D, **extra) -> SizingInput:
    return SizingInput(D(equity), D(risk), entry, stop, filters.step_size, filters.min_notional,
                       tick_size=filters.tick_size, max_quantity=filters.max_quantity,
                       min_quantity=filters.min_quantity, **extra)


@pytest.mark.parametrize("symbol, market_order, expected", [
    # LOT_SIZE maxQty 1000 for limit orders; MARKET_LOT_SIZE maxQty 120 for market orders
    ("BTC/USDT:USDT", False, VenueFilters(D("0.1"), D("0.001"), D("0.001"), D("1000"), D("100"))),
    ("BTC/USDT:USDT", True, VenueFilters(D("0.1"), D("0.001"), D("0.001"), D("120"), D("100"))),
    ("ETH/USDT:USDT", False, VenueFilters(D("0.01"), D("0.001"), D("0.001"), D("1000"), D("20"))),
])
def test_filters_from_ccxt_market_emulator_reads_binance_filters(client, symbol, market_order, expected):
    assert filters_from_ccxt_market(client.market(symbol), market_order=market_order) == expected


def test_size_detail_btc_real_candle_sized_by_risk(client):
    filters = filters_from_ccxt_market(client.market("BTC/USDT:USDT"))
    entry = close_at(client, "BTC/USDT:USDT", BTC_CANDLE_MS)

    result = size_detail(sizing(filters, "10000", "0.005", entry, entry * D("0.99")))

    # Stop 103222.251 floors to 103222.2: 50 USDT over 1042.7 allows 0.04795..., 0.047 BTC.
    assert entry == D("104264.9")
    assert (result.binding, result.quantity, result.stop_distance) == ("risk", D("0.047"), D("1042.7"))
    assert result.notional_usdt == D("4900.4503")
    assert precision_check(entry, result.quantity, filters).ok


def test_size_detail_btc_small_account_rounds_to_zero_with_reason(client):
    filters = filters_from_ccxt_market(client.market("BTC/USDT:USDT"))
    entry = close_at(client, "BTC/USDT:USDT", BTC_CANDLE_MS)

    result = size_detail(sizing(filters, "100", "0.005", entry, entry * D("0.99")))

    assert result.quantity == 0
    assert result.binding == "step"
    assert result.reason == "rounds down to 0: the risk cap allows 0.00047952431 < one step 0.001"


def test_size_detail_eth_below_min_notional_says_so(client):
    filters = filters_from_ccxt_market(client.market("ETH/USDT:USDT"))
    entry = close_at(client, "ETH/USDT:USDT", ETH_CANDLE_MS)

    result = size_detail(sizing(filters, "30", "0.01", entry, entry * D("0.98")))

    # 0.30 USDT over 49.71 (stop 2435.643 floors to 2435.64) allows 0.006 ETH = 14.91 USDT < 20 USDT.
    assert (result.quantity, result.binding) == (0, "min_notional")
    assert result.reason == "below min notional: 0.006 x 2485.35 = 14.9121 USDT < 20 USDT"


@pytest.mark.parametrize("market_order, binding, quantity", [
    (True, "max_quantity", D("120")),   # MARKET_LOT_SIZE maxQty
    (False, "risk", D("191.809")),      # 200 000 USDT over 1042.7, under LOT_SIZE maxQty 1000
])
def test_size_detail_btc_large_account_capped_by_venue_max(client, market_order, binding, quantity):
    filters = filters_from_ccxt_market(client.market("BTC/USDT:USDT"), market_order=market_order)
    entry = close_at(client, "BTC/USDT:USDT", BTC_CANDLE_MS)

    result = size_detail(sizing(filters, "20000000", "0.01", entry, entry * D("0.99")))

    assert (result.binding, result.quantity) == (binding, quantity)


def test_size_detail_btc_margin_in_use_leaves_room_for_smaller_trade(client):
    filters = filters_from_ccxt_market(client.market("BTC/USDT:USDT"))
    entry = close_at(client, "BTC/USDT:USDT", BTC_CANDLE_MS)

    # 5 000 USDT cap - 4 500 in use = 500 USDT of margin, x3 = 1 500 USDT = 0.01438... BTC.
    result = size_detail(sizing(filters, "10000", "0.005", entry, entry * D("0.99"),
                                margin_in_use_usdt=D("4500")))

    assert (result.binding, result.quantity) == ("margin", D("0.014"))
    assert D("4500") + result.margin_usdt <= D("5000")


def test_size_detail_btc_positions_at_cap_refuses(client):
    filters = filters_from_ccxt_market(client.market("BTC/USDT:USDT"))
    entry = close_at(client, "BTC/USDT:USDT", BTC_CANDLE_MS)

    result = size_detail(sizing(filters, "10000", "0.005", entry, entry * D("0.99"), open_positions=2,
                                max_positions=2))

    assert (result.quantity, result.reason) == (0, "2 positions open, at the cap of 2")


def btc_recorded_orders() -> list[tuple[str, D, D | None, D | None, bool]]:
    """Return (description, amount, price, trigger, reduce_only) of every recorded BTC/USDT:USDT order."""
    orders = []
    for entry in recorded("request.json")["methods"]["createOrder"]:
        symbol, _type, _side, amount, price, *rest = entry["input"] + [None] * (5 - len(entry["input"]))
        params = rest[0] if rest else {}
        if symbol == "BTC/USDT:USDT":
            orders.append((entry["description"], amount, price, params.get("triggerPrice"),
                           bool(params.get("reduceOnly"))))
    for entry in recorded("response.json")["methods"]["createOrders"]:
        for order in entry["input"][0]:
            if order["symbol"] == "BTC/USDT:USDT":
                orders.append((entry["description"], order["amount"], order["price"], None, False))
    return orders


def test_btc_recorded_orders_found():
    # trailing, two hedged market exits, a conditional limit (request.json) and a batch limit (response.json)
    assert [amount for _, amount, *_ in btc_recorded_orders()] == [D("0.11"), D("0.01"), D("0.01"), D("0.002"),
                                                                  D("0.2")]


@pytest.mark.parametrize("description, amount, price, trigger, reduce_only", btc_recorded_orders())
def test_precision_check_recorded_btc_orders_pass_unchanged(client, description, amount, price, trigger,
                                                            reduce_only):
    filters = filters_from_ccxt_market(client.market("BTC/USDT:USDT"), market_order=price is None)
    # A market order has no price: its notional is checked at the recorded candle's close.
    reference = price if price is not None else close_at(client, "BTC/USDT:USDT", BTC_CANDLE_MS)

    result = precision_check(reference, amount, filters, reduce_only=reduce_only)

    assert result.ok, description
    assert (result.price, result.quantity) == (reference, amount)
    assert trigger is None or precision_check(trigger, amount, filters).price == trigger


@pytest.mark.parametrize("index", [0, 1])
def test_precision_check_matches_ccxt_recorded_rounding(index):
    # "weird price/amount" LTC orders: ccxt sent the amount truncated to the step and the price to the tick.
    # The emulator has no LTCUSDT, so the grid is the one the recorded output implies (3 and 2 decimals);
    # only rounding is compared, not the testnet's minimums.
    entry = recorded("request.json")["methods"]["createOrder"][index]
    _symbol, _type, _side, amount, price = entry["input"]
    sent = {key: D(values[0]) for key, values in parse_qs(entry["output"]).items() if key in ("quantity", "price")}

    result = precision_check(price, amount, VenueFilters(tick_size=D("0.01"), step_size=D("0.001")))

    assert (result.quantity, result.price) == (sent["quantity"], sent["price"])


def test_precision_check_recorded_batch_response_values_on_grid(client):
    # The venue echoed origQty "0.200" and price "110001.00" for the recorded batch order.
    [order] = recorded("response.json")["methods"]["createOrders"][0]["httpResponse"]
    filters = filters_from_ccxt_market(client.market("BTC/USDT:USDT"))

    result = precision_check(D(order["price"]), D(order["origQty"]), filters)

    assert result.ok
    assert (result.price, result.quantity) == (D("110001"), D("0.2"))


def recorded_positions() -> list[dict]:
    return [position for entry in recorded("response.json")["methods"]["fetchPositions"]
            for position in entry["parsedResponse"]]


@pytest.mark.parametrize("position", recorded_positions(), ids=lambda p: str(p["notional"]))
def test_maintenance_margin_rate_matches_recorded_positions(position):
    brackets = brackets_from_ccxt(recorded("response.json")["options"]["leverageBrackets"][position["symbol"]])

    rate = maintenance_margin_rate(position["notional"], brackets)

    assert rate == position["maintenanceMarginPercentage"]
    # Binance's own maintMargin is notional x rate cut to 8 decimals.
    venue_margin = D(position["info"]["maintMargin"])
    assert (position["notional"] * rate).quantize(D("1e-8"), rounding=ROUND_DOWN) == venue_margin


@pytest.mark.parametrize("symbol, notional, rate", [
    ("BTC/USDT:USDT", D("250000"), D("0.01")),
    ("BTC/USDT:USDT", D("2999999.99"), D("0.01")),
    ("ETH/USDT:USDT", D("100000"), D("0.0065")),
    ("LTC/USDT:USDT", D("9999"), D("0.0065")),
])
def test_maintenance_margin_rate_recorded_bracket_edges(symbol, notional, rate):
    brackets = brackets_from_ccxt(recorded("response.json")["options"]["leverageBrackets"][symbol])

    assert maintenance_margin_rate(notional, brackets) == rate


def test_round_stop_btc_tick_keeps_stop_beyond_level():
    # A long's stop 1 % under the recorded close lands between ticks; it moves down, never up.
    assert round_stop(D("104264.9") * D("0.99"), D("104264.9"), D("0.1")) == D("103222.2")
