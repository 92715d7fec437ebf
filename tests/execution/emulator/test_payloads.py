"""The emulator's replies have the recorded Binance payloads' field names and types.

Reference: shared/fixtures/ccxt_binance/response.json (httpResponse). ccxt's static files store some
integers (ids, times) as digit strings; the emulator sends them as JSON ints, as Binance does, so a
recorded digit string matches an int. Decimals must be strings on both sides.
"""
import json
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings

BTC = "BTC/USDT:USDT"
RECORDED = json.loads((Path(settings.BASE_DIR).parent / "shared" / "fixtures" / "ccxt_binance" /
                       "response.json").read_text())["methods"]


def recorded(method: str, index: int = 0):
    return RECORDED[method][index]["httpResponse"]


# Integer fields in Binance's replies that ccxt's static files sometimes hold as digit strings.
INT_FIELDS = frozenset({"orderId", "id", "time", "updateTime", "goodTillDate", "adl", "lastUpdateId", "E", "T"})


def kind(value, field: str = "") -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int) or (field in INT_FIELDS and isinstance(value, str) and value.isdigit()):
        return "int"
    if isinstance(value, str):
        try:
            Decimal(value)
        except ArithmeticError:
            return "str"
        return "decimal-str"
    return type(value).__name__


def mismatches(served: dict, reference: dict) -> dict:
    """Return {field: (served kind, recorded kind)} for every differing or missing field."""
    fields = set(served) | set(reference)
    return {f: (kind(served.get(f, "<missing>"), f), kind(reference.get(f, "<missing>"), f))
            for f in sorted(fields)
            if f not in served or f not in reference or kind(served[f], f) != kind(reference[f], f)}


def test_new_order_reply_matches_recorded_create_orders(usdm):
    served = usdm.fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
                                        "quantity": "0.200", "price": "110001.00"})

    assert mismatches(served, recorded("createOrders")[0]) == {}
    assert (served["price"], served["origQty"], served["cumQuote"]) == ("110001.00", "0.200", "0.00000")


def test_query_order_reply_matches_recorded_fetch_open_order(usdm):
    placed = usdm.create_order(BTC, "limit", "buy", 0.2, 50000, params={"postOnly": True})

    served = usdm.fapiPrivateGetOrder({"symbol": "BTCUSDT", "orderId": placed["id"]})

    assert mismatches(served, recorded("fetchOpenOrder")) == {}


def test_position_risk_v3_matches_recorded(usdm):
    usdm.create_order(BTC, "market", "buy", 0.009)

    served = usdm.fapiPrivateV3GetPositionRisk()

    assert len(served) == 1
    assert mismatches(served[0], recorded("fetchPositions")[0]) == {}


def test_account_v3_matches_recorded_balance_and_positions(usdm):
    usdm.create_order(BTC, "market", "buy", 0.009)

    served = usdm.fapiPrivateV3GetAccount()

    reference, with_position = recorded("fetchBalance"), recorded("fetchPositions", 2)
    top = {k: v for k, v in served.items() if k not in ("assets", "positions")}
    assert mismatches(top, {k: v for k, v in reference.items() if k not in ("assets", "positions")}) == {}
    assert mismatches(served["assets"][0], reference["assets"][0]) == {}
    assert mismatches(served["positions"][0], with_position["positions"][0]) == {}


def test_user_trades_match_recorded(usdm):
    usdm.create_order(BTC, "market", "buy", 0.01)

    served = usdm.fapiPrivateGetUserTrades({"symbol": "BTCUSDT"})

    assert mismatches(served[0], recorded("fetchMyTrades")[0]) == {}
    assert (served[0]["commission"], served[0]["quoteQty"]) == ("0.30000000", "600.00000")


def test_depth_matches_recorded_order_book(usdm):
    served = usdm.fapiPublicGetDepth({"symbol": "BTCUSDT", "limit": 5})

    reference = recorded("fetchOrderBook")
    assert mismatches({k: v for k, v in served.items() if k not in ("bids", "asks")},
                      {k: v for k, v in reference.items() if k not in ("bids", "asks")}) == {}
    assert [kind(v) for v in served["bids"][0]] == [kind(v) for v in reference["bids"][0]]
    assert usdm.fetch_order_book(BTC, 5)["bids"][0] == [59999.9, 1.0]


@pytest.mark.parametrize("field", ["algoId", "clientAlgoId", "algoType", "orderType", "algoStatus",
                                   "triggerPrice", "quantity", "workingType", "reduceOnly", "createTime"])
def test_algo_order_reply_has_documented_fields(usdm, field):
    # SYNTHETIC shape (no recording): the fields ccxt's parse_order reads from an algo order.
    usdm.create_order(BTC, "market", "buy", 0.01)

    served = usdm.fapiPrivatePostAlgoOrder({"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL",
                                            "type": "STOP_MARKET", "triggerPrice": "59000", "quantity": "0.01",
                                            "reduceOnly": "true"})

    assert field in served
