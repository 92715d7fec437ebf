"""Timeouts on order sends, seeded: applied ones are resolved by query, unapplied ones resent once with their id.

Each seed draws, for the entry, the stop and both take-profits of one trade, whether its first send
passes, times out before the venue applied it, or times out after. The engine must end with one
venue order per client id, every trade booked once and the position protected.
"""
from __future__ import annotations

import pytest

from execution.emulator.faults import Fault
from execution.services import position_open
from tests.execution.faults.harness import STALL_S, emulator_start, rig_start
from tests.execution.faults.invariants import assert_books_match_venue

ORDER, ALGO = "/fapi/v1/order", "/fapi/v1/algoOrder"
SEEDS = [5, 9, 12, 16]
FAULTS = {"pass": Fault(), "stall-before": Fault(delay_s=STALL_S, status=503, msg="Request stalled and dropped."),
          "stall-after": Fault(after_apply_s=STALL_S)}
LEGS = (("entry", ORDER, "newClientOrderId"), ("sl", ALGO, "clientAlgoId"), ("tp1", ALGO, "clientAlgoId"),
        ("tp2", ALGO, "clientAlgoId"))


def _script(rig) -> dict[str, str]:
    """Queue each leg's first send its seeded fault (the stop is sent before the targets); return them by leg."""
    drawn = {leg: rig.rng.choice(list(FAULTS)) for leg, _, _ in LEGS}
    for leg, path, _ in LEGS:
        rig.emulator.faults.add(path, FAULTS[drawn[leg]], method="POST")
    return drawn


def _trade(rig) -> dict[str, str]:
    drawn = _script(rig)
    position_open(decision=rig.decision(), account=rig.account, broker=rig.broker, now=rig.now,
                  reference_price=rig.price())
    rig.settle(max_ticks=20)
    return drawn


@pytest.mark.parametrize("seed", SEEDS)
def test_timeouts_applied_are_queried_and_unapplied_resent_once_with_the_same_id(rig, seed):
    drawn = _trade(rig)

    for leg, path, key in LEGS:
        order = rig.books(leg)[0]
        sends = [cid for cid in rig.sent(path, key) if cid == order.client_order_id]
        # Stalled before the venue saw it: three misses, then the one resend; otherwise the query finds it.
        assert len(sends) == (2 if drawn[leg] == "stall-before" else 1), (leg, drawn[leg], sends)
        assert (order.resent_at is not None) == (drawn[leg] == "stall-before")
    assert rig.venue_amount() == rig.position().quantity
    assert_books_match_venue(rig)


@pytest.mark.parametrize("seed", [5])
def test_timeouts_same_seed_replays_the_same_faults_and_venue_orders(emulator, clock, db, seed):
    """Run one seed twice on fresh venues: the faults met and the orders the venue ends with are the same."""
    first = rig_start(emulator, clock, seed, name="faults-first")
    _trade(first)
    second_emulator = emulator_start(clock, seed)
    try:
        second = rig_start(second_emulator, clock, seed, name="faults-second")
        _trade(second)

        for path in (ORDER, ALGO):
            assert first.emulator.faults.kinds(path, "POST") == second.emulator.faults.kinds(path, "POST")
        assert _venue_shape(first) == _venue_shape(second)
        assert_books_match_venue(second)
    finally:
        second_emulator.stop()
    assert_books_match_venue(first)


def _venue_shape(rig) -> list[tuple[str, str, str]]:
    """Return the venue's orders without ids: (leg, status, quantity), sorted.

    Sorted, not in placement order: a stop resent after a timeout is placed on a later tick, and
    whether that lands before or after the targets depends on the client's wall-clock timeout.
    """
    with rig.venue.lock:
        normal = [(o.client_order_id.rsplit("-", 1)[-1], o.status, f"{o.quantity:f}")
                  for o in rig.venue.state.orders.values() if not o.algo_id]
        algos = [(a.client_algo_id.rsplit("-", 1)[-1], a.status, f"{a.quantity:f}")
                 for a in rig.venue.state.algo_orders.values()]
    return sorted(normal + algos)
