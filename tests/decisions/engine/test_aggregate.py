"""Aggregation of strategy votes: first, majority vote and weighted score."""
import pytest
from hypothesis import given, strategies as st

from decisions.engine.aggregate import aggregate
from decisions.engine.strategies import Vote


def _votes(*pairs) -> list[Vote]:
    """Return votes named s0, s1, ... from (side, strength) pairs."""
    return [Vote(f"s{i}", side, strength, f"reason {i}") for i, (side, strength) in enumerate(pairs)]


NONE = (0, 0.0)


@pytest.mark.parametrize(
    "pairs, side, strength",
    [
        # the first vote with a side wins, whatever follows
        ((NONE, (1, 0.4), (-1, 0.9)), 1, 0.4),
        (((-1, 0.2), (1, 1.0)), -1, 0.2),
        # nobody votes: none
        ((NONE, NONE), 0, 0.0),
    ],
)
def test_aggregate_first_takes_first_non_zero_vote(pairs, side, strength):
    result = aggregate(_votes(*pairs), "first")

    assert (result.side, result.strength, result.method) == (side, strength, "first")


@pytest.mark.parametrize(
    "pairs, min_agreement, side, strength",
    [
        # a clear majority of voters; the abstainer does not count; strength is the majority's mean
        (((1, 0.4), (1, 0.8), (-1, 1.0), NONE), 0.5, 1, pytest.approx(0.6)),
        (((-1, 0.3), NONE, NONE), 0.5, -1, 0.3),
        # ties give none, even when both sides pass a low bar
        (((1, 1.0), (-1, 1.0)), 0.5, 0, 0.0),
        (((1, 1.0), (1, 1.0), (-1, 1.0), (-1, 1.0)), 0.4, 0, 0.0),
        # two thirds is not more than 0.7, and exactly one half is not more than one half
        (((1, 1.0), (1, 1.0), (-1, 1.0)), 0.7, 0, 0.0),
        (((1, 1.0), (1, 1.0), (-1, 1.0), (-1, 0.5), (1, 0.5), (-1, 0.5)), 0.5, 0, 0.0),
        # all abstain
        ((NONE, NONE, NONE), 0.5, 0, 0.0),
    ],
)
def test_aggregate_vote_needs_more_than_min_agreement(pairs, min_agreement, side, strength):
    result = aggregate(_votes(*pairs), "vote", min_agreement=min_agreement)

    assert (result.side, result.strength) == (side, strength)


@pytest.mark.parametrize(
    "pairs, weights, side, strength",
    [
        # equal weights: (1 - 0.5 + 0) / 3 = 0.17 is below 0.3, still reported as strength
        (((1, 1.0), (-1, 0.5), NONE), {}, 0, pytest.approx(1 / 6)),
        # a heavier first strategy: (3 * 1 - 0.5) / 5 = 0.5
        (((1, 1.0), (-1, 0.5), NONE), {"s0": 3.0}, 1, pytest.approx(0.5)),
        # exactly at the threshold votes, just under does not: 0.6 / 2 = 0.3, 0.58 / 2 = 0.29
        (((1, 0.6), NONE), {}, 1, 0.3),
        (((1, 0.58), NONE), {}, 0, pytest.approx(0.29)),
        (((-1, 0.6), NONE), {}, -1, 0.3),
        # a zero weight drops a strategy from the score and the denominator
        (((1, 0.4), (-1, 1.0)), {"s1": 0.0}, 1, pytest.approx(0.4)),
        # all abstain: score 0
        ((NONE, NONE), {}, 0, 0.0),
    ],
)
def test_aggregate_weighted_scores_against_threshold(pairs, weights, side, strength):
    result = aggregate(_votes(*pairs), "weighted", weights)

    assert (result.side, result.strength) == (side, strength)


@pytest.mark.parametrize("method", ["first", "vote", "weighted"])
def test_aggregate_reason_lists_every_strategy(method):
    votes = [Vote("rules", 0, 0.0, "no alignment"), Vote("ema_cross", 1, 0.5, "EMA 21 crossed above EMA 55"),
             Vote("rsi", -1, 0.25, "RSI 14 fell back below 70")]

    result = aggregate(votes, method, {"rsi": 2.0})

    assert result.reason.startswith(f"{method}: ")
    for part in ("rules none (no alignment)", "ema_cross long 0.50 (EMA 21 crossed above EMA 55)",
                 "rsi short 0.25 (RSI 14 fell back below 70)"):
        assert part in result.reason
    assert result.parts == tuple(votes)


def test_aggregate_weighted_reason_gives_each_contribution():
    votes = [Vote("ema_cross", 1, 0.5, "cross"), Vote("rsi", -1, 0.25, "turn")]

    result = aggregate(votes, "weighted", {"rsi": 2.0})

    assert result.reason == ("weighted: none: score +0.00, |score| below 0.30; "
                             "ema_cross long 0.50 (cross) x weight 1 = +0.50; rsi short 0.25 (turn) x weight 2 = -0.50")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(method="median"), "unknown aggregation method 'median'; choose from first, vote, weighted"),
        (dict(votes=[]), "no votes to aggregate"),
        (dict(weights={"s0": -1.0}), "weight of 's0' must be a finite number >= 0, got -1.0"),
        (dict(weights={"s1": float("nan")}), "weight of 's1' must be a finite number >= 0"),
        (dict(weights={"s0": 0.0, "s1": 0}), "weights are all zero"),
        (dict(method="first", weights={"s0": 0.0, "s1": 0.0}), "weights are all zero"),
        (dict(min_agreement=1.0), r"min_agreement must be in \[0, 1\), got 1.0"),
        (dict(threshold=1.5), r"threshold must be in \[0, 1\], got 1.5"),
    ],
)
def test_aggregate_invalid_settings_raise(kwargs, message):
    arguments = dict(votes=_votes((1, 0.5), NONE), method="weighted") | kwargs

    with pytest.raises(ValueError, match=message):
        aggregate(**arguments)


VOTE = st.tuples(st.sampled_from([-1, 0, 1]), st.floats(0.0, 1.0)).map(lambda p: p if p[0] else NONE)


@given(st.lists(VOTE, min_size=1, max_size=8), st.lists(st.floats(0.0, 10.0), min_size=8, max_size=8),
       st.floats(0.0, 1.0))
def test_aggregate_weighted_strength_bounded_and_side_follows_score(pairs, weight_list, threshold):
    votes = _votes(*pairs)
    weights = {f"s{i}": w for i, w in enumerate(weight_list)}
    if not any(weights[v.strategy] for v in votes):
        weights["s0"] = 1.0

    result = aggregate(votes, "weighted", weights, threshold=threshold)

    assert 0.0 <= result.strength <= 1.0
    assert result.side in (-1, 0, 1)
    assert result.side == 0 or result.strength >= threshold


@given(st.lists(VOTE, min_size=1, max_size=9), st.floats(0.0, 0.99))
def test_aggregate_vote_side_has_more_than_min_agreement(pairs, min_agreement):
    result = aggregate(_votes(*pairs), "vote", min_agreement=min_agreement)

    voters = [side for side, _ in pairs if side]
    if result.side:
        assert voters.count(result.side) / len(voters) > min_agreement
        assert voters.count(result.side) > voters.count(-result.side)
    else:
        assert result.strength == 0.0
