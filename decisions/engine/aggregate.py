"""Combine strategy votes into one decision: first, majority vote or weighted score.

Pure: no Django, no I/O, no clock. The reason names every strategy's contribution, so an operator
can see which voter carried or blocked a decision.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from decisions.engine.strategies import SIDE_NAMES, Vote

METHODS = ("first", "vote", "weighted")
DEFAULT_WEIGHT = 1.0    # a strategy missing from the weights counts as much as an unweighted one


@dataclass(frozen=True, slots=True)
class Aggregate:
    side: int                   # +1 long, -1 short, 0 none
    strength: float             # 0..1
    method: str                 # one of METHODS
    reason: str                 # verdict, then each strategy's contribution
    parts: tuple[Vote, ...]     # the votes, in the order given


def _weights(votes: Sequence[Vote], weights: Mapping[str, float] | None) -> list[float]:
    weights = weights or {}
    for name, value in weights.items():
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"weight of {name!r} must be a finite number >= 0, got {value}")
    out = [float(weights.get(v.strategy, DEFAULT_WEIGHT)) for v in votes]
    if not any(out):
        raise ValueError("weights are all zero: give at least one strategy a positive weight")
    return out


def _part(vote: Vote) -> str:
    if vote.side == 0:
        return f"{vote.strategy} none ({vote.reason})"
    return f"{vote.strategy} {SIDE_NAMES[vote.side]} {vote.strength:.2f} ({vote.reason})"


def _first(votes: Sequence[Vote]) -> tuple[int, float, str]:
    chosen = next((v for v in votes if v.side != 0), None)
    if chosen is None:
        return 0, 0.0, "no strategy voted"
    return chosen.side, chosen.strength, f"{SIDE_NAMES[chosen.side]} from {chosen.strategy}, the first to vote"


def _majority(votes: Sequence[Vote], min_agreement: float) -> tuple[int, float, str]:
    voters = [v for v in votes if v.side != 0]
    if not voters:
        return 0, 0.0, "no strategy voted"
    longs, shorts = sum(v.side > 0 for v in voters), sum(v.side < 0 for v in voters)
    count = f"{longs} long, {shorts} short of {len(voters)} voters"
    side = 1 if longs > shorts else -1 if shorts > longs else 0
    agreeing = [v for v in voters if v.side == side]
    if side == 0 or len(agreeing) / len(voters) <= min_agreement:
        return 0, 0.0, f"no majority: {count} (a side needs more than {min_agreement:.0%})"
    # The agreeing voters' mean strength: a bare majority of weak votes stays weak.
    strength = sum(v.strength for v in agreeing) / len(agreeing)
    return side, strength, f"{SIDE_NAMES[side]}: {count}, more than {min_agreement:.0%}"


def _weighted(votes: Sequence[Vote], weights: list[float], threshold: float) -> tuple[int, float, list[str]]:
    contributions = [w * v.side * v.strength for v, w in zip(votes, weights)]
    score = sum(contributions) / sum(weights)
    side = (1 if score > 0 else -1) if abs(score) >= threshold and score != 0 else 0
    verdict = (f"{SIDE_NAMES[side]}: score {score:+.2f}, |score| >= {threshold:.2f}" if side
               else f"none: score {score:+.2f}, |score| below {threshold:.2f}")
    parts = [f"{_part(v)} x weight {w:g} = {c:+.2f}" for v, w, c in zip(votes, weights, contributions)]
    # Strength is |score| even without a side: it says how close the vote came to the threshold.
    return side, min(1.0, abs(score)), [verdict, *parts]


def aggregate(votes: Sequence[Vote], method: str, weights: Mapping[str, float] | None = None,
              min_agreement: float = 0.5, threshold: float = 0.3) -> Aggregate:
    """Return the combined side and strength of `votes` by `method`; raise ValueError on bad settings.

    "first": the first vote with a side, in the order given. "vote": the side of more than
    `min_agreement` of the strategies that voted (ties give none), at their mean strength.
    "weighted": score = sum(weight * side * strength) / sum of all weights; a side when
    |score| >= `threshold`. Weights default to 1 per strategy, must be >= 0 and not all zero;
    they are checked for every method so a bad setting fails whichever method is chosen.
    """
    if method not in METHODS:
        raise ValueError(f"unknown aggregation method {method!r}; choose from {', '.join(METHODS)}")
    if not votes:
        raise ValueError("no votes to aggregate: configure at least one strategy")
    if not 0.0 <= min_agreement < 1.0:
        raise ValueError(f"min_agreement must be in [0, 1), got {min_agreement}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    applied = _weights(votes, weights)
    if method == "weighted":
        side, strength, lines = _weighted(votes, applied, threshold)
    else:
        side, strength, verdict = _first(votes) if method == "first" else _majority(votes, min_agreement)
        lines = [verdict, *map(_part, votes)]
    return Aggregate(side, strength, method, f"{method}: " + "; ".join(lines), tuple(votes))
