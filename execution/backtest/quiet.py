"""Quiet bars: decision bars on which the rule strategy is FLAT, found for the whole run at once. Pure.

The rule (`decisions.engine.rules.decide`) trades only when the structure trend and the momentum
of the analysed window agree (then on the confirming timeframes' structure, the flow and the
edge). Both come from the last `history_bars` bars: the trend from the labels of the last swing
high and low (each against the previous swing of its kind inside the window), the momentum from
closes and the window's Wilder ATR, which is seeded at the window's first bar. `QuietBars`
computes those three exactly as `build_snapshot` does on each window, for every bar in one pass:

- swings are local (a pivot compares `pivot_length` bars each side), so the window's swings are
  the whole history's swings whose neighbours lie inside the window, labelled against the
  previous one inside it;
- the window's ATR is the same recursion over the same true ranges in the same float order (the
  window's first true range is its own high - low), run for all windows side by side; a window
  that starts at the first stored bar is a prefix, so its ATR is the whole history's.

A bar where they disagree is FLAT with the reason "no alignment: structure .., momentum ..", and
a bar where they agree but a confirming timeframe's stored structure disagrees is FLAT with
"LONG not confirmed: 5m structure down"; the decision journal gets those exact reasons without a
snapshot. Every other bar (aligned and confirmed, ATR not positive, too few bars, a confirming view
that would be resampled from 1m) is left to the full pipeline. Only for the rule strategy alone:
another strategy can trade where the rule does not.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.features.momentum import MOMENTUM_STATES, _classify
from analytics.features.structure import TREND_NAMES, _swing_masks
from analytics.features.volatility import atr, true_range

STRUCTURE_VIEW_BARS = 100       # analytics.selectors.structure_bars_load(count=100)


@dataclass(frozen=True, slots=True)
class QuietParams:
    history_bars: int
    atr_period: int
    momentum_period: int
    pivot_length: int
    min_bars: int                           # analytics.snapshot.min_bars: fewer bars, no decision at all
    structure_timeframes: tuple[str, ...]   # the rule's confirming timeframes (decision timeframe excluded)


class _Swings:
    """The whole history's swing highs or lows, to label the last one inside any window."""

    def __init__(self, mask: np.ndarray, prices: np.ndarray, k: int):
        self.index = np.flatnonzero(mask)
        self.prices = prices[self.index]
        self.k = k

    def labels(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Return per window [start, end) the label code of its last swing: 1 above, -1 not, 0 first or none."""
        if not len(self.index):
            return np.zeros(len(starts), np.int8)
        # A window's swings are those with `k` bars on each side inside it.
        last = np.searchsorted(self.index, ends - 1 - self.k, side="right") - 1
        first = np.searchsorted(self.index, starts + self.k, side="left")
        above = self.prices[last.clip(0)] > self.prices[(last - 1).clip(0)]
        return np.where(last - first >= 1, np.where(above, 1, -1), 0).astype(np.int8)


def _labels(high: np.ndarray, low: np.ndarray, k: int, starts: np.ndarray, ends: np.ndarray):
    is_high, is_low = _swing_masks(high, low, k)
    return _Swings(is_high, high, k).labels(starts, ends), _Swings(is_low, low, k).labels(starts, ends)


def window_atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int, window: int,
               ends: np.ndarray) -> np.ndarray:
    """Return `volatility.atr(...)[-1]` of each window of up to `window` bars ending before `ends`, bit for bit."""
    out = np.full(len(ends), np.nan)
    full = atr(high, low, close, period)
    tr = true_range(high, low, close)
    prefix = ends <= window
    out[prefix] = full[ends[prefix] - 1]                    # windows from the first bar: prefixes
    rows = np.flatnonzero(~prefix)
    if not len(rows) or window < period:
        return out
    starts = ends[rows] - window
    first = np.maximum.reduce([high[starts] - low[starts], np.abs(high[starts] - close[starts]),
                               np.abs(low[starts] - close[starts])])
    seeds = np.empty(len(rows))
    for i, (start, head) in enumerate(zip(starts.tolist(), first.tolist())):
        seeds[i] = float(np.concatenate(([head], tr[start + 1:start + period])).mean())
    value = seeds
    for j in range(period, window):                         # the Wilder recursion, all windows at once
        value = (value * (period - 1) + tr[starts + j]) / period
    out[rows] = value
    return out


class QuietBars:
    """The rule's FLAT reason at each close of the decision timeframe, where it needs no snapshot."""

    def __init__(self, times: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
                 params: QuietParams, structure: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                 step_ms: int, structure_steps: dict[str, int]):
        """`structure` maps each confirming timeframe to its stored (open times, high, low)."""
        self.times, self.step_ms, self.params = times, step_ms, params
        n = len(close)
        ends = np.arange(1, n + 1)
        starts = np.maximum(0, ends - params.history_bars)
        k = params.pivot_length
        high_label, low_label = _labels(high, low, k, starts, ends)
        trend = np.where((high_label == 1) & (low_label == 1), 1, np.where((high_label == -1) & (low_label == -1),
                                                                             -1, 0))
        atr_now = window_atr(high, low, close, params.atr_period, params.history_bars, ends)
        period, half = params.momentum_period, max(1, params.momentum_period // 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            lagged = np.full(n, np.nan)
            recent = np.full(n, np.nan)
            lagged[period:] = close[period:] - close[:-period]
            recent[half:] = close[half:] - close[:-half]
            defined = ((ends - starts) > period) & (atr_now > 0)
            momentum = np.where(defined, _classify(lagged / atr_now, recent / atr_now, 1.0), 0)
        self.ready = (ends - starts >= params.min_bars) & (atr_now > 0)
        # Gaps between consecutive bars, counted: a window holds one when the count moves inside it.
        self._gaps = np.concatenate(([0], np.cumsum(np.diff(times) != step_ms)))
        self.trend, self.momentum = trend, momentum
        self.aligned = ((trend == 1) & (momentum == 1)) | ((trend == -1) & (momentum == 2))
        self.views = {tf: self._view_trends(times, step_ms, *structure[tf], structure_steps[tf])
                      for tf in params.structure_timeframes if tf in structure}

    def _view_trends(self, times: np.ndarray, step_ms: int, view_times: np.ndarray, high: np.ndarray,
                     low: np.ndarray, view_step: int) -> np.ndarray:
        """Return per decision bar the confirming view's trend code, 2 where unknown, 3 where not from stored bars."""
        closes = times + step_ms
        ends = np.searchsorted(view_times, closes - view_step, side="right")
        starts = np.maximum(0, ends - STRUCTURE_VIEW_BARS)
        k = self.params.pivot_length
        high_label, low_label = _labels(high, low, k, starts, ends)
        known = (high_label != 0) & (low_label != 0) & ((ends - starts) >= 2 * k + 2)
        trend = np.where((high_label == 1) & (low_label == 1), 1, np.where((high_label == -1) & (low_label == -1),
                                                                             -1, 0))
        code = np.where(known, trend, 2)
        # Fewer than half the bars stored: the live path resamples 1m bars instead; leave those to it.
        return np.where(ends - starts >= STRUCTURE_VIEW_BARS // 2, code, 3)

    def window_complete(self, end: int) -> bool:
        """Return whether the window of the first `end` bars misses no bar (decisions.cycle.window_gap)."""
        start = max(0, end - self.params.history_bars)
        return end > start and self._gaps[end - 1] == self._gaps[start]

    def reason(self, end: int) -> str | None:
        """Return the FLAT reason of the decision on the first `end` bars, or None when it needs the full pipeline."""
        i = end - 1
        if i < 0 or not self.ready[i]:
            return None
        trend, state = TREND_NAMES[int(self.trend[i])], MOMENTUM_STATES[int(self.momentum[i])]
        if not self.aligned[i]:
            return f"no alignment: structure {trend}, momentum {state}"
        against = []
        for tf in self.params.structure_timeframes:
            seen = self.views[tf][i] if tf in self.views else 3
            if seen == 3:
                return None
            if seen != 2 and TREND_NAMES[int(seen)] != trend:
                against.append(f"{tf} structure {TREND_NAMES[int(seen)]}")
        if not against:
            return None
        action = "LONG" if trend == "up" else "SHORT"
        return f"{action} not confirmed: {'; '.join(against)}"[:255]
