"""Ghost orders, seeded by side: the venue answers -2013 for an order its matching engine still works.

The books' resting entry vanishes from every query; reconciliation counts a miss per query at
least 2 s apart, declares the order lost at the third, and keeps asking: when the venue shows the
order again, filled, its fills are booked once and the position opened and protected.
"""
from __future__ import annotations

import pytest

from execution.models import Order
from execution.services import position_open
from tests.execution.faults.invariants import assert_books_match_venue


def _ghost_entry(rig) -> Order:
    """Rest a limit entry, then make the venue deny it; return the entry."""
    position_open(decision=rig.decision(rig.rng.choice(["LONG", "SHORT"])), account=rig.account,
                  broker=rig.broker, now=rig.now, reference_price=rig.price(), order_type="limit")
    entry = Order.objects.get(leg="entry")
    rig.venue.ghost(entry.client_order_id)
    return entry


def _miss_three_times(rig, entry: Order) -> list[tuple[str, int]]:
    seen = []
    for _ in range(3):
        rig.advance(2.0)
        rig.reconcile()
        entry.refresh_from_db()
        seen.append((entry.status, entry.misses))
    return seen


@pytest.mark.parametrize("seed", [1, 2])
def test_ghost_order_three_misses_make_it_lost_and_a_later_fill_is_booked(rig, seed):
    entry = _ghost_entry(rig)

    seen = _miss_three_times(rig, entry)
    rig.venue.unghost(entry.client_order_id)
    rig.set_price(entry.price)          # the market reaches the order the venue never stopped working
    rig.settle(max_ticks=10)

    entry.refresh_from_db()
    assert seen == [("accepted", 1), ("accepted", 2), ("lost", 3)]
    assert (entry.status, entry.filled_quantity, entry.fills.count()) == ("filled", entry.quantity, 1)
    assert rig.sent("/fapi/v1/order") == [entry.client_order_id]      # acknowledged once: never resent
    assert rig.position().quantity == abs(rig.venue_amount()) == entry.quantity
    assert_books_match_venue(rig)


@pytest.mark.parametrize("seed", [1])
def test_ghost_order_filled_while_denied_books_its_trade_once(rig, seed):
    entry = _ghost_entry(rig)
    _miss_three_times(rig, entry)

    rig.set_price(entry.price)          # fills while the venue still denies the order
    rig.advance(2.0)
    rig.reconcile()
    rig.venue.unghost(entry.client_order_id)
    rig.settle(max_ticks=10)

    assert_books_match_venue(rig)
