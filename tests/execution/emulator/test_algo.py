"""Conditional orders (the Algo Order API) through the real ccxt client."""
from decimal import Decimal as D

import ccxt
import pytest

from execution.emulator.algo import is_triggered, trail
from execution.emulator.state import AlgoOrder

BTC = "BTC/USDT:USDT"
TRIGGER = {"trigger": True}


@pytest.mark.parametrize(("order_type", "side", "price", "fires"), [
    # stops fire when the price moves through the trigger against the position
    ("STOP_MARKET", "SELL", "99", True),
    ("STOP_MARKET", "SELL", "101", False),
    ("STOP", "BUY", "100", True),
    ("STOP", "BUY", "99", False),
    # take-profits fire in the other direction
    ("TAKE_PROFIT_MARKET", "SELL", "100", True),
    ("TAKE_PROFIT_MARKET", "SELL", "99", False),
    ("TAKE_PROFIT", "BUY", "99", True),
    ("TAKE_PROFIT", "BUY", "101", False),
])
def test_is_triggered_table(order_type, side, price, fires):
    assert is_triggered(order_type, side, D("100"), D(price)) is fires


def trailing(side: str, activate: str = "0") -> AlgoOrder:
    return AlgoOrder(1, "t", "BTCUSDT", side, "BOTH", "TRAILING_STOP_MARKET", "GTC", D("1"), D(0), D(0),
                     "CONTRACT_PRICE", True, False, 0, 0, activate_price=D(activate), callback_rate=D("2"))


@pytest.mark.parametrize(("side", "activate", "path", "fires_at"), [
    ("SELL", "0", ["100", "110", "108", "107.8"], 3),      # 2 % below the 110 peak
    ("BUY", "0", ["100", "90", "91", "91.8"], 3),          # 2 % above the 90 trough
    ("SELL", "105", ["100", "98", "104", "106", "103.88"], 4),  # waits for 105, then trails from 106
])
def test_trail_fires_after_callback_rate_retrace(side, activate, path, fires_at):
    algo = trailing(side, activate)
    if activate == "0":
        algo.extreme_price = D(path[0])

    fired = [trail(algo, D(price)) for price in path]

    assert fired.index(True) == fires_at


@pytest.fixture
def long_btc(usdm):
    """Open a 0.01 BTC long at 60000."""
    usdm.create_order(BTC, "market", "buy", 0.01)
    return usdm


def position_qty(client) -> float:
    positions = [p for p in client.fetch_positions([BTC]) if p["contracts"]]
    return positions[0]["contracts"] * (1 if positions[0]["side"] == "long" else -1) if positions else 0.0


def test_stop_loss_price_goes_to_algo_endpoint(trading_emulator, long_btc):
    stop = long_btc.create_order(BTC, "market", "sell", 0.01, params={"stopLossPrice": 59000, "reduceOnly": True})

    sent = trading_emulator.params("/fapi/v1/algoOrder")[-1]
    assert (sent["algoType"], sent["type"], sent["triggerPrice"], sent["reduceOnly"]) == (
        "CONDITIONAL", "STOP_MARKET", "59000", "true")
    assert (stop["status"], stop["type"], stop["triggerPrice"], stop["reduceOnly"]) == ("open", "market", 59000.0,
                                                                                         True)


def test_stop_market_type_with_trigger_price_is_accepted(trading_emulator, long_btc):
    stop = long_btc.create_order(BTC, "STOP_MARKET", "sell", 0.01, params={"triggerPrice": 59000,
                                                                            "reduceOnly": True})

    assert trading_emulator.params("/fapi/v1/algoOrder")[-1]["type"] == "STOP_MARKET"
    assert stop["info"]["algoStatus"] == "NEW"


def test_fetch_open_orders_trigger_lists_stop_plain_does_not(long_btc):
    stop = long_btc.create_order(BTC, "market", "sell", 0.01, params={"stopLossPrice": 59000, "reduceOnly": True})

    assert [o["id"] for o in long_btc.fetch_open_orders(BTC, params=TRIGGER)] == [stop["id"]]
    assert long_btc.fetch_open_orders(BTC) == []


def test_stop_triggers_on_price_move_and_closes_position(trading_emulator, long_btc):
    stop = long_btc.create_order(BTC, "market", "sell", 0.01, params={"stopLossPrice": 59000, "reduceOnly": True,
                                                                      "clientOrderId": "sl-1"})

    trading_emulator.set_price("BTCUSDT", D("58990"))

    fetched = long_btc.fetch_order(stop["id"], BTC, params=TRIGGER)
    assert (fetched["status"], fetched["info"]["algoStatus"]) == ("closed", "FINISHED")
    assert position_qty(long_btc) == 0.0
    child = long_btc.fetch_order(fetched["info"]["actualOrderId"], BTC)
    assert (child["status"], child["average"], child["clientOrderId"]) == ("closed", 58990.0, "sl-1")
    assert child["info"]["origType"] == "STOP_MARKET"
    assert long_btc.fetch_open_orders(BTC, params=TRIGGER) == []


def test_stop_already_crossed_raises_order_immediately_fillable(long_btc):
    with pytest.raises(ccxt.OrderImmediatelyFillable, match="-2021.*Order would immediately trigger"):
        long_btc.create_order(BTC, "market", "sell", 0.01, params={"stopLossPrice": 61000, "reduceOnly": True})


@pytest.mark.parametrize(("working_type", "last", "mark", "fires"), [
    # the mark crossed, the last did not
    ("MARK_PRICE", "59500", "58900", True),
    ("CONTRACT_PRICE", "59500", "58900", False),
    # the last crossed, the mark did not
    ("MARK_PRICE", "58900", "59500", False),
    ("CONTRACT_PRICE", "58900", "59500", True),
])
def test_stop_working_type_picks_mark_or_last(trading_emulator, long_btc, working_type, last, mark, fires):
    stop = long_btc.create_order(BTC, "market", "sell", 0.01, params={
        "stopLossPrice": 59000, "reduceOnly": True, "workingType": working_type})

    trading_emulator.set_price("BTCUSDT", D(last), mark=D(mark))

    status = long_btc.fetch_order(stop["id"], BTC, params=TRIGGER)["info"]["algoStatus"]
    assert status == ("FINISHED" if fires else "NEW")


def test_take_profit_market_fires_above_for_a_long(trading_emulator, long_btc):
    take = long_btc.create_order(BTC, "market", "sell", 0.01, params={"takeProfitPrice": 61000,
                                                                      "reduceOnly": True})

    trading_emulator.set_price("BTCUSDT", D("61000"))

    assert long_btc.fetch_order(take["id"], BTC, params=TRIGGER)["takeProfitPrice"] == 61000.0
    assert position_qty(long_btc) == 0.0
    assert long_btc.fetch_my_trades(BTC)[-1]["info"]["realizedPnl"] == "10"


def test_stop_limit_marketable_at_trigger_fills_at_once(trading_emulator, long_btc):
    stop = long_btc.create_order(BTC, "limit", "sell", 0.01, 58000, params={"stopLossPrice": 59000,
                                                                             "reduceOnly": True})

    trading_emulator.set_price("BTCUSDT", D("58990"))  # the sell limit at 58000 is below the market

    algo = long_btc.fetch_order(stop["id"], BTC, params=TRIGGER)
    child = long_btc.fetch_order(algo["info"]["actualOrderId"], BTC)
    assert (algo["info"]["orderType"], algo["info"]["algoStatus"]) == ("STOP", "FINISHED")
    assert (child["type"], child["average"]) == ("limit", 58990.0)


def test_stop_limit_below_market_after_trigger_rests_as_triggered(trading_emulator, long_btc):
    stop = long_btc.create_order(BTC, "limit", "sell", 0.01, 59500, params={"stopLossPrice": 59000,
                                                                             "reduceOnly": True})

    trading_emulator.set_price("BTCUSDT", D("58990"))

    algo = long_btc.fetch_order(stop["id"], BTC, params=TRIGGER)
    child = long_btc.fetch_order(algo["info"]["actualOrderId"], BTC)
    assert (algo["info"]["algoStatus"], child["status"], child["type"]) == ("TRIGGERED", "open", "limit")
    trading_emulator.set_price("BTCUSDT", D("59500"))
    assert long_btc.fetch_order(stop["id"], BTC, params=TRIGGER)["info"]["algoStatus"] == "FINISHED"


def test_trailing_stop_follows_peak_then_fires(trading_emulator, long_btc):
    trail = long_btc.create_order(BTC, "market", "sell", 0.01, params={"trailingPercent": 1, "reduceOnly": True})

    for price in ("60500", "61000", "60500"):  # 61000 x 0.99 = 60390 not reached
        trading_emulator.set_price("BTCUSDT", D(price))
    assert long_btc.fetch_order(trail["id"], BTC, params=TRIGGER)["info"]["algoStatus"] == "NEW"
    trading_emulator.set_price("BTCUSDT", D("60390"))

    assert long_btc.fetch_order(trail["id"], BTC, params=TRIGGER)["info"]["algoStatus"] == "FINISHED"
    assert position_qty(long_btc) == 0.0


def test_close_position_stop_closes_whatever_is_open(trading_emulator, long_btc):
    long_btc.fapiPrivatePostAlgoOrder({"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL",
                                       "type": "STOP_MARKET", "triggerPrice": "59000", "closePosition": "true"})
    long_btc.create_order(BTC, "market", "buy", 0.01)  # now 0.02 long

    trading_emulator.set_price("BTCUSDT", D("58900"))

    assert position_qty(long_btc) == 0.0


def test_reduce_only_stop_with_position_gone_is_rejected_on_trigger(trading_emulator, long_btc):
    stop = long_btc.create_order(BTC, "market", "sell", 0.01, params={"stopLossPrice": 59000, "reduceOnly": True})
    long_btc.create_order(BTC, "market", "sell", 0.01, params={"reduceOnly": True})

    trading_emulator.set_price("BTCUSDT", D("58900"))

    fetched = long_btc.fetch_order(stop["id"], BTC, params=TRIGGER)
    assert (fetched["status"], position_qty(long_btc)) == ("rejected", 0.0)


def test_cancel_algo_order_by_id_and_unknown(long_btc):
    stop = long_btc.create_order(BTC, "market", "sell", 0.01, params={"stopLossPrice": 59000, "reduceOnly": True})

    canceled = long_btc.cancel_order(stop["id"], BTC, params=TRIGGER)

    assert canceled["id"] == stop["id"]
    assert long_btc.fetch_order(stop["id"], BTC, params=TRIGGER)["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        long_btc.cancel_order(stop["id"], BTC, params=TRIGGER)


def test_fetch_algo_order_by_client_algo_id(long_btc):
    long_btc.create_order(BTC, "market", "sell", 0.01, params={"stopLossPrice": 59000, "reduceOnly": True,
                                                               "clientOrderId": "my-stop"})

    fetched = long_btc.fetch_order(None, BTC, params={"trigger": True, "clientOrderId": "my-stop"})

    assert (fetched["clientOrderId"], fetched["triggerPrice"]) == ("my-stop", 59000.0)


def test_algo_duplicate_client_id_raises_invalid_order(long_btc):
    params = {"stopLossPrice": 59000, "reduceOnly": True, "clientOrderId": "same"}
    long_btc.create_order(BTC, "market", "sell", 0.01, params=params)

    with pytest.raises(ccxt.InvalidOrder, match="-4116"):
        long_btc.create_order(BTC, "market", "sell", 0.01, params=params)


def test_cancel_all_trigger_orders_empties_algo_book(long_btc):
    for trigger in (59000, 58000):
        long_btc.create_order(BTC, "market", "sell", 0.005, params={"stopLossPrice": trigger, "reduceOnly": True})

    long_btc.cancel_all_orders(BTC, params=TRIGGER)

    assert long_btc.fetch_open_orders(BTC, params=TRIGGER) == []
    assert [o["status"] for o in long_btc.fetch_orders(BTC, params=TRIGGER)] == ["canceled", "canceled"]


def test_stop_reduce_only_without_position_raises_reduce_only_rejected(usdm):
    with pytest.raises(ccxt.InvalidOrder, match="-2022"):
        usdm.create_order(BTC, "market", "sell", 0.01, params={"stopLossPrice": 59000, "reduceOnly": True})
