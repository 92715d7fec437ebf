from decimal import Decimal as D

import pytest

from execution.oms import CLIENT_ID_PATTERN, OrderIntent, OrderRejected, Precision, apply_precision, make_intent_id


def _intent(**overrides) -> OrderIntent:
    base = dict(intent_id=make_intent_id("paper", 1, "5m", "2025-07-05T00:00"), leg="entry",
                symbol="BTC/USDT:USDT", side="buy", type="market", quantity=D("0.0127"))
    return OrderIntent(**(base | overrides))


def test_client_order_id_is_deterministic_and_binance_valid():
    a, b = _intent(), _intent()

    assert a.client_order_id == b.client_order_id
    assert CLIENT_ID_PATTERN.match(a.client_order_id)
    assert len(a.client_order_id) <= 36


def test_make_intent_id_differs_per_bar():
    assert make_intent_id("paper", 1, "5m", "a") != make_intent_id("paper", 1, "5m", "b")


def test_apply_precision_rounds_quantity_down_to_step():
    rounded = apply_precision(_intent(), Precision(D("0.1"), D("0.001"), D("5")), D("60000"))

    assert rounded.quantity == D("0.012")


def test_apply_precision_below_min_notional_rejected_with_reason():
    with pytest.raises(OrderRejected, match="below the minimum 100"):
        apply_precision(_intent(quantity=D("0.001")), Precision(D("0.1"), D("0.001"), D("100")), D("60000"))


def test_apply_precision_reduce_only_exit_may_be_small():
    intent = _intent(quantity=D("0.001"), reduce_only=True, side="sell", leg="exit")

    assert apply_precision(intent, Precision(D("0.1"), D("0.001"), D("100")), D("60000")).quantity == D("0.001")


def test_on_tick_shows_the_ticks_decimals():
    from execution.engine import on_tick

    assert str(on_tick(D("111008.7000000000"), D("0.1000000000"))) == "111008.7"
    assert str(on_tick(D("3.1400000000"), D("1.0000000000"))) == "3"
