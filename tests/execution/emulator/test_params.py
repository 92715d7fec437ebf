"""Request parameters: types, precision and required fields, as Binance checks them."""
from decimal import Decimal as D

import pytest

from execution.emulator.errors import BinanceError
from execution.emulator.params import algo_request, order_request
from execution.emulator.prices import candle_path

LIMIT = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.010",
         "price": "59000.10"}


def test_order_request_parses_limit():
    request = order_request(LIMIT | {"newClientOrderId": "abc", "reduceOnly": "true"})

    assert (request.quantity, request.price, request.reduce_only, request.client_order_id) == (
        D("0.010"), D("59000.10"), True, "abc")


@pytest.mark.parametrize(("change", "code"), [
    ({"symbol": "DOGEUSDT"}, -1121),
    ({"side": "HOLD"}, -1130),
    ({"type": "ICEBERG"}, -1130),
    ({"timeInForce": None}, -1102),
    ({"quantity": "1e-3"}, -1100),
    ({"quantity": "0.0001"}, -1111),
    ({"price": "59000.15"}, -4014),
    ({"newClientOrderId": "has space"}, -4015),
    ({"newClientOrderId": "x" * 37}, -4015),
    ({"reduceOnly": "yes"}, -1130),
])
def test_order_request_refusals(change, code):
    params = {k: v for k, v in (LIMIT | change).items() if v is not None}

    with pytest.raises(BinanceError) as raised:
        order_request(params)
    assert raised.value.code == code


@pytest.mark.parametrize(("change", "code"), [
    ({"algoType": "VP"}, -1130),
    ({"triggerPrice": None}, -1102),
    ({"closePosition": "true"}, -1106),                 # with a quantity
    ({"type": "STOP", "price": None}, -1102),
    ({"type": "TRAILING_STOP_MARKET", "callbackRate": "12"}, -2007),
    ({"workingType": "INDEX_PRICE"}, -1130),
])
def test_algo_request_refusals(change, code):
    base = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET",
            "triggerPrice": "59000", "quantity": "0.01"}
    params = {k: v for k, v in (base | change).items() if v is not None}

    with pytest.raises(BinanceError) as raised:
        algo_request(params)
    assert raised.value.code == code


@pytest.mark.parametrize(("ohlc", "path"), [
    (("100", "110", "95", "105"), ["100", "95", "110", "105"]),  # rising: dip first
    (("100", "110", "95", "97"), ["100", "110", "95", "97"]),    # falling: rally first
    (("100", "100", "100", "100"), ["100"]),
])
def test_candle_path_visits_both_extremes(ohlc, path):
    assert candle_path(*map(D, ohlc)) == [D(p) for p in path]
