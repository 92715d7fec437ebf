"""CcxtBroker translation: venue replies to port values, venue errors to the port's error family, the
request-weight budget, and the basics on Bitget and Gate. No server: see test_ccxt_requests.FakeVenue.
Error bodies are SYNTHETIC, in Binance's {"code", "msg"} form with the HTTP status Binance sends.
"""
from __future__ import annotations

import json
from decimal import Decimal as D

import ccxt
import pytest
import requests
from hypothesis import given, strategies as st

from execution.brokers.base import (BrokerError, DuplicateClientId, ExchangeUnavailable, FillReport, IpBanned,
                                    OrderNotFound, RateLimited, UnknownOutcome, VenueBalance, VenueOrder,
                                    VenuePosition, WouldTriggerImmediately)
from execution.brokers.ccxt import CcxtBroker, RequestBudget, order_state, translate_error, venue_order
from execution.oms import OrderIntent, OrderRejected
from tests.execution.brokers.test_ccxt_requests import (ALGO_ORDER, NOW_MS, FakeVenue, binance_client, intent,
                                                       order_reply, submit)

SL = intent("sl", "stop_market", "sell", trigger_price=D("58000"), reduce_only=True)
BAN_UNTIL_MS = NOW_MS + 120_000


# -- replies to port values ---------------------------------------------------------------------------

def test_submit_market_filled_reports_fills_with_fees(broker, venue):
    venue.reply("POST", "/fapi/v1/order", order_reply(status="FILLED", executedQty="0.010", origQty="0.010",
                                                      avgPrice="36567.10", orderId=3524852987,
                                                      clientOrderId="tb-0123456789abcdef0123-entry"))

    report = submit(broker, intent())

    assert (report.status, report.exchange_order_id) == ("filled", "3524852987")
    assert report.fills == (FillReport("tb-0123456789abcdef0123-entry", "272536245", 1699972836419, D("36567.1"),
                                       D("0.01"), D("0.1462684"), "taker", "3524852987", D("0")),)


def test_submit_market_filled_trades_unreadable_reports_fill_without_fills(broker, venue, sleeps):
    venue.reply("POST", "/fapi/v1/order", order_reply(status="FILLED", executedQty="0.010", origQty="0.010"))
    venue.reply("GET", "/fapi/v1/userTrades", "<html>bad gateway</html>", status=502, times=3)

    report = submit(broker, intent())

    assert (report.status, report.fills) == ("filled", ())
    assert sleeps == [0.5, 1.0]                 # the trade read was retried, the order was not


def test_submit_stop_reports_accepted_algo_order(broker):
    report = submit(broker, SL)

    assert (report.status, report.exchange_order_id, report.fills) == ("accepted", "3358", ())


def test_open_orders_merges_normal_and_conditional(broker):
    orders = broker.open_orders()

    assert orders == [
        # RECORDED fetchOpenOrder payload (a GTX limit on LTCUSDT)
        VenueOrder("x-xcKtGhcu68f8383451844295b3e8b9", "664082074", "LTCUSDT", "buy", "limit", "accepted", D("0.2"),
                   D("0"), None, D("50"), None, False, False, 1707907323991),
        VenueOrder("tb-0123456789abcdef0123-sl", "3358", "BTCUSDT", "sell", "stop_market", "accepted", D("0.01"),
                   D("0"), None, None, D("60000"), True, True, NOW_MS),
    ]


def test_cancel_conditional_returns_canceled(broker):
    order = broker.cancel("tb-0123456789abcdef0123-sl", "BTCUSDT", conditional=True)

    assert (order.status, order.exchange_order_id, order.conditional) == ("canceled", "3358", True)


def test_cancel_lost_race_to_fill_returns_filled_order(broker, venue):
    venue.reply("DELETE", "/fapi/v1/order", {"code": -2011, "msg": "Unknown order sent."}, status=400)
    venue.reply("GET", "/fapi/v1/order", order_reply(status="FILLED", executedQty="0.200"))

    order = broker.cancel("x-xcKtGhcu04075babaeb34c55af79ba", "BTCUSDT")

    assert (order.status, order.filled) == ("filled", D("0.2"))


def test_positions_recorded_position_risk_signed_quantity(broker):
    assert broker.positions() == [VenuePosition("BTCUSDT", D("0.009"), D("67445.9"), D("67502.68519858"),
                                                D("0.51106678"), D("64846.9875379"))]


def test_positions_short_quantity_negative(broker, venue):
    short = {"symbol": "BTCUSDT", "positionSide": "BOTH", "positionAmt": "-0.5", "entryPrice": "60000",
             "markPrice": "59000", "unRealizedProfit": "500", "liquidationPrice": "0", "notional": "-29500",
             "updateTime": NOW_MS}   # SYNTHETIC, the recorded row's fields
    venue.reply("GET", "/fapi/v3/positionRisk", [short])

    [position] = broker.positions()

    assert (position.quantity, position.liquidation_price) == (D("-0.5"), None)


def test_balance_recorded_account_usdt_wallet(broker):
    assert broker.balance() == VenueBalance(D("31.022612"), D("31.022612"), D("0"))


def test_trades_recorded_user_trades_fill_reports_with_client_id(broker, venue):
    venue.reply("GET", "/fapi/v1/order", order_reply(orderId=3524852987, clientOrderId="tb-0123456789abcdef0123-entry"))

    [fill] = broker.trades("BTCUSDT", 1699972800000)

    assert fill == FillReport("tb-0123456789abcdef0123-entry", "272536245", 1699972836419, D("36567.1"), D("0.01"),
                              D("0.1462684"), "taker", "3524852987", D("0"))


def test_trades_of_triggered_stop_carry_the_stops_client_id(broker, venue):
    venue.reply("GET", "/fapi/v1/allAlgoOrders", [ALGO_ORDER | {"algoStatus": "FINISHED", "actualOrderId": "3524852987",
                                                                "executedQty": "0.010"}])

    [fill] = broker.trades("BTCUSDT", 1699972800000)

    assert fill.client_order_id == "tb-0123456789abcdef0123-sl"
    assert ("GET", "/fapi/v1/order") not in venue.paths()


def test_trades_order_archived_fill_without_client_id(broker, venue):
    venue.reply("GET", "/fapi/v1/order", {"code": -2013, "msg": "Order does not exist."}, status=400)

    [fill] = broker.trades("BTCUSDT", 1699972800000)

    assert (fill.client_order_id, fill.trade_id) == ("", "272536245")


def test_fetch_order_finished_algo_found_in_history(broker, venue):
    venue.reply("GET", "/fapi/v1/algoOrder", {"code": -2013, "msg": "Order does not exist."}, status=400)
    venue.reply("GET", "/fapi/v1/allAlgoOrders", [ALGO_ORDER | {"algoStatus": "FINISHED", "executedQty": "0.010"}])

    order = broker.fetch_order("tb-0123456789abcdef0123-sl", "BTCUSDT", conditional=True)

    assert (order.status, order.conditional, order.trigger_price) == ("filled", True, D("60000"))


def test_fetch_order_algo_in_neither_endpoint_not_found(broker, venue):
    venue.reply("GET", "/fapi/v1/algoOrder", {"code": -2013, "msg": "Order does not exist."}, status=400)

    with pytest.raises(OrderNotFound, match="-2013"):
        broker.fetch_order("tb-0123456789abcdef0123-sl", "BTCUSDT", conditional=True)


def test_setup_reads_recorded_symbol_config(broker):
    setup = (broker.position_mode(), broker.margin_mode("BTCUSDT"), broker.leverage("BTCUSDT"))

    assert setup == ("one-way", "cross", 20)


def test_set_position_mode_already_set_is_success(broker, venue):
    venue.reply("POST", "/fapi/v1/positionSide/dual", {"code": -4059, "msg": "No need to change position side."},
                status=400)

    assert broker.set_position_mode("one-way") is None


# -- status mapping -----------------------------------------------------------------------------------

@pytest.mark.parametrize("info, expected", [
    # Binance order status
    ({"status": "NEW"}, "accepted"), ({"status": "PARTIALLY_FILLED"}, "partially_filled"),
    ({"status": "FILLED"}, "filled"), ({"status": "CANCELED"}, "canceled"), ({"status": "REJECTED"}, "rejected"),
    ({"status": "EXPIRED"}, "expired"), ({"status": "EXPIRED_IN_MATCH"}, "expired"),
    # Binance algo status; FINISHED short of its quantity is a cancel after a partial fill
    ({"algoStatus": "NEW"}, "accepted"), ({"algoStatus": "TRIGGERING"}, "triggered"),
    ({"algoStatus": "TRIGGERED"}, "triggered"), ({"algoStatus": "FINISHED"}, "filled"),
    ({"algoStatus": "FINISHED", "quantity": "1", "executedQty": "1"}, "filled"),
    ({"algoStatus": "FINISHED", "quantity": "1", "executedQty": "0.4"}, "canceled"),
    ({"algoStatus": "CANCELED"}, "canceled"), ({"algoStatus": "EXPIRED"}, "expired"),
    ({"algoStatus": "REJECTED"}, "rejected"), ({"algoStatus": "PAUSED"}, "unknown"),
])
def test_order_state_binance_status_maps_to_order_state(info, expected):
    assert order_state({"info": info}) == expected


@pytest.mark.parametrize("status, filled, expected", [
    # ccxt's unified status, for venues without a table here
    ("open", 0, "accepted"), ("open", 0.5, "partially_filled"), ("closed", 1, "filled"),
    ("canceled", 0, "canceled"), ("expired", 0, "expired"), ("rejected", 0, "rejected"), (None, None, "unknown"),
])
def test_order_state_unified_status_maps_to_order_state(status, filled, expected):
    assert order_state({"status": status, "filled": filled, "info": {}}) == expected


# -- errors -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("status, body, expected, match", [
    # refused as past the trigger: close now
    (400, {"code": -2021, "msg": "Order would immediately trigger."}, WouldTriggerImmediately, "-2021"),
    (400, {"code": -4142, "msg": "REJECT: take profit or stop order will be triggered immediately."},
     WouldTriggerImmediately, "-4142"),
    # a resend whose first send arrived
    (400, {"code": -4116, "msg": "ClientOrderId is duplicated."}, DuplicateClientId, "-4116"),
    # refusals: recorded with the venue's code and message
    (400, {"code": -2019, "msg": "Margin is insufficient."}, OrderRejected, "-2019 Margin is insufficient"),
    (400, {"code": -4164, "msg": "Order's notional must be no smaller than 100 (unless you choose reduce only)."},
     OrderRejected, "-4164"),
    (400, {"code": -4131, "msg": "The counterparty's best price does not meet the PERCENT_PRICE filter limit."},
     OrderRejected, "-4131"),
    (400, {"code": -2022, "msg": "ReduceOnly Order is rejected."}, OrderRejected, "-2022"),
    (400, {"code": -4120, "msg": "Order type not supported for this endpoint. Please use the Algo Order API "
                                 "endpoints instead."}, OrderRejected, "-4120"),
    (400, {"code": -4045, "msg": "Reach max stop order limit."}, OrderRejected, "-4045"),
    (400, {"code": -1111, "msg": "Precision is over the maximum defined for this asset."}, OrderRejected, "-1111"),
    # outcome unknown: query by client id, never resend blindly
    (408, {"code": -1007, "msg": "Timeout waiting for response from backend server. Send status unknown; "
                                 "execution status unknown."}, UnknownOutcome, "-1007"),
    (503, {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."},
     UnknownOutcome, "-1001"),
    (502, "<html>Bad Gateway</html>", UnknownOutcome, "502"),
    # limits
    (429, {"code": -1003, "msg": "Too many requests; current limit of IP(127.0.0.1) is 2400 requests per minute."},
     RateLimited, "-1003"),
    (418, {"code": -1003, "msg": f"Way too many requests; IP(127.0.0.1) banned until {BAN_UNTIL_MS}. Please use "
                                 "the websocket for live updates to avoid bans."}, IpBanned, "banned until"),
])
def test_submit_venue_error_maps_to_port_error(broker, venue, status, body, expected, match):
    venue.reply("POST", "/fapi/v1/algoOrder", body, status=status)

    with pytest.raises(expected, match=match):
        submit(broker, SL)

    assert venue.paths() == [("POST", "/fapi/v1/algoOrder")]     # writes are never retried


def test_submit_timeout_unknown_outcome_sent_once(broker, venue):
    venue.reply("POST", "/fapi/v1/order", error=requests.exceptions.ReadTimeout("read timed out"))

    with pytest.raises(UnknownOutcome, match="binanceusdm POST"):
        submit(broker, intent())

    assert venue.paths() == [("POST", "/fapi/v1/order")]


def test_submit_unparseable_reply_unknown_outcome(broker, venue):
    venue.reply("POST", "/fapi/v1/order", ["not", "an", "order"])

    with pytest.raises(UnknownOutcome, match="object has no attribute"):
        submit(broker, intent())


def test_fetch_order_not_found_raises_order_not_found(broker, venue):
    venue.reply("GET", "/fapi/v1/order", {"code": -2013, "msg": "Order does not exist."}, status=400)

    with pytest.raises(OrderNotFound, match="-2013"):
        broker.fetch_order("tb-x-entry", "BTCUSDT")
    assert venue.paths() == [("GET", "/fapi/v1/order")]


def test_read_unavailable_retried_with_backoff_then_answers(broker, venue, sleeps):
    venue.reply("GET", "/fapi/v3/positionRisk", "<html>Service Unavailable</html>", status=503, times=2)

    assert len(broker.positions()) == 1
    assert sleeps == [0.5, 1.0]


def test_read_unavailable_every_attempt_raises_exchange_unavailable(broker, venue, sleeps):
    venue.reply("GET", "/fapi/v3/positionRisk", error=requests.exceptions.ReadTimeout("read timed out"), times=3)

    with pytest.raises(ExchangeUnavailable, match="RequestTimeout|binanceusdm GET"):
        broker.positions()
    assert venue.paths() == [("GET", "/fapi/v3/positionRisk")] * 3


def test_read_rejected_not_retried(broker, venue):
    venue.reply("GET", "/fapi/v3/account", {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."},
                status=401)

    with pytest.raises(BrokerError, match="-2015"):
        broker.balance()
    assert venue.paths() == [("GET", "/fapi/v3/account")]


def test_rate_limited_honours_retry_after_before_next_request(broker, venue, sleeps):
    venue.reply("GET", "/fapi/v3/account", {"code": -1003, "msg": "Too many requests."}, status=429,
                headers={"Retry-After": "7"})

    with pytest.raises(RateLimited, match="-1003 Too many requests") as first:
        broker.balance()
    with pytest.raises(RateLimited, match="next request in 7.0s"):
        broker.balance()

    assert first.value.retry_after_s == 7
    assert venue.paths() == [("GET", "/fapi/v3/account")]


def test_ip_banned_halts_every_request_until_the_ban_ends(venue):
    now = [NOW_MS]
    broker = CcxtBroker(binance_client(venue), clock_ms=lambda: now[0], sleep=lambda s: None)
    venue.reply("GET", "/fapi/v3/account", {"code": -1003, "msg": f"IP banned until {BAN_UNTIL_MS}."}, status=418)
    with pytest.raises(IpBanned, match="-1003 IP banned"):
        broker.balance()

    with pytest.raises(IpBanned, match=f"until {BAN_UNTIL_MS}") as refused:
        submit(broker, SL)
    now[0] = BAN_UNTIL_MS

    assert refused.value.until_ms == BAN_UNTIL_MS
    assert broker.balance().wallet_usdt == D("31.022612")
    assert venue.paths() == [("GET", "/fapi/v3/account")] * 2


def test_used_weight_header_near_ceiling_holds_reads_not_orders(venue):
    broker = CcxtBroker(binance_client(venue), clock_ms=lambda: NOW_MS + 30_000, sleep=lambda s: None)
    venue.used_weight = 1_950       # over 80 % of 2400
    broker.balance()

    with pytest.raises(RateLimited, match="budget"):
        broker.positions()
    report = submit(broker, SL)

    assert report.status == "accepted"


@pytest.mark.parametrize("exc, write, expected", [
    # ccxt errors without a Binance body, as other venues raise them
    (ccxt.RequestTimeout("gate POST timed out"), True, UnknownOutcome),
    (ccxt.RequestTimeout("gate GET timed out"), False, ExchangeUnavailable),
    (ccxt.NetworkError("connection reset"), True, UnknownOutcome),
    (ccxt.ExchangeNotAvailable("maintenance"), False, ExchangeUnavailable),
    (ccxt.OrderNotFound("bitget order does not exist"), False, OrderNotFound),
    (ccxt.InsufficientFunds("bitget balance not enough"), True, OrderRejected),
    (ccxt.RateLimitExceeded("too many"), False, RateLimited),
    (ccxt.AuthenticationError("bad key"), False, BrokerError),
])
def test_translate_error_ccxt_class_maps_to_port_error(exc, write, expected):
    assert type(translate_error(exc, write=write, now_ms=NOW_MS)) is expected


def test_translate_error_ban_without_end_uses_retry_after():
    error = translate_error(ccxt.DDoSProtection("binanceusdm 418 I'M_A_TEAPOT {}"), write=False, now_ms=NOW_MS,
                            retry_after_s=300)

    assert error.until_ms == NOW_MS + 300_000


# -- request-weight budget ----------------------------------------------------------------------------

MINUTE_MS = 1_750_000_020_000       # a minute boundary


@pytest.mark.parametrize("used, weight, write, offset_ms, expected_s", [
    # reads stop at 80 % of 2400 (1920) and wait for the next minute
    (1900, 5, False, 15_000, 0.0), (1900, 40, False, 15_000, 45.0), (1920, 1, False, 59_000, 1.0),
    # orders may use the last 20 %
    (1900, 40, True, 15_000, 0.0), (2400, 1, True, 15_000, 45.0),
])
def test_budget_delay_s_by_used_weight(used, weight, write, offset_ms, expected_s):
    budget = RequestBudget()
    budget.observe(used, MINUTE_MS + 1_000)

    assert budget.delay_s(MINUTE_MS + offset_ms, weight, write=write) == expected_s


def test_budget_new_minute_resets_used_weight():
    budget = RequestBudget()
    budget.observe(2400, MINUTE_MS + 1_000)

    assert budget.delay_s(MINUTE_MS + 60_000, 40) == 0.0


def test_budget_hold_waits_retry_after():
    budget = RequestBudget()
    budget.hold(7, MINUTE_MS)

    assert (budget.delay_s(MINUTE_MS + 2_000), budget.delay_s(MINUTE_MS + 7_000)) == (5.0, 0.0)


def test_budget_ban_refuses_until_it_ends():
    budget = RequestBudget()
    budget.ban(MINUTE_MS + 60_000)

    with pytest.raises(IpBanned, match="banned until"):
        budget.delay_s(MINUTE_MS + 59_999, write=True)
    assert budget.delay_s(MINUTE_MS + 60_000) == 0.0


@given(used=st.integers(0, 3000), weight=st.integers(1, 40), offset_ms=st.integers(0, 59_999),
       write=st.booleans())
def test_budget_waiting_delay_s_always_enough(used, weight, offset_ms, write):
    budget = RequestBudget()
    budget.observe(used, MINUTE_MS)
    now_ms = MINUTE_MS + offset_ms

    delay_s = budget.delay_s(now_ms, weight, write=write)

    assert delay_s >= 0
    assert budget.delay_s(now_ms + int(delay_s * 1000), weight, write=write) == 0


# -- Bitget and Gate: basic orders ---------------------------------------------------------------------

def swap_market(market_id: str, settle_id: str, contract_size: float, amount_step: float) -> dict:
    """Return a minimal ccxt market for a linear BTC perpetual (SYNTHETIC; venue values from their docs)."""
    return {"id": market_id, "symbol": "BTC/USDT:USDT", "base": "BTC", "quote": "USDT", "settle": "USDT",
            "baseId": "BTC", "quoteId": "USDT", "settleId": settle_id, "type": "swap", "spot": False,
            "margin": False, "swap": True, "future": False, "option": False, "contract": True, "linear": True,
            "inverse": False, "contractSize": contract_size, "active": True,
            "precision": {"amount": amount_step, "price": 0.1},
            "limits": {"amount": {}, "price": {}, "cost": {}, "leverage": {}}, "info": {}}


class JsonVenue(FakeVenue):
    """Answer by path, else with `body`; Bitget and Gate send JSON bodies (replies SYNTHETIC, from their docs)."""

    def __init__(self, body, by_path: dict | None = None):
        super().__init__()
        self.body, self.by_path, self.sent_bodies = body, by_path or {}, []

    def request(self, method, url, data=None, headers=None, **kwargs):
        path = requests.utils.urlparse(url).path
        self.reply(method, path, self.by_path.get(path, self.body))
        self.sent_bodies.append(data.decode() if isinstance(data, bytes) else data)
        return super().request(method, url, data=None, headers=headers, **kwargs)


def test_gate_market_order_counts_contracts_and_prefixes_client_id():
    gate = ccxt.gate({"apiKey": "k", "secret": "s", "enableRateLimit": False, "options": {"unifiedAccount": False}})
    gate.session = JsonVenue({"id": 123, "text": "t-tb-abc-sl", "contract": "BTC_USDT", "size": 100, "left": 0,
                              "status": "finished", "finish_as": "filled", "fill_price": "60000", "price": "0",
                              "tif": "ioc", "create_time": 1750000000.0},
                             {"/api/v4/futures/usdt/my_trades_timerange": [
                                 {"trade_id": "7", "create_time": 1750000000.5, "contract": "BTC_USDT",
                                  "order_id": "123", "size": 100, "price": "60000", "role": "taker", "fee": "0.024"},
                                 {"trade_id": "6", "create_time": 1749999999.5, "contract": "BTC_USDT",
                                  "order_id": "122", "size": -50, "price": "59990", "role": "maker", "fee": "0"}]})
    gate.set_markets([swap_market("BTC_USDT", "usdt", 0.0001, 1)])
    broker = CcxtBroker(gate, name="gate", clock_ms=lambda: NOW_MS)
    order = OrderIntent("abc", "sl", "BTC/USDT:USDT", "buy", "market", D("0.01"), reduce_only=True)

    report = broker.submit(order, reference_price=D("60000"), ts_ms=NOW_MS)

    assert gate.session.sent[0].path == "/api/v4/futures/usdt/orders"
    assert json.loads(gate.session.sent_bodies[0]) == {"contract": "BTC_USDT", "size": 100, "price": "0",
                                                       "reduce_only": True, "tif": "ioc", "text": "t-tb-abc-sl"}
    assert (report.status, [(f.quantity, f.price, f.exchange_order_id) for f in report.fills]) == (
        "filled", [(D("0.01"), D("60000"), "123")])


def test_gate_fetch_order_by_prefixed_client_id():
    gate = ccxt.gate({"apiKey": "k", "secret": "s", "enableRateLimit": False, "options": {"unifiedAccount": False}})
    gate.session = JsonVenue({"id": 123, "text": "t-tb-abc-sl", "contract": "BTC_USDT", "size": -300, "left": -100,
                              "status": "open", "price": "61000", "tif": "gtc", "create_time": 1750000000.0})
    gate.set_markets([swap_market("BTC_USDT", "usdt", 0.0001, 1)])

    order = CcxtBroker(gate, name="gate").fetch_order("tb-abc-sl", "BTC/USDT:USDT")

    assert gate.session.sent[0].path == "/api/v4/futures/usdt/orders/t-tb-abc-sl"
    assert (order.client_order_id, order.side, order.quantity, order.filled, order.status) == (
        "tb-abc-sl", "sell", D("0.03"), D("0.02"), "partially_filled")


def test_gate_full_length_client_id_goes_out_short_and_comes_back_whole():
    # Gate takes 28 characters with its "t-"; ours run to 32 (tb- + 20 hex + - + an 8-character leg).
    ours = "tb-0123456789abcdef0123-entrymkt"
    gate = ccxt.gate({"apiKey": "k", "secret": "s", "enableRateLimit": False, "options": {"unifiedAccount": False}})
    gate.session = JsonVenue({"id": 124, "text": "t-tb.ASNFZ4mrze8BIw.entrymkt", "contract": "BTC_USDT",
                              "size": 100, "left": 100, "status": "open", "price": "0", "tif": "ioc",
                              "create_time": 1750000000.0})
    gate.set_markets([swap_market("BTC_USDT", "usdt", 0.0001, 1)])
    broker = CcxtBroker(gate, name="gate", clock_ms=lambda: NOW_MS)
    order = OrderIntent("0123456789abcdef0123", "entrymkt", "BTC/USDT:USDT", "buy", "market", D("0.01"))

    broker.submit(order, reference_price=D("60000"), ts_ms=NOW_MS)
    fetched = broker.fetch_order(ours, "BTC/USDT:USDT")

    text = json.loads(gate.session.sent_bodies[0])["text"]
    assert (text, len(text)) == ("t-tb.ASNFZ4mrze8BIw.entrymkt", 28)
    assert gate.session.sent[-1].path == "/api/v4/futures/usdt/orders/t-tb.ASNFZ4mrze8BIw.entrymkt"
    assert fetched.client_order_id == ours


@pytest.mark.parametrize("client_id", ["tb-0123456789abcdef0123-entry", "tb-ffffffffffffffffffff-tp3",
                                       "tb-00000000000000000000-entrymkt", "manual-1", "autoclose-123"])
def test_compact_client_id_round_trips_and_leaves_others_alone(client_id):
    from execution.oms import compact_client_id, expand_client_id

    short = compact_client_id(client_id)

    assert expand_client_id(short) == client_id
    assert len(short) <= 26 if client_id.startswith("tb-") else short == client_id


def test_bitget_market_order_acknowledged_by_ids_is_accepted():
    bitget = ccxt.bitget({"apiKey": "k", "secret": "s", "password": "p", "enableRateLimit": False})
    bitget.session = JsonVenue({"code": "00000", "msg": "success", "requestTime": NOW_MS,
                                "data": {"orderId": "1", "clientOid": "tb-0123456789abcdef0123-entry"}})
    bitget.set_markets([swap_market("BTCUSDT", "USDT", 1, 0.0001)])

    report = CcxtBroker(bitget, name="bitget").submit(intent(), reference_price=D("60000"), ts_ms=NOW_MS)

    assert json.loads(bitget.session.sent_bodies[-1])["clientOid"] == "tb-0123456789abcdef0123-entry"
    assert (report.status, report.exchange_order_id) == ("accepted", "1")


@pytest.mark.parametrize("exchange_id", ["gate", "bitget"])
def test_submit_stop_on_venue_without_conditional_support_rejected_unsent(exchange_id):
    client = getattr(ccxt, exchange_id)({"enableRateLimit": False})
    client.session = JsonVenue({})

    with pytest.raises(OrderRejected, match="conditional orders are not supported"):
        CcxtBroker(client, name=exchange_id).submit(SL, reference_price=D("60000"), ts_ms=NOW_MS)
    assert client.session.sent == []


def test_venue_order_gate_contracts_to_base_units():
    order = {"id": "9", "clientOrderId": "t-tb-a-tp1", "side": "sell", "type": "limit", "status": "closed",
             "amount": 250.0, "filled": 250.0, "price": 61000.0, "info": {}}

    result = venue_order(order, {"id": "BTC_USDT", "contractSize": 0.0001}, conditional=False, client_id_prefix="t-")

    assert (result.client_order_id, result.quantity, result.status) == ("tb-a-tp1", D("0.025"), "filled")
