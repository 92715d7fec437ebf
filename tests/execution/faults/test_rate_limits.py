"""Request limits and the clock, seeded: 429 with Retry-After, the 418 ban, -1021 clock skew.

The broker's clock and sleep are the rig's simulated ones: a wait is recorded and moves the clock,
and "no request before the hold ends" is read from the timestamps ccxt signed the requests with.
"""
from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from execution.emulator.faults import Fault
from execution.models import Order, Position
from execution.services import position_open
from tests.execution.faults.invariants import assert_books_match_venue

READS = ("/fapi/v1/openAlgoOrders", "/fapi/v1/openOrders", "/fapi/v3/positionRisk")
ALGO = "/fapi/v1/algoOrder"
MAX_WAIT_S = 2.0                # CcxtBroker waits out a hold this short; a longer one refuses the request


def _open(rig) -> Position:
    return position_open(decision=rig.decision(), account=rig.account, broker=rig.broker, now=rig.now,
                         reference_price=rig.price())


def _stamps_after(rig, kind: str) -> tuple[int, list[int]]:
    """Return the signed timestamp of the request that met `kind` and those of every request after it."""
    stamps = [(int(params["timestamp"]), met) for _, _, params, met in rig.log() if "timestamp" in params]
    index = next(i for i, (_, met) in enumerate(stamps) if met == kind)
    return stamps[index][0], [ts for ts, _ in stamps[index + 1:]]


@pytest.mark.parametrize(("seed", "retry_after_s"), [(1, 1), (2, 2), (3, 7)])
def test_429_retry_after_holds_every_request_that_long(rig, seed, retry_after_s):
    _open(rig)
    path = rig.rng.choice(READS)
    rig.emulator.faults.add(path, Fault(status=429, retry_after_s=retry_after_s), method="GET")

    reports = rig.run(12)

    limited_ms, later = _stamps_after(rig, "429")
    assert later and min(later) >= limited_ms + retry_after_s * 1000
    errors = [e for r in reports for e in r.errors]
    if retry_after_s <= MAX_WAIT_S:     # waited in place (a recorded sleep, not the wall clock)
        assert any(0 < s <= retry_after_s for s in rig.sleeps)
    else:                               # refused without sending until the hold ends
        assert any("held by the request budget" in e for e in errors)
    assert rig.emulator.faults.kinds().count("429") == 1 and rig.venue_amount() == rig.position().quantity
    assert_books_match_venue(rig)


@pytest.mark.parametrize("seed", [1])
def test_429_on_the_stop_send_loop_keeps_the_position_protected_or_flat(rig, seed):
    rig.emulator.faults.add(ALGO, Fault(status=429, retry_after_s=3), method="POST")
    with pytest.raises(Exception, match="-1003"):
        _open(rig)

    rig.run(16)

    stop = Order.objects.get(leg="sl")
    assert stop.status in ("accepted", "rejected") and not rig.naked()
    assert_books_match_venue(rig)


@pytest.mark.parametrize(("seed", "ban_s", "stop_fires"), [(1, 30, False), (2, 60, True)])
def test_418_ban_halts_all_rest_until_it_ends_and_alerts(rig, caplog, seed, ban_s, stop_fires):
    position = _open(rig)
    until_ms = rig.clock() + ban_s * 1000
    rig.emulator.ban(until_ms)
    before = len(rig.emulator.requests)

    with caplog.at_level(logging.CRITICAL, logger="execution.brokers.ccxt"):
        if stop_fires:      # the venue keeps working: the stop fires while nobody may ask
            rig.set_price(position.stop_price - Decimal("50"))
        during = rig.run(ban_s - 3, step=3.0)
    banned = [kind for *_, kind in rig.log()[before:]]
    rig.settle(max_ticks=12, step=3.0)

    halted = [r for r in caplog.records if "REST halted until" in r.getMessage()]
    assert banned == ["418"]        # the one request that learnt of the ban; the budget held every other
    assert [str(until_ms) in r.getMessage() for r in halted] == [True]
    assert all(any("banned" in e for e in r.errors) for r in during)
    position.refresh_from_db()
    if stop_fires:
        assert (position.status, position.exit_reason) == ("closed", "stop")
    else:
        assert position.status == "open" and rig.venue_amount() == position.quantity
    assert_books_match_venue(rig)


@pytest.mark.parametrize(("seed", "skew_s"), [(1, 15), (2, 600)])
def test_1021_clock_skew_resyncs_the_offset_and_the_next_request_passes(rig, seed, skew_s):
    position = _open(rig)
    rig.skew_venue(skew_s)          # the venue's clock jumps ahead: ccxt's stamps fall out of recvWindow

    held = rig.broker.positions()
    reports = rig.run(4)

    # The resync asks the venue for its time (ccxt's load_time_difference reads /fapi/v1/time).
    assert rig.emulator.count("/fapi/v1/time") >= 1
    assert [p.quantity for p in held] == [position.quantity] and not any(r.errors for r in reports)
    assert_books_match_venue(rig)
