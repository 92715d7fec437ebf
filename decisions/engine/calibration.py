"""Map a decision's confidence to the hit rate of past closed trades. Pure: no Django, no I/O.

Fit, once at least `min_trades` closed trades exist:
1. Sort the (confidence, won) pairs by confidence and cut them into `bins` bins of (nearly) equal
   count; a bin that starts on the confidence the previous one ends on is merged into it, so no
   tied value straddles two bins and the bin centres (mean confidences) strictly rise.
2. Laplace-smooth each bin's rate: (wins + 1) / (trades + 2), so a bin of 3 wins out of 3 says
   0.8, not a certainty.
3. Pool adjacent violators: while a bin's smoothed rate is above the next bin's, merge the two
   (rate (sum wins + 1 each) / (sum trades + 2 each), centre the trade-weighted mean). The result
   is the isotonic (non-decreasing) fit of the smoothed rates, weighted by trades + 2.
4. probability(c) interpolates linearly between the pooled bins' (centre, rate) points and is
   flat beyond the first and last centre; the rates are non-decreasing, hence so is p(c).
With fewer trades the calibrator is the identity: p = the confidence itself, clipped to [0, 1].
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class _Block:
    centre_sum: float       # sum of the confidences in the block
    trades: int
    wins: int
    bins: int               # bins pooled into this block, counting the Laplace prior once per bin
    lowest: float           # confidence range covered; blocks never overlap
    highest: float

    @property
    def centre(self) -> float:
        # Clip: a float mean of equal values can land one ulp outside them and collide with a neighbour.
        return min(max(self.centre_sum / self.trades, self.lowest), self.highest)

    @property
    def rate(self) -> float:
        return (self.wins + self.bins) / (self.trades + 2 * self.bins)

    def merge(self, other: "_Block") -> "_Block":
        return _Block(self.centre_sum + other.centre_sum, self.trades + other.trades, self.wins + other.wins,
                      self.bins + other.bins, min(self.lowest, other.lowest), max(self.highest, other.highest))


def _checked(pairs: Sequence[tuple[float, bool]]) -> list[tuple[float, bool]]:
    out = []
    for index, (confidence, won) in enumerate(pairs):
        value = float(confidence)
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise ValueError(f"pair {index}: confidence must be within [0, 1], got {confidence!r}")
        out.append((value, bool(won)))
    return sorted(out, key=lambda pair: pair[0])


def _bins(pairs: list[tuple[float, bool]], bins: int) -> list[_Block]:
    count = min(bins, len(pairs))
    size, extra = divmod(len(pairs), count)
    blocks: list[_Block] = []
    start = 0
    for k in range(count):
        stop = start + size + (1 if k < extra else 0)
        chunk = pairs[start:stop]
        block = _Block(sum(c for c, _ in chunk), len(chunk), sum(w for _, w in chunk), 1, chunk[0][0], chunk[-1][0])
        # A tied confidence must not straddle two bins: one value, one rate, one Laplace prior.
        if blocks and block.lowest == blocks[-1].highest:
            blocks[-1] = replace(blocks[-1].merge(block), bins=blocks[-1].bins)
        else:
            blocks.append(block)
        start = stop
    return blocks


def _pool_adjacent_violators(blocks: list[_Block]) -> list[_Block]:
    stack: list[_Block] = []
    for block in blocks:
        stack.append(block)
        while len(stack) > 1 and stack[-2].rate > stack[-1].rate:
            last = stack.pop()
            stack[-1] = stack[-1].merge(last)
    return stack


@dataclass(frozen=True, slots=True)
class Calibrator:
    trades: int
    min_trades: int
    knots: tuple[tuple[float, float], ...] = ()     # (confidence, probability), confidence strictly rising

    @classmethod
    def fit(cls, pairs: Sequence[tuple[float, bool]], min_trades: int = 30, bins: int = 5) -> "Calibrator":
        """Return a calibrator fitted on closed trades' (confidence in [0, 1], won) pairs."""
        if min_trades < 1 or bins < 1:
            raise ValueError(f"min_trades and bins must be at least 1, got {min_trades}, {bins}")
        checked = _checked(pairs)
        if len(checked) < min_trades:
            return cls(len(checked), min_trades)
        pooled = _pool_adjacent_violators(_bins(checked, bins))
        return cls(len(checked), min_trades, tuple((b.centre, b.rate) for b in pooled))

    @property
    def calibrated(self) -> bool:
        """Return whether enough closed trades exist for the calibration to apply."""
        return bool(self.knots)

    def probability(self, confidence: float) -> tuple[float, str]:
        """Return (success probability in [0, 1], where it comes from) for a confidence in [0, 1]."""
        c = float(confidence)
        if math.isnan(c):
            raise ValueError("confidence must be a number, got NaN")
        c = min(max(c, 0.0), 1.0)
        if not self.knots:
            return c, f"uncalibrated: {self.trades} closed trades, need {self.min_trades}"
        return _interpolate(self.knots, c), f"calibrated ({self.trades} trades)"


def _interpolate(knots: tuple[tuple[float, float], ...], c: float) -> float:
    if c <= knots[0][0]:
        return knots[0][1]
    for (x0, y0), (x1, y1) in zip(knots, knots[1:]):
        if c <= x1:
            if x1 <= x0:
                return y1
            # Clip: rounding in the blend must not step outside [y0, y1] and break monotonicity.
            return min(max(y0 + (y1 - y0) * (c - x0) / (x1 - x0), y0), y1)
    return knots[-1][1]
