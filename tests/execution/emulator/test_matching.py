"""Normal orders through the real ccxt binanceusdm client against the emulator."""
from decimal import Decimal as D

import ccxt
import pytest

from execution.emulator import Emulator, EmulatorConfig
from execution.emulator.matching import EngineConfig
from tests.emulator.fixtures import usdm_client

BTC = "BTC/USDT:USDT"


def test_load_markets_only_asks_exchange_info_and_wallet_coins(trading_emulator, usdm):
    paths = [path for path, _ in trading_emulator.requests]

    assert sorted(paths) == ["/fapi/v1/exchangeInfo", "/sapi/v1/capital/config/getall", "/sapi/v1/margin/allPairs"]
    assert (usdm.market(BTC)["precision"]["amount"], usdm.market(BTC)["precision"]["price"]) == (0.001, 0.1)


def test_set_leverage_returns_binance_reply_and_is_kept(trading_emulator, usdm):
    reply = usdm.set_leverage(7, BTC)

    assert reply == {"leverage": 7, "maxNotionalValue": "1000000000", "symbol": "BTCUSDT"}
    assert trading_emulator.venue.leverage("BTCUSDT") == 7


def test_set_leverage_out_of_range_raises_bad_request(usdm):
    # ccxt checks 1..125 itself; the raw call reaches the venue's check.
    with pytest.raises(ccxt.BadRequest, match="-4028.*Leverage 200 is not valid"):
        usdm.fapiPrivatePostLeverage({"symbol": "BTCUSDT", "leverage": 200})


def test_set_position_mode_hedged_round_trips(usdm):
    usdm.set_position_mode(True)

    assert usdm.fetch_position_mode(BTC)["hedged"] is True


def test_set_position_mode_unchanged_raises(usdm):
    with pytest.raises(ccxt.ExchangeError, match="-4059"):
        usdm.set_position_mode(False)


def test_set_margin_mode_same_raises_margin_mode_already_set(usdm):
    usdm.set_margin_mode("isolated", BTC)

    with pytest.raises(ccxt.MarginModeAlreadySet):
        usdm.set_margin_mode("isolated", BTC)


def test_create_market_order_fills_at_last_price(usdm):
    order = usdm.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "m-1"})

    assert (order["status"], order["filled"], order["average"], order["clientOrderId"]) == ("closed", 0.01,
                                                                                          60000.0, "m-1")


def test_create_market_order_slippage_moves_fill_against_taker():
    config = EmulatorConfig(engine=EngineConfig(slippage_bps=D("10")))
    with Emulator(config=config) as emulator:
        emulator.set_price("BTCUSDT", D("60000"))
        client = usdm_client(emulator)

        buy = client.create_order(BTC, "market", "buy", 0.01)
        sell = client.create_order(BTC, "market", "sell", 0.01)

    assert (buy["average"], sell["average"]) == (60060.0, 59940.0)


def test_create_limit_order_rests_then_fills_as_maker_on_price_move(trading_emulator, usdm):
    order = usdm.create_order(BTC, "limit", "buy", 0.01, 59000)
    assert usdm.fetch_order(order["id"], BTC)["status"] == "open"

    trading_emulator.set_price("BTCUSDT", D("58950"))

    filled = usdm.fetch_order(order["id"], BTC)
    trade = usdm.fetch_my_trades(BTC)[-1]
    assert (filled["status"], filled["average"]) == ("closed", 59000.0)
    assert (trade["takerOrMaker"], trade["fee"]["cost"]) == ("maker", 0.118)  # 590 x 0.02 %


def test_create_limit_order_crossing_fills_as_taker_at_last(usdm):
    order = usdm.create_order(BTC, "limit", "buy", 0.01, 61000)

    assert (order["status"], order["average"]) == ("closed", 60000.0)
    assert usdm.fetch_my_trades(BTC)[-1]["takerOrMaker"] == "taker"


def test_create_limit_ioc_not_crossing_expires(usdm):
    order = usdm.create_order(BTC, "limit", "buy", 0.01, 59000, params={"timeInForce": "IOC"})

    assert order["status"] == "expired"


def test_create_post_only_crossing_raises_order_not_fillable(usdm):
    with pytest.raises(ccxt.OrderNotFillable, match="-5022"):
        usdm.create_order(BTC, "limit", "buy", 0.01, 61000, params={"postOnly": True})


def test_create_post_only_resting_reports_po(usdm):
    order = usdm.create_order(BTC, "limit", "buy", 0.01, 59000, params={"postOnly": True})

    assert (order["status"], order["timeInForce"], order["postOnly"]) == ("open", "PO", True)


def test_create_order_duplicate_client_id_raises_invalid_order(usdm):
    usdm.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "dup-1"})

    with pytest.raises(ccxt.InvalidOrder, match="-4116.*ClientOrderId is duplicated"):
        usdm.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "dup-1"})


def test_create_order_duplicate_client_id_off_venue_url_raises_plain_exchange_error(trading_emulator):
    # ccxt maps -4116 by URL; an unmodified client pointed elsewhere sees ExchangeError (see fixtures).
    client = usdm_client(trading_emulator, venue_errors=False)
    client.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "dup-2"})

    with pytest.raises(ccxt.ExchangeError, match="-4116") as raised:
        client.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "dup-2"})
    assert type(raised.value) is ccxt.ExchangeError


def test_fetch_order_by_client_order_id_returns_it(usdm):
    placed = usdm.create_order(BTC, "limit", "sell", 0.01, 61000, params={"clientOrderId": "by-cid"})

    fetched = usdm.fetch_order(None, BTC, params={"clientOrderId": "by-cid"})

    assert (fetched["id"], fetched["status"], fetched["price"]) == (placed["id"], "open", 61000.0)


def test_fetch_order_unknown_raises_order_not_found(usdm):
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        usdm.fetch_order(None, BTC, params={"clientOrderId": "nope"})


def test_cancel_order_by_id_and_by_client_id(usdm):
    first = usdm.create_order(BTC, "limit", "buy", 0.01, 59000)
    usdm.create_order(BTC, "limit", "buy", 0.01, 58000, params={"clientOrderId": "c-2"})

    by_id = usdm.cancel_order(first["id"], BTC)
    by_client_id = usdm.cancel_order(None, BTC, params={"clientOrderId": "c-2"})

    assert (by_id["status"], by_client_id["status"]) == ("canceled", "canceled")
    assert usdm.fetch_open_orders(BTC) == []


def test_cancel_order_filled_raises_order_not_found(usdm):
    order = usdm.create_order(BTC, "market", "buy", 0.01)

    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        usdm.cancel_order(order["id"], BTC)


def test_cancel_all_orders_leaves_no_open_order(usdm):
    for price in (58000, 58500):
        usdm.create_order(BTC, "limit", "buy", 0.01, price)

    usdm.cancel_all_orders(BTC)

    assert usdm.fetch_open_orders(BTC) == []
    assert [o["status"] for o in usdm.fetch_orders(BTC)] == ["canceled", "canceled"]


@pytest.mark.parametrize(("amount", "price", "params", "error", "code"), [
    # notional 0.001 x 60000 = 60 USDT < 100
    (0.001, None, {}, ccxt.InvalidOrder, "-4164"),
    # 10 BTC at 20x needs 30 000 USDT of margin; the wallet holds 10 000
    (10, None, {}, ccxt.InsufficientFunds, "-2019"),
    # nothing to reduce
    (0.01, None, {"reduceOnly": True}, ccxt.InvalidOrder, "-2022"),
])
def test_create_order_refusals_map_to_ccxt_errors(usdm, amount, price, params, error, code):
    with pytest.raises(error, match=code):
        usdm.create_order(BTC, "market", "sell", amount, price, params)


@pytest.mark.parametrize(("quantity", "price", "code"), [
    ("0.0101", "59000", -1111),  # 4 decimals; BTCUSDT takes 3
    ("0.010", "59000.123", -1111),  # 3 decimals; prices take 2
    ("0.010", "59000.05", -4014),  # off the 0.10 tick
    ("0", "59000", -4003),
])
def test_create_order_raw_precision_refused(usdm, quantity, price, code):
    # ccxt rounds to precision itself, so send the raw request to reach the venue's check.
    with pytest.raises(ccxt.BaseError, match=str(code)):
        usdm.fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                   "quantity": quantity, "price": price})


def test_create_order_conditional_type_on_order_endpoint_refused(usdm):
    with pytest.raises(ccxt.InvalidOrder, match="-4120"):
        usdm.fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET",
                                   "quantity": "0.01", "stopPrice": "59000"})


def test_hedge_mode_requires_position_side(usdm):
    usdm.set_position_mode(True)

    with pytest.raises(ccxt.ExchangeError, match="-4061"):
        usdm.fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"})
    order = usdm.create_order(BTC, "market", "buy", 0.01, params={"positionSide": "LONG"})
    assert order["info"]["positionSide"] == "LONG"


def test_fetch_open_orders_lists_only_open_normal_orders(usdm):
    resting = usdm.create_order(BTC, "limit", "buy", 0.01, 59000)
    usdm.create_order(BTC, "market", "buy", 0.01)

    assert [o["id"] for o in usdm.fetch_open_orders(BTC)] == [resting["id"]]
