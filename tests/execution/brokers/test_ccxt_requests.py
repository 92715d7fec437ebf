"""The exact HTTP requests CcxtBroker makes through ccxt, compared with ccxt's recorded Binance requests.

No server and no socket: FakeVenue replaces the requests.Session under ccxt, records every request and
answers from canned replies, so ccxt's own signing, routing and error handling run unchanged.
Replies are ccxt's RECORDED httpResponse payloads (../shared/fixtures/ccxt_binance/response.json) where
upstream has one, else SYNTHETIC payloads written from the Binance USD-M docs and marked as such.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal as D
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import ccxt
import pytest
import requests
from django.conf import settings
from requests.structures import CaseInsensitiveDict

from execution.brokers.ccxt import CcxtBroker
from execution.oms import OrderIntent

RECORDED = Path(settings.BASE_DIR).parent / "shared" / "fixtures" / "ccxt_binance"
NOW_MS = 1_750_000_000_000          # 2025-06-15 15:06:40 UTC
UNSIGNED = {"signature", "timestamp", "recvWindow"}     # ccxt's own static tests skip these too
DEMO_HOST = "demo-fapi.binance.com"
TRADE_MS = 1699972836419            # the recorded userTrades fill
WEEK_MS = 7 * 24 * 3_600_000


def recorded(name: str) -> dict:
    return json.loads((RECORDED / name).read_text())


RESPONSES = recorded("response.json")["methods"]
REQUESTS = recorded("request.json")["methods"]


def recorded_reply(method: str, description: str):
    """Return the recorded httpResponse of one upstream entry."""
    return next(e["httpResponse"] for e in RESPONSES[method] if e["description"] == description)


def _symbol(symbol: str, base: str, tick: str, step: str, notional: str) -> dict:
    return {"symbol": symbol, "pair": symbol, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000, "status": "TRADING", "baseAsset": base, "quoteAsset": "USDT",
            "marginAsset": "USDT", "pricePrecision": 2, "quantityPrecision": 3, "baseAssetPrecision": 8,
            "quotePrecision": 8, "underlyingType": "COIN",
            "filters": [{"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "4529764", "tickSize": tick},
                        {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "1000", "stepSize": step},
                        {"filterType": "MIN_NOTIONAL", "notional": notional}],
            "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                           "TRAILING_STOP_MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"]}


# SYNTHETIC: a /fapi/v1/exchangeInfo subset with Binance's real BTCUSDT and LTCUSDT filters.
EXCHANGE_INFO = {"timezone": "UTC", "serverTime": NOW_MS, "rateLimits": [], "exchangeFilters": [], "assets": [],
                 "symbols": [_symbol("BTCUSDT", "BTC", "0.10", "0.001", "100"),
                             _symbol("LTCUSDT", "LTC", "0.01", "0.001", "20")]}
# RECORDED: a full USD-M order object (createOrders); order_reply() changes the fields a test needs.
ORDER = recorded_reply("createOrders", "create swap orders")[0]
# SYNTHETIC: an algo order as POST/GET /fapi/v1/algoOrder return it (New Algo Order docs, ccxt's example).
ALGO_ORDER = {"algoId": 3358, "clientAlgoId": "tb-0123456789abcdef0123-sl", "algoType": "CONDITIONAL",
              "orderType": "STOP_MARKET", "symbol": "BTCUSDT", "side": "SELL", "positionSide": "BOTH",
              "timeInForce": "GTC", "quantity": "0.010", "algoStatus": "NEW", "triggerPrice": "60000.00",
              "price": "0.00", "icebergQuantity": None, "selfTradePreventionMode": "EXPIRE_MAKER",
              "workingType": "MARK_PRICE", "priceMatch": "NONE", "closePosition": False, "priceProtect": False,
              "reduceOnly": True, "createTime": NOW_MS, "updateTime": NOW_MS, "triggerTime": 0, "goodTillDate": 0}
# SYNTHETIC: Binance's answer to DELETE /fapi/v1/algoOrder.
ALGO_CANCELED = {"algoId": 3358, "clientAlgoId": "tb-0123456789abcdef0123-sl", "code": "200", "msg": "success"}

DEFAULT_REPLIES = {
    ("GET", "/fapi/v1/exchangeInfo"): EXCHANGE_INFO,
    ("GET", "/fapi/v1/leverageBracket"): [],                                         # SYNTHETIC
    ("POST", "/fapi/v1/order"): ORDER,
    ("GET", "/fapi/v1/order"): ORDER,
    ("DELETE", "/fapi/v1/order"): ORDER | {"status": "CANCELED"},
    ("POST", "/fapi/v1/algoOrder"): ALGO_ORDER,
    ("GET", "/fapi/v1/algoOrder"): ALGO_ORDER,
    ("DELETE", "/fapi/v1/algoOrder"): ALGO_CANCELED,
    ("GET", "/fapi/v1/openOrders"): [recorded_reply("fetchOpenOrder", "swap open order")],
    ("GET", "/fapi/v1/openAlgoOrders"): [ALGO_ORDER],
    ("GET", "/fapi/v1/allAlgoOrders"): [],                                         # SYNTHETIC
    ("GET", "/fapi/v3/positionRisk"): recorded_reply("fetchPositions", "Fetch linear positions without symbols"),
    ("GET", "/fapi/v3/account"): recorded_reply("fetchBalance", "Linear swap balance"),
    ("GET", "/fapi/v1/userTrades"): recorded_reply("fetchMyTrades", "Swap private trade"),
    ("GET", "/fapi/v1/symbolConfig"): recorded_reply("fetchMarginMode", "linear swap fetch margin mode"),
    ("GET", "/fapi/v1/positionSide/dual"): {"dualSidePosition": False},            # SYNTHETIC
    ("POST", "/fapi/v1/positionSide/dual"): {"code": 200, "msg": "success"},      # SYNTHETIC
    ("POST", "/fapi/v1/leverage"): {"leverage": 5, "maxNotionalValue": "1000000", "symbol": "BTCUSDT"},  # SYNTHETIC
    ("POST", "/fapi/v1/marginType"): {"code": 200, "msg": "success"},             # SYNTHETIC
    ("GET", "/fapi/v1/time"): {"serverTime": NOW_MS},                              # SYNTHETIC
}


def order_reply(**fields) -> dict:
    """Return the recorded order object with `fields` changed (a labelled edit of a RECORDED payload)."""
    return ORDER | fields


@dataclass
class Sent:
    method: str
    host: str
    path: str
    params: dict[str, str]          # query string and form body, without signature/timestamp/recvWindow


@dataclass
class Reply:
    status: int = 200
    body: object = None
    headers: dict = field(default_factory=dict)
    error: Exception | None = None  # raised instead of answering, like a timeout


class FakeVenue(requests.Session):
    """Stand in for the network under ccxt: record each request, answer from queued or default replies."""

    def __init__(self):
        super().__init__()
        self.sent: list[Sent] = []
        self.queued: dict[tuple[str, str], list[Reply]] = {}
        self.used_weight = 10

    def reply(self, method: str, path: str, body=None, *, status: int = 200, headers: dict | None = None,
              error: Exception | None = None, times: int = 1) -> None:
        """Queue `times` answers for the next requests to `method path`; defaults apply afterwards."""
        self.queued.setdefault((method, path), []).extend([Reply(status, body, headers or {}, error)] * times)

    def paths(self) -> list[tuple[str, str]]:
        """Return (method, path) of every request after the market load."""
        return [(s.method, s.path) for s in self.sent if not s.path.endswith(("exchangeInfo", "leverageBracket"))]

    def last(self, path: str) -> Sent:
        return [s for s in self.sent if s.path == path][-1]

    def request(self, method, url, data=None, headers=None, **kwargs):
        parts = urlsplit(url)
        body = data.decode() if isinstance(data, bytes) else (data or "")
        params = dict(parse_qsl(parts.query)) | dict(parse_qsl(body))
        self.sent.append(Sent(method, parts.netloc, parts.path, {k: v for k, v in params.items() if k not in UNSIGNED}))
        queue = self.queued.get((method, parts.path))
        reply = queue.pop(0) if queue else Reply(body=DEFAULT_REPLIES[(method, parts.path)])
        if reply.error is not None:
            raise reply.error
        response = requests.Response()
        response.status_code, response.url = reply.status, url
        response.reason = requests.status_codes._codes.get(reply.status, ("",))[0].upper()
        response.headers = CaseInsensitiveDict({"Content-Type": "application/json",
                                                "X-MBX-USED-WEIGHT-1M": str(self.used_weight)} | reply.headers)
        response._content = (reply.body if isinstance(reply.body, str) else json.dumps(reply.body)).encode()
        return response


def binance_client(venue: FakeVenue) -> ccxt.Exchange:
    """Return a keyed binanceusdm client on Binance Demo Trading whose HTTP goes to `venue`."""
    client = ccxt.binanceusdm({"apiKey": "test-key", "secret": "test-secret", "enableRateLimit": False,
                               # Demo trading has no spot capital endpoints; markets need none.
                               "options": {"fetchCurrencies": False}})
    client.enable_demo_trading(True)
    client.session = venue
    client.milliseconds = lambda: NOW_MS    # ccxt's own clock picks some params (userTrades endTime)
    return client


def intent(leg="entry", type_="market", side="buy", quantity="0.010", **extra) -> OrderIntent:
    return OrderIntent("0123456789abcdef0123", leg, "BTC/USDT:USDT", side, type_, D(quantity), **extra)


def submit(broker: CcxtBroker, order: OrderIntent):
    return broker.submit(order, reference_price=D("60000"), ts_ms=NOW_MS)


# -- orders: path and parameters ------------------------------------------------------------------

@pytest.mark.parametrize("order, path, params", [
    # entries go to the normal order endpoint with our id as newClientOrderId
    (intent(), "/fapi/v1/order",
     {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01",
      "newClientOrderId": "tb-0123456789abcdef0123-entry", "newOrderRespType": "RESULT"}),
    (intent(type_="limit", price=D("59000.1")), "/fapi/v1/order",
     {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.01", "price": "59000.1",
      "timeInForce": "GTC", "newClientOrderId": "tb-0123456789abcdef0123-entry", "newOrderRespType": "RESULT"}),
    # post-only is Binance's GTX
    (intent(type_="limit_maker", price=D("59000.1")), "/fapi/v1/order",
     {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.01", "price": "59000.1",
      "timeInForce": "GTX", "newClientOrderId": "tb-0123456789abcdef0123-entry", "newOrderRespType": "RESULT"}),
    # exits: stop and take-profits go to the Algo Order API with clientAlgoId, triggered by the mark price
    (intent("sl", "stop_market", "sell", trigger_price=D("58000.5"), reduce_only=True), "/fapi/v1/algoOrder",
     {"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET", "algoType": "CONDITIONAL", "quantity": "0.01",
      "triggerPrice": "58000.5", "reduceOnly": "true", "workingType": "MARK_PRICE",
      "clientAlgoId": "tb-0123456789abcdef0123-sl", "newOrderRespType": "RESULT"}),
    (intent("tp1", "take_profit_market", "sell", trigger_price=D("62000"), reduce_only=True), "/fapi/v1/algoOrder",
     {"symbol": "BTCUSDT", "side": "SELL", "type": "TAKE_PROFIT_MARKET", "algoType": "CONDITIONAL",
      "quantity": "0.01", "triggerPrice": "62000", "reduceOnly": "true", "workingType": "MARK_PRICE",
      "clientAlgoId": "tb-0123456789abcdef0123-tp1", "newOrderRespType": "RESULT"}),
    (intent("tp2", "take_profit", "sell", price=D("63000"), trigger_price=D("62990"), reduce_only=True),
     "/fapi/v1/algoOrder",
     {"symbol": "BTCUSDT", "side": "SELL", "type": "TAKE_PROFIT", "algoType": "CONDITIONAL", "quantity": "0.01",
      "price": "63000", "triggerPrice": "62990", "reduceOnly": "true", "workingType": "MARK_PRICE",
      "clientAlgoId": "tb-0123456789abcdef0123-tp2", "newOrderRespType": "RESULT"}),
])
def test_submit_order_type_sends_exact_request(broker, venue, order, path, params):
    submit(broker, order)

    sent = venue.last(path)
    assert (sent.method, sent.host, sent.params) == ("POST", DEMO_HOST, params)


def test_submit_working_type_contract_price_sent_to_algo_order(venue):
    broker = CcxtBroker(binance_client(venue), clock_ms=lambda: NOW_MS, working_type="CONTRACT_PRICE")

    submit(broker, intent("sl", "stop_market", "sell", trigger_price=D("58000"), reduce_only=True))

    assert venue.last("/fapi/v1/algoOrder").params["workingType"] == "CONTRACT_PRICE"


def test_submit_market_filled_reads_its_trades_by_order_id(broker, venue):
    venue.reply("POST", "/fapi/v1/order", order_reply(status="FILLED", executedQty="0.010", origQty="0.010",
                                                      avgPrice="36567.10", orderId=3524852987))

    submit(broker, intent())

    assert venue.paths() == [("POST", "/fapi/v1/order"), ("GET", "/fapi/v1/userTrades")]
    assert venue.last("/fapi/v1/userTrades").params == {"symbol": "BTCUSDT", "orderId": "3524852987"}


def test_submit_stop_sends_nothing_to_the_normal_order_endpoint(broker, venue):
    submit(broker, intent("sl", "stop_market", "sell", trigger_price=D("58000"), reduce_only=True))

    assert venue.paths() == [("POST", "/fapi/v1/algoOrder")]


# -- reads, cancels and setup: path and parameters ---------------------------------------------------

@pytest.mark.parametrize("call, requests_sent", [
    # a conditional order is read and cancelled only through the algo endpoints, by clientAlgoId
    (lambda b: b.fetch_order("tb-x-sl", "BTC/USDT:USDT", conditional=True),
     [("GET", "/fapi/v1/algoOrder", {"symbol": "BTCUSDT", "clientAlgoId": "tb-x-sl"})]),
    (lambda b: b.fetch_order("tb-x-entry", "BTCUSDT"),
     [("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "tb-x-entry"})]),
    (lambda b: b.cancel("tb-x-sl", "BTCUSDT", conditional=True),
     [("DELETE", "/fapi/v1/algoOrder", {"symbol": "BTCUSDT", "clientAlgoId": "tb-x-sl"})]),
    (lambda b: b.cancel("tb-x-entry", "BTCUSDT"),
     [("DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "tb-x-entry"})]),
    # open orders: normal and conditional, two requests
    (lambda b: b.open_orders("BTCUSDT"),
     [("GET", "/fapi/v1/openOrders", {"symbol": "BTCUSDT"}),
      ("GET", "/fapi/v1/openAlgoOrders", {"symbol": "BTCUSDT"})]),
    (lambda b: b.open_orders(),
     [("GET", "/fapi/v1/openOrders", {}), ("GET", "/fapi/v1/openAlgoOrders", {})]),
    (lambda b: b.positions(), [("GET", "/fapi/v3/positionRisk", {})]),
    (lambda b: b.balance(), [("GET", "/fapi/v3/account", {})]),
    # trades carry no client id: the algo history maps triggered stops, the order query the rest
    (lambda b: b.trades("BTCUSDT", TRADE_MS - 60_000),
     # a start over a week back: ccxt asks for that week only (Binance's longest window)
     [("GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT", "startTime": str(TRADE_MS - 60_000),
                                      "endTime": str(TRADE_MS - 60_000 + WEEK_MS), "limit": "1000"}),
      ("GET", "/fapi/v1/allAlgoOrders", {"symbol": "BTCUSDT"}),
      ("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": "3524852987"})]),
    (lambda b: b.position_mode(), [("GET", "/fapi/v1/positionSide/dual", {})]),
    (lambda b: b.margin_mode("BTCUSDT"), [("GET", "/fapi/v1/symbolConfig", {"symbol": "BTCUSDT"})]),
    (lambda b: b.set_leverage("BTCUSDT", 5), [("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": "5"})]),
    (lambda b: b.set_margin_mode("BTCUSDT", "isolated"),
     [("POST", "/fapi/v1/marginType", {"symbol": "BTCUSDT", "marginType": "ISOLATED"})]),
    (lambda b: b.set_position_mode("one-way"), [("POST", "/fapi/v1/positionSide/dual", {"dualSidePosition": "false"})]),
    (lambda b: b.server_time_ms(), [("GET", "/fapi/v1/time", {})]),
])
def test_broker_call_sends_exact_requests(broker, venue, call, requests_sent):
    call(broker)

    sent = [s for s in venue.sent if not s.path.endswith(("exchangeInfo", "leverageBracket"))]
    assert [(s.method, s.path, s.params) for s in sent] == requests_sent


# -- against ccxt's recorded requests ----------------------------------------------------------------

def recorded_request(method: str, description: str) -> tuple[str, set[str]]:
    """Return the path and parameter names of one recorded request (values differ: other symbols, ids)."""
    entry = next(e for e in REQUESTS[method] if e["description"] == description)
    parts = urlsplit(entry["url"])
    names = {k for k, _ in parse_qsl(parts.query)} | {k for k, _ in parse_qsl(entry.get("output") or "")}
    return parts.path, names - UNSIGNED


# The recorded algo requests (ccxt at commit 0094a48) still named the client id newClientOrderId;
# ccxt 4.5.90 sends clientAlgoId, the name Binance's New Algo Order docs give.
ALGO_ID = {"newClientOrderId"}, {"clientAlgoId"}


@pytest.mark.parametrize("call, method, description, dropped, added", [
    (lambda b: submit(b, intent()), "createOrder", "Swap market buy order", set(), set()),
    (lambda b: submit(b, intent(type_="limit", price=D("1"))), "createOrder", "Swap limit buy order", set(), set()),
    (lambda b: submit(b, intent(type_="limit_maker", price=D("1"))), "createOrder", "Swap limit buy with postOnly",
     set(), set()),
    (lambda b: submit(b, intent(type_="limit", price=D("1"), reduce_only=True)), "createOrder",
     "Swap limit buy with reduce only (closing short position)", set(), set()),
    (lambda b: submit(b, intent("tp1", "take_profit", "sell", price=D("2"), trigger_price=D("2"), reduce_only=True)),
     "createOrder", "Swap limit sell with takeProfitPrice (type 2)", ALGO_ID[0],
     ALGO_ID[1] | {"reduceOnly", "workingType"}),
    # the recorded stop is a stop-limit (STOP, with price); ours is STOP_MARKET
    (lambda b: submit(b, intent("sl", "stop_market", "sell", trigger_price=D("1"), reduce_only=True)),
     "createOrder", "Swap limit sell with stopLossPrice (type 2)", ALGO_ID[0] | {"price"},
     ALGO_ID[1] | {"reduceOnly", "workingType"}),
    (lambda b: b.cancel("tb-x-entry", "BTCUSDT"), "cancelOrder", "cancel swap order with clientOrderId", set(), set()),
    # recorded by algoId; ours by clientAlgoId (Binance accepts either)
    (lambda b: b.cancel("tb-x-sl", "BTCUSDT", conditional=True), "cancelOrder", "linear swap conditional cancelOrder",
     {"algoId"}, {"clientAlgoId"}),
    (lambda b: b.fetch_order("tb-x-entry", "BTCUSDT"), "fetchOrderWithClientOrderId", "fetch order with clientOrderId",
     set(), set()),
    (lambda b: b.fetch_order("tb-x-sl", "BTCUSDT", conditional=True), "fetchOrder",
     "linear swap conditional fetchOrder", {"algoId"}, {"clientAlgoId"}),
    (lambda b: b.positions(), "fetchPositions", "fetch default positions", set(), set()),
    (lambda b: b.balance(), "fetchBalance", "Swap fetchBalance", set(), set()),
    (lambda b: b.trades("BTCUSDT", TRADE_MS), "fetchMyTrades", "Swap fetchMyTrades", set(),
     {"startTime", "endTime", "limit"}),
    (lambda b: b.set_leverage("BTCUSDT", 5), "setLeverage", "Swap linear setLeverage", set(), set()),
    (lambda b: b.set_margin_mode("BTCUSDT", "cross"), "setMarginMode", "Set margin mode to cross", set(), set()),
    (lambda b: b.position_mode(), "fetchPositionMode", "Fetch Position Mode for linear markets", set(), set()),
    (lambda b: b.margin_mode("BTCUSDT"), "fetchMarginMode", "linear swap fetch margin mode", set(), set()),
    (lambda b: b.trades("BTCUSDT", TRADE_MS), "fetchOrders", "linear swap conditional fetchOrders", set(), set()),
    (lambda b: b.trades("BTCUSDT", TRADE_MS), "fetchOrder", "Swap fetchOrder", set(), set()),
])
def test_broker_request_matches_recorded_ccxt_request(broker, venue, call, method, description, dropped, added):
    path, names = recorded_request(method, description)

    call(broker)

    assert path in [s.path for s in venue.sent]
    assert set(venue.last(path).params) == names - dropped | added


def test_open_orders_matches_both_recorded_open_order_requests(broker, venue):
    normal = recorded_request("fetchOpenOrders", "Swap open orders")
    conditional = recorded_request("fetchOpenOrders", "linear swap conditional fetchOpenOrders")

    broker.open_orders("BTCUSDT")

    assert [(s.path, set(s.params)) for s in venue.sent[-2:]] == [normal, conditional]


def test_ccxt_version_is_the_pinned_one():
    requirements = (Path(settings.BASE_DIR) / "requirements.txt").read_text().splitlines()
    pin = next(line.split("==")[1].strip() for line in requirements if line.startswith("ccxt=="))

    assert ccxt.__version__ == pin
