"""The trailing-stop distance of a new position. Pure: no Django, no I/O, no clock."""
from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal


def trail_distance_for(atr: float | None, tick_size: Decimal, multiple: Decimal | None) -> Decimal | None:
    """Return `multiple` ATR in price units on the tick grid, or None without a multiple or a positive ATR."""
    if not multiple or atr is None or not atr > 0:
        return None
    # On the tick grid (a stored 0.1 reads back as 0.1000000000, so quantize(tick) would keep 10
    # places), with an explicit rounding: ccxt changes the thread's default decimal context once it has run.
    distance = multiple * Decimal(repr(atr))
    return (distance / tick_size).to_integral_value(rounding=ROUND_HALF_EVEN) * tick_size


def trail_distance(decision, multiple: Decimal | None) -> Decimal | None:
    """Return the trailing distance in price units: `multiple` ATR of the decision's snapshot.

    `decision` is a Decision row or anything with `snapshot.atr` (snapshot may be None) and
    `instrument.tick_size`.
    """
    snapshot = decision.snapshot
    return trail_distance_for(snapshot.atr if snapshot is not None else None, decision.instrument.tick_size, multiple)
