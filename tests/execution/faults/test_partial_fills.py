"""A limit entry filled in 1 to 10 slices, the chase's cancel racing the last one (seeded slice sizes).

The venue fills the resting entry one seeded slice per touch of its price; the entry's chase then
gives up and cancels, and the last slice either reaches the book first (the cancel is refused with
-2011 and the order is FILLED) or loses to the cancel (CANCELED with what the earlier slices filled).
Either way the books must hold exactly the venue's filled quantity, the position that size and its
stop the same size.
"""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from decisions.selectors import trading_config_get
from execution.models import Order
from execution.services import position_open
from market.models import Candle
from tests.execution.faults.invariants import assert_books_match_venue

QUANTITY = Decimal("0.010")
STEP = Decimal("0.001")
TICK_S = 2.0
TOUCHES_PER_TICK = 3


def _slices(rig, count: int) -> list[Decimal]:
    """Return `count` positive multiples of the step that add up to QUANTITY (a seeded composition)."""
    steps = int(QUANTITY / STEP)
    cuts = sorted(rig.rng.sample(range(1, steps), count - 1))
    return [(b - a) * STEP for a, b in zip([0, *cuts], [*cuts, steps])]


def _chase_gives_up_after(rig, seconds: int) -> None:
    """Configure the chase to give the entry up `seconds` after it was placed, and give it a market price."""
    config = trading_config_get()
    config.entry_chase_interval_seconds, config.entry_chase_max_reprices = seconds, 0
    config.entry_market_fallback = False
    config.save()
    bar = rig.now.replace(second=0, microsecond=0) - timedelta(minutes=2)
    price = rig.price()
    Candle.objects.create(instrument=rig.instrument, timeframe="1m", open_time=bar, open=price, high=price,
                          low=price, close=price, volume=Decimal(1))


def _venue_order(rig, client_order_id: str):
    with rig.venue.lock:
        return next(o for o in rig.venue.state.orders.values() if o.client_order_id == client_order_id)


CASES = [(n, "fill" if n % 2 else "cancel", n) for n in range(1, 11)]   # (slices, who wins the race, seed)


@pytest.mark.parametrize(("slices", "winner", "seed"), CASES)
def test_partial_fills_cancel_racing_the_last_slice_books_the_venues_quantity(rig, slices, winner, seed):
    _chase_gives_up_after(rig, int(TICK_S * -(-slices // TOUCHES_PER_TICK)) + 3)
    side = rig.rng.choice(["LONG", "SHORT"])
    position_open(decision=rig.decision(side, QUANTITY), account=rig.account, broker=rig.broker, now=rig.now,
                  reference_price=rig.price(), order_type="limit")
    entry = Order.objects.get(leg="entry")
    sizes = _slices(rig, slices)
    rig.venue.fill_in_slices(entry.client_order_id, sizes, cancel_races_last=winner == "fill")

    earlier = sizes[:-1]
    for touches in (earlier[i:i + TOUCHES_PER_TICK] for i in range(0, len(earlier), TOUCHES_PER_TICK)):
        for _ in touches:
            rig.set_price(entry.price)  # the market touches the limit: one slice fills
        rig.tick(TICK_S)                # the books learn of them; the position and its stop follow
    while _venue_order(rig, entry.client_order_id).is_open and (rig.now - entry.created_at).total_seconds() < 40:
        rig.tick(TICK_S)                # until the chase gives the rest up and cancels
    rig.settle(max_ticks=8, step=TICK_S)

    entry.refresh_from_db()
    venue_order = _venue_order(rig, entry.client_order_id)
    expected = QUANTITY if winner == "fill" else QUANTITY - sizes[-1]
    assert (venue_order.status, venue_order.executed_qty) == ("FILLED" if winner == "fill" else "CANCELED", expected)
    assert (entry.status, entry.filled_quantity) == (venue_order.status.lower(), expected)
    assert entry.fills.count() == (slices if winner == "fill" else slices - 1)
    cancels = [q.get("origClientOrderId") for q, _ in rig.requests("/fapi/v1/order", "DELETE")]
    assert cancels == [entry.client_order_id]      # one cancel, sent as the last slice was due
    position = rig.position()
    assert (position.quantity if position else 0) == expected == abs(rig.venue_amount())
    assert_books_match_venue(rig)
