"""Refused stops, seeded by side: never a position without its stop past the grace period.

-2021 and -4142 say the price is already through the stop: the position is closed at once.
-4120 (wrong endpoint), -2022 (reduce-only refused) and -4045 (too many conditional orders) are
plain rejections: the stop order is recorded rejected with the venue's reason, and the stop
verification flattens the position once the 5 s grace period has passed.
"""
from __future__ import annotations

import pytest

from decisions.models import AuditRecord, Decision
from decisions.selectors import trading_config_get
from decisions.services import decision_execute
from execution.emulator import errors
from execution.emulator.faults import Fault
from execution.models import Order, Position
from execution.protective import STOP_GRACE
from execution.services import position_open
from tests.execution.faults.invariants import assert_books_match_venue

ALGO = "/fapi/v1/algoOrder"
REFUSALS = {"-4142": errors.stop_triggers_immediately(), "-4120": errors.algo_endpoint_required(),
            "-2022": errors.reduce_only_rejected()}


def _refuse_stops(rig, code: str, decision: Decision) -> None:
    """Make the venue refuse the decision's stop with `code`, as it would (or by a scripted reply)."""
    if code == "-2021":     # the mark is through the stop already (the stop triggers on the mark)
        through = decision.stop_price + (-50 if decision.action == "LONG" else 50)
        rig.set_price(rig.price(), mark=through)
    elif code == "-4045":   # someone filled the symbol's ten conditional-order slots
        for i in range(10):
            rig.client.create_order("BTC/USDT:USDT", "market", "buy", 0.002, None,
                                    {"stopLossPrice": 70_000 + 10 * i, "clientOrderId": f"web_algo_{i}"})
    else:
        failure = REFUSALS[code]
        rig.emulator.faults.add(ALGO, Fault(code=failure.code, msg=failure.msg), method="POST")


def _side(rig) -> str:
    return rig.rng.choice(["LONG", "SHORT"])


@pytest.fixture
def venue_broker(rig, monkeypatch):
    """Route decision_execute's broker to the rig's (it would build one from stored keys)."""
    monkeypatch.setattr("execution.services.broker_for", lambda account, config, now=None: rig.broker)
    return rig.broker


@pytest.mark.parametrize("code", ["-2021", "-4142"])
@pytest.mark.parametrize("seed", [1, 2])
def test_stop_past_the_price_closes_the_position_at_once(rig, venue_broker, seed, code):
    decision = rig.decision(_side(rig))
    _refuse_stops(rig, code, decision)

    decision_execute(decision=decision, config=trading_config_get(), now=rig.now, account=rig.account,
                     reference_price=rig.price())

    stop, exit_ = Order.objects.get(leg="sl"), Order.objects.get(leg="exit")
    assert (stop.status, stop.reject_reason[:5], exit_.status, exit_.reduce_only) == ("rejected", code, "filled", True)
    assert rig.venue_amount() == 0
    decision.refresh_from_db()
    assert decision.outcome == Decision.Outcome.EXECUTED
    assert [code in r.body["reason"] for r in AuditRecord.objects.filter(body__action="flatten")] == [True]
    rig.reconcile()         # the loop's would run within 30 s; see the xfail below for what ticks meanwhile
    assert rig.position() is None
    assert_books_match_venue(rig)


@pytest.mark.parametrize("seed", [1])
def test_stop_past_the_price_flattened_then_the_loop_ticks_on(rig, venue_broker, seed):
    decision = rig.decision(_side(rig))
    _refuse_stops(rig, "-4142", decision)
    decision_execute(decision=decision, config=trading_config_get(), now=rig.now, account=rig.account,
                     reference_price=rig.price())

    rig.settle(max_ticks=14, step=3.0)

    assert rig.position() is None and Order.objects.filter(leg="exit").count() == 1
    assert_books_match_venue(rig)


@pytest.mark.parametrize("code", ["-4120", "-2022", "-4045"])
@pytest.mark.parametrize("seed", [1, 2])
def test_stop_rejected_is_recorded_and_the_position_flattened_after_the_grace(rig, seed, code):
    decision = rig.decision(_side(rig))
    _refuse_stops(rig, code, decision)

    # The refused stop is recorded and alerted; the position opened and stays the decision's trade.
    position = position_open(decision=decision, account=rig.account, broker=rig.broker, now=rig.now,
                             reference_price=rig.price())
    opened_at = position.opened_at
    verified = []
    while rig.venue_amount() != 0 and len(verified) < 8:
        report = rig.tick(1.0)
        verified.append(((report.at - opened_at).total_seconds(), *report.verified.values()))

    stop = Order.objects.get(leg="sl")
    assert (stop.status, stop.reject_reason[:5]) == ("rejected", code)
    # Naked only until the first verification past the grace period, which closes it at market.
    closed_at_s = next(at for at, status in verified if status == "closed")
    assert all(at < STOP_GRACE.total_seconds() for at, status in verified if status == "waiting")
    assert closed_at_s >= STOP_GRACE.total_seconds() and rig.venue_amount() == 0
    rig.reconcile()         # the loop's periodic run: the books close the position the venue closed
    assert rig.position() is None
    assert_books_match_venue(rig)


@pytest.mark.parametrize("seed", [1])
def test_stop_rejected_after_the_entry_filled_decision_stays_executed(rig, venue_broker, seed):
    decision = rig.decision(_side(rig))
    _refuse_stops(rig, "-4045", decision)

    decision_execute(decision=decision, config=trading_config_get(), now=rig.now, account=rig.account,
                     reference_price=rig.price())

    decision.refresh_from_db()
    assert Position.objects.filter(decision=decision).exists() and decision.outcome == Decision.Outcome.EXECUTED


@pytest.mark.parametrize("seed", [1])
def test_stop_rejected_flatten_is_alerted_once(rig, seed):
    decision = rig.decision(_side(rig))
    _refuse_stops(rig, "-2022", decision)
    position_open(decision=decision, account=rig.account, broker=rig.broker, now=rig.now, reference_price=rig.price())

    rig.run(12, step=3.0)

    assert rig.venue_amount() == 0 and not rig.position()
    assert AuditRecord.objects.filter(body__action="flatten").count() == 1
