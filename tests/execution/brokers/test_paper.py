from decimal import Decimal as D

import pytest

from execution.brokers.paper import OpenPosition, PaperBroker, exit_hit, position_pnl
from execution.oms import OrderIntent

LONG = OpenPosition("LONG", D("1"), D("100"), D("95"), D("110"))
SHORT = OpenPosition("SHORT", D("1"), D("100"), D("105"), D("90"))


def test_paper_submit_market_buy_pays_slippage_and_fee():
    broker = PaperBroker(taker_fee_fraction=D("0.0004"), slippage_bps=D("10"))
    intent = OrderIntent("abc", "entry", "BTC/USDT:USDT", "buy", "market", D("2"))

    report = broker.submit(intent, reference_price=D("100"), ts_ms=0)

    fill = report.fills[0]
    assert report.status == "filled"
    assert fill.price == D("100.1")
    assert fill.fee_usdt == D("0.08008")


def test_paper_submit_limit_order_rejected():
    broker = PaperBroker(taker_fee_fraction=D("0"), slippage_bps=D("0"))
    intent = OrderIntent("abc", "entry", "X", "buy", "limit", D("1"), price=D("1"))

    assert broker.submit(intent, reference_price=D("1"), ts_ms=0).status == "rejected"


@pytest.mark.parametrize(
    "position, bar, expected",
    [
        # long: stop touched, target touched, both touched (stop assumed first), gap below stop
        (LONG, ("100", "101", "94"), ("stop", "95")),
        (LONG, ("100", "111", "99"), ("target", "110")),
        (LONG, ("100", "111", "94"), ("stop", "95")),
        (LONG, ("93", "96", "92"), ("stop", "93")),
        # short mirrored, and a quiet bar that touches nothing
        (SHORT, ("100", "106", "99"), ("stop", "105")),
        (SHORT, ("100", "101", "89"), ("target", "90")),
        (SHORT, ("100", "101", "99"), None),
    ],
)
def test_exit_hit_levels(position, bar, expected):
    hit = exit_hit(position, *(D(v) for v in bar))

    assert (None if hit is None else (hit.reason, str(hit.price))) == expected


def test_position_pnl_short_gains_when_price_falls():
    assert position_pnl("SHORT", D("2"), D("100"), D("90")) == D("20")
