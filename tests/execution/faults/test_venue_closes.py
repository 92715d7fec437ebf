"""Positions the venue closes itself, seeded by side: liquidation, ADL and a manual close on the web UI.

The execution loop's reconciliation books the venue's trade, adopts its order as external, closes
the books' position with who closed it, and cancels the stop and targets left on the flat symbol.
"""
from __future__ import annotations

import pytest

from execution.models import Order
from execution.services import position_open
from tests.execution.faults.harness import SYMBOL
from tests.execution.faults.invariants import assert_books_match_venue

CLOSES = {  # how the venue closes it -> (its client id prefix, the books' exit reason)
    "liquidation": ("autoclose-", "liquidation"),
    "adl": ("adl_autoclose", "adl"),
    "manual": ("web_", "manual"),
}


def _close_on_the_venue(rig, how: str) -> None:
    if how == "liquidation":
        rig.venue.liquidate(SYMBOL)
    elif how == "adl":
        rig.venue.auto_deleverage(SYMBOL)
    else:
        rig.venue.manual_close(SYMBOL)


@pytest.mark.parametrize(("how", "seed"), [("liquidation", 1), ("liquidation", 2), ("adl", 3), ("manual", 4)])
def test_venue_close_reconciled_with_its_reason_and_our_exits_cancelled(rig, how, seed):
    position = position_open(decision=rig.decision(rig.rng.choice(["LONG", "SHORT"])), account=rig.account,
                             broker=rig.broker, now=rig.now, reference_price=rig.price())
    rig.tick()
    ours = [o.client_order_id for o in Order.objects.filter(leg__in=["sl", "tp1", "tp2"])]

    _close_on_the_venue(rig, how)
    reports = rig.run(32, step=3.0)        # the loop reconciles every 30 s

    prefix, reason = CLOSES[how]
    position.refresh_from_db()
    closer = Order.objects.get(external=True)
    assert (position.status, position.exit_reason, position.quantity) == ("closed", reason, 0)
    assert closer.client_order_id.startswith(prefix) and closer.fills.count() == 1
    assert any(r.reconciled for r in reports) and rig.venue_amount() == 0
    assert set(Order.objects.filter(client_order_id__in=ours).values_list("status", flat=True)) == {"canceled"}
    assert not [o for o in rig.broker.open_orders(SYMBOL) if o.client_order_id in ours]
    assert_books_match_venue(rig)
