"""The invariants every fault scenario ends with, as one assertion."""
from __future__ import annotations


def assert_books_match_venue(rig) -> None:
    """Assert the venue and the books agree after a scenario.

    - no client id (one intent's leg) names two orders on the venue;
    - every venue position has exactly one reduce-only stop of ours of its size, or the venue is flat;
    - the books' orders, fills and open positions equal the venue's, to the exact Decimal;
    - every venue trade is booked exactly once, to its order.
    """
    problems = rig.problems()
    failed = {criterion: texts for criterion, texts in problems.by_criterion.items() if texts}
    assert not failed, f"books differ from the venue (seed {rig.seed}): {failed}"
