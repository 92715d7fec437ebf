"""The emulator's fault machinery the scenarios rely on, checked on the venue itself (no HTTP, no ccxt).

Seeded plans replay; windows, mixes and reply faults strike where they say; slices and the cancel
race, the venue's own closes, ghosts, -4131 and -4045 behave as modelled on Binance's documentation.
"""
from __future__ import annotations

from decimal import Decimal as D

import pytest

from execution.emulator import Venue, errors, rest_trade
from execution.emulator.algo import MAX_OPEN_ALGO_ORDERS
from execution.emulator.faults import Fault, FaultPlan
from execution.emulator.params import AlgoRequest, OrderRequest

BUSY = Fault(status=503)
STALL = Fault(delay_s=0.5)


class Clock:
    def __init__(self):
        self.now_ms = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now_ms


@pytest.fixture
def venue() -> Venue:
    venue = Venue(clock=Clock())
    venue.set_price("BTCUSDT", D("60000"))
    return venue


def _order(venue: Venue, client_id: str, side: str = "BUY", type_: str = "MARKET", quantity: str = "0.010",
           price: str = "0", reduce_only: bool = False):
    request = OrderRequest("BTCUSDT", side, type_, D(quantity), D(price), "GTC", reduce_only, None, client_id)
    with venue.change() as now_ms:
        return venue.engine.place_order(request, now_ms)


def _stop(venue: Venue, client_id: str, trigger: str = "70000", side: str = "BUY"):
    request = AlgoRequest("BTCUSDT", side, "STOP_MARKET", D("0.002"), D(0), D(trigger), "GTC", "CONTRACT_PRICE",
                          False, False, None, client_id, D(0), D(0), False)
    with venue.change() as now_ms:
        return venue.algos.place(request, now_ms)


# -- the fault plan ---------------------------------------------------------------------------

def _draws(seed: int) -> list[str]:
    plan = FaultPlan(seed)
    plan.add_mix("/fapi/v1/order", [(0.3, BUSY), (0.3, STALL)], method="POST")
    for _ in range(30):
        plan.take("POST", "/fapi/v1/order", 0)
    return plan.kinds()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fault_plan_mix_same_seed_replays_the_same_faults(seed):
    first, again = _draws(seed), _draws(seed)

    assert first == again and {"503", "stall-before", "pass"} <= set(first)


def test_fault_plan_mix_over_certainty_raises():
    with pytest.raises(ValueError, match="more than 1"):
        FaultPlan().add_mix("/x", [(0.6, BUSY), (0.6, STALL)])


@pytest.mark.parametrize(("method", "now_ms", "kind"), [
    ("GET", 999, "pass"),           # before the window
    ("GET", 1_000, "503"),          # inside it
    ("POST", 1_500, "pass"),        # a method the window does not cover
    ("GET", 2_000, "pass"),         # after it: the end is excluded
])
def test_fault_plan_window_covers_its_span_of_venue_time(method, now_ms, kind):
    plan = FaultPlan()
    plan.add_window(BUSY, start_ms=1_000, end_ms=2_000, method="GET")

    plan.take(method, "/fapi/v1/openOrders", now_ms)

    assert plan.kinds() == [kind]


def test_fault_plan_ban_comes_before_queued_faults_and_is_logged():
    plan = FaultPlan()
    plan.add("/fapi/v1/order", BUSY)
    plan.ban_until_ms = 5_000

    banned, after = plan.take("GET", "/fapi/v1/order", 1_000), plan.take("GET", "/fapi/v1/order", 5_000)

    assert (banned.status, banned.retry_after_s, after.status) == (418, 4, 503)
    assert plan.kinds() == ["418", "503"]


# -- writes answered with an error after they were applied -----------------------------------------

def test_reply_fault_applies_the_order_then_answers_503(venue):
    venue.fail_after_apply("/fapi/v1/order", method="POST")
    handler = rest_trade.ROUTES[("POST", "/fapi/v1/order")]

    with pytest.raises(errors.BinanceError, match="-1000 Unknown error") as failure:
        handler(venue, {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010",
                        "newClientOrderId": "applied-1"})

    assert failure.value.status == 503
    assert [o.status for o in venue.state.orders.values() if o.client_order_id == "applied-1"] == ["FILLED"]


# -- slices and the cancel race ---------------------------------------------------------------

@pytest.mark.parametrize(("fill_wins", "status", "executed"), [(True, "FILLED", "0.010"), (False, "CANCELED", "0.007")])
def test_fill_in_slices_cancel_racing_the_last_slice(venue, fill_wins, status, executed):
    order = _order(venue, "slice-1", type_="LIMIT", price="59000")
    venue.fill_in_slices("slice-1", [D("0.004"), D("0.003"), D("0.003")], cancel_races_last=fill_wins)
    for _ in range(2):
        venue.set_price("BTCUSDT", D("59000"))

    with venue.change() as now_ms:
        if fill_wins:
            with pytest.raises(errors.BinanceError, match="-2011"):
                venue.engine.cancel_order("BTCUSDT", None, "slice-1", now_ms)
        else:
            venue.engine.cancel_order("BTCUSDT", None, "slice-1", now_ms)

    assert (order.status, order.executed_qty) == (status, D(executed))
    assert [t.qty for t in venue.state.trades] == [D("0.004"), D("0.003")] + ([D("0.003")] if fill_wins else [])


# -- the venue's own closes ---------------------------------------------------------------------

@pytest.mark.parametrize(("close", "prefix", "expires_orders"), [
    ("liquidate", "autoclose-", True), ("auto_deleverage", "adl_autoclose", False), ("manual_close", "web_", False),
])
def test_venue_close_flattens_with_its_client_id_and_keeps_algo_orders(venue, close, prefix, expires_orders):
    _order(venue, "long-1")
    resting = _order(venue, "rest-1", type_="LIMIT", price="50000")
    _stop(venue, "web_algo_1")

    closer = getattr(venue, close)("BTCUSDT")

    assert closer.client_order_id.startswith(prefix) and closer.status == "FILLED"
    assert venue.state.position("BTCUSDT", "BOTH").amount == 0
    assert resting.status == ("EXPIRED" if expires_orders else "NEW")
    assert [a.status for a in venue.algos.open_orders("BTCUSDT")] == ["NEW"]


# -- refusals modelled on exchangeInfo's filters ----------------------------------------------------

@pytest.mark.parametrize(("side", "last", "refused"), [
    ("BUY", "63001", True), ("BUY", "63000", False), ("SELL", "56999", True), ("SELL", "57000", False),
])
def test_market_order_outside_percent_price_band_refused_4131(venue, side, last, refused):
    venue.set_price("BTCUSDT", D(last), D("60000"))

    if refused:
        with pytest.raises(errors.BinanceError, match="-4131"):
            _order(venue, "pp-1", side=side)
    else:
        assert _order(venue, "pp-1", side=side).status == "FILLED"


def test_algo_order_past_the_open_limit_refused_4045(venue):
    for i in range(MAX_OPEN_ALGO_ORDERS):
        _stop(venue, f"web_algo_{i}", trigger=str(70_000 + i))

    with pytest.raises(errors.BinanceError, match="-4045 Reach max stop order limit"):
        _stop(venue, "one-more")


# -- ghosts ----------------------------------------------------------------------------------------

def test_ghost_order_unknown_to_queries_while_the_engine_fills_it(venue):
    _order(venue, "ghost-1", type_="LIMIT", price="59000")
    venue.ghost("ghost-1")
    query = {"symbol": "BTCUSDT", "origClientOrderId": "ghost-1"}

    with pytest.raises(errors.BinanceError, match="-2013"):
        rest_trade.ROUTES[("GET", "/fapi/v1/order")](venue, query)
    listed = rest_trade.ROUTES[("GET", "/fapi/v1/openOrders")](venue, {"symbol": "BTCUSDT"})
    venue.set_price("BTCUSDT", D("59000"))
    venue.unghost("ghost-1")

    assert listed == []
    assert rest_trade.ROUTES[("GET", "/fapi/v1/order")](venue, query)["status"] == "FILLED"
