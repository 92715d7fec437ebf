"""Fault hooks: scripted errors, timeouts before/after applying, 429, 418 bans, partial fills."""
from decimal import Decimal as D

import ccxt
import pytest

from execution.emulator import Emulator
from tests.emulator.fixtures import usdm_client

BTC = "BTC/USDT:USDT"
ORDER = "/fapi/v1/order"


@pytest.mark.parametrize(("fault", "error", "pattern"), [
    # a 5xx carries Binance's -1001 body, which ccxt maps (by code) to OperationFailed: retryable
    ({"status": 503}, ccxt.OperationFailed, "-1001"),
    ({"status": 400, "code": -1001, "msg": "Internal error."}, ccxt.OperationFailed, "-1001"),
    ({"code": -2019, "msg": "Margin is insufficient."}, ccxt.InsufficientFunds, "-2019"),
])
def test_fail_next_call_with_status_or_code(trading_emulator, usdm, fault, error, pattern):
    trading_emulator.fail(ORDER, method="POST", **fault)

    with pytest.raises(error, match=pattern):
        usdm.create_order(BTC, "market", "buy", 0.01)
    assert usdm.create_order(BTC, "market", "buy", 0.01)["status"] == "closed"  # only the next call failed


def test_fail_times_counts_down(trading_emulator, usdm):
    trading_emulator.fail("/fapi/v3/positionRisk", status=500, times=2)

    for _ in range(2):
        with pytest.raises(ccxt.OperationFailed, match="-1001"):
            usdm.fetch_positions()
    assert usdm.fetch_positions() == []
    assert trading_emulator.count("/fapi/v3/positionRisk") == 3


def test_timeout_before_apply_leaves_no_order(trading_emulator):
    client = usdm_client(trading_emulator, timeout_ms=300)
    trading_emulator.timeout_before_apply(ORDER, 1.0, method="POST")

    with pytest.raises(ccxt.RequestTimeout):
        client.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "lost-1"})

    with pytest.raises(ccxt.OrderNotFound):
        client.fetch_order(None, BTC, params={"clientOrderId": "lost-1"})


def test_timeout_after_apply_order_exists_and_resend_is_duplicate(trading_emulator):
    client = usdm_client(trading_emulator, timeout_ms=300)
    trading_emulator.timeout_after_apply(ORDER, 1.0, method="POST")

    with pytest.raises(ccxt.RequestTimeout):
        client.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "applied-1"})

    assert client.fetch_order(None, BTC, params={"clientOrderId": "applied-1"})["status"] == "closed"
    with pytest.raises(ccxt.InvalidOrder, match="-4116"):
        client.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "applied-1"})
    assert client.fetch_positions([BTC])[0]["contracts"] == 0.01


def test_rate_limit_answers_429_with_retry_after(trading_emulator, usdm):
    trading_emulator.rate_limit("/fapi/v1/openOrders", retry_after_s=7)

    with pytest.raises(ccxt.DDoSProtection, match="429"):
        usdm.fetch_open_orders(BTC)
    assert usdm.last_response_headers["Retry-After"] == "7"


def test_ban_answers_418_naming_the_end_on_every_path(trading_emulator, usdm):
    until_ms = trading_emulator.venue.now_ms() + 60_000
    trading_emulator.ban(until_ms)

    for call in (lambda: usdm.fetch_balance(), lambda: usdm.fetch_time()):
        with pytest.raises(ccxt.DDoSProtection, match=f"418.*banned until {until_ms}"):
            call()
    trading_emulator.ban(0)
    assert usdm.fetch_time() > 0


def test_fail_randomly_is_repeatable_with_a_seed():
    def failures(seed: int) -> list[bool]:
        with Emulator(seed=seed) as emulator:
            emulator.fail_randomly("/fapi/v1/time", probability=0.5)
            client = usdm_client(emulator)
            outcome = []
            for _ in range(12):
                try:
                    client.fetch_time()
                    outcome.append(False)
                except ccxt.OperationFailed:
                    outcome.append(True)
            return outcome

    first, again = failures(seed=7), failures(seed=7)

    assert first == again and True in first and False in first


def test_partial_fill_leaves_rest_resting_then_fills(trading_emulator, usdm):
    trading_emulator.partial_fills(D("0.5"), times=1)

    order = usdm.create_order(BTC, "limit", "buy", 0.02, 61000)
    assert (order["status"], order["filled"], order["info"]["status"]) == ("open", 0.01, "PARTIALLY_FILLED")

    trading_emulator.set_price("BTCUSDT", D("60900"))

    done = usdm.fetch_order(order["id"], BTC)
    assert (done["status"], done["filled"]) == ("closed", 0.02)
    assert [t["amount"] for t in usdm.fetch_my_trades(BTC)] == [0.01, 0.01]


def test_partial_fill_of_market_order_expires_the_rest(trading_emulator, usdm):
    trading_emulator.partial_fills(D("0.25"))

    order = usdm.create_order(BTC, "market", "buy", 0.04)

    assert (order["status"], order["filled"]) == ("expired", 0.01)
