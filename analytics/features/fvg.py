"""Fair-value gaps (three-candle imbalances): formation, fill state and the nearest open gaps.

Pure: no Django, no I/O, no clock. Definitions, per bar i:

- bullish gap when low[i] > high[i-2]: zone [high[i-2], low[i]]; bearish when high[i] < low[i-2]:
  zone [high[i], low[i-2]]. Size is the zone height in ATRs (Wilder, `atr_period`, at bar i).
- From bar i + 1 on, price trading into the zone makes it "partial" (a low below a bullish gap's
  top, a high above a bearish gap's bottom); reaching the far edge (low <= bottom, high >= top)
  fills it and it is dropped. The reported zone is the part not yet traded through.
- Cap: at most `max_open` (default 50) open gaps per side; a new gap beyond that drops the oldest
  of its side for good. Both paths apply the same cap.
- Nearest: a bullish gap always lies at or below the close and a bearish one at or above, and the
  newest open gap of a side is always the one closest to price (its unfilled edge is the latest
  low, which every older gap's edge is at or below). So "below" is the newest open bullish gap and
  "above" the newest open bearish gap; the cap never removes those.

Within a bar, fills are applied first, then the bar's own new gap, then the cap. The bearish side
runs through the same code as the bullish side on negated prices (exact in floating point).
Codes: gap 1 bullish / -1 bearish / 0; state FRESH 1, PARTIAL 2, 0 for no gap.
"""
from collections import deque
from dataclasses import dataclass

import numpy as np

from analytics.features.volatility import AtrState, atr

MAX_OPEN_GAPS = 50
GAP_BULLISH, GAP_NONE, GAP_BEARISH = 1, 0, -1
STATE_NONE, STATE_FRESH, STATE_PARTIAL = 0, 1, 2


@dataclass(frozen=True, slots=True)
class FvgSeries:
    """Per-bar gap view; value i uses bars 0..i only. Bounds NaN and age -1 where there is no gap."""

    gap: np.ndarray             # int8 gap formed at this bar
    gap_bottom: np.ndarray
    gap_top: np.ndarray
    gap_size_atr: np.ndarray
    below_bottom: np.ndarray    # nearest open bullish gap: unfilled zone, size at formation, age, state
    below_top: np.ndarray
    below_size_atr: np.ndarray
    below_age: np.ndarray       # int64 bars since it formed
    below_state: np.ndarray     # int8
    above_bottom: np.ndarray    # nearest open bearish gap
    above_top: np.ndarray
    above_size_atr: np.ndarray
    above_age: np.ndarray
    above_state: np.ndarray
    open_below: np.ndarray      # int64 open bullish gaps tracked
    open_above: np.ndarray      # int64 open bearish gaps tracked


@dataclass(frozen=True, slots=True)
class FvgBar:
    """The same fields for one bar, as `FvgState.update` returns them."""

    gap: int
    gap_bottom: float
    gap_top: float
    gap_size_atr: float
    below_bottom: float
    below_top: float
    below_size_atr: float
    below_age: int
    below_state: int
    above_bottom: float
    above_top: float
    above_size_atr: float
    above_age: int
    above_state: int
    open_below: int
    open_above: int


def _table(values: np.ndarray, ufunc) -> np.ndarray:
    """Return a sparse table: row k, column i reduces values[i : i + 2**k] (padded past the end)."""
    values = np.asarray(values, np.float64)
    pad = np.inf if ufunc is np.minimum else -np.inf
    rows, span = [values], 1
    while 2 * span <= len(values):
        prev = rows[-1]
        rows.append(np.concatenate((ufunc(prev[:-span], prev[span:]), np.full(span, pad))))
        span *= 2
    return np.vstack(rows)


def _first_index(levels: np.ndarray, start: np.ndarray, skip, x: np.ndarray) -> np.ndarray:
    """Return per query the first index >= start whose value is not skipped (len if none).

    `skip(block_value, x)` must be true for a block exactly when it is true for every element in it.
    """
    m = levels.shape[1]
    pos = np.asarray(start, np.int64).copy()
    for k in range(levels.shape[0] - 1, -1, -1):
        span = 1 << k
        inside = pos + span <= m
        if not inside.any():
            continue
        probe = levels[k, np.where(inside, pos, 0)]
        pos += span * (inside & skip(probe, x))
    return pos


def _range_min(levels: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Return min(values[first..last]) per query, +inf where first > last."""
    length = last - first + 1
    ok = length > 0
    k = np.zeros(len(length), np.int64)
    k[ok] = np.floor(np.log2(length[ok])).astype(np.int64)
    k[ok & (1 << (k + 1) <= length)] += 1   # guard log2 rounding either way
    k[ok & (1 << k > length)] -= 1
    a = np.where(ok, first, 0)
    b = np.where(ok, last - (1 << k) + 1, 0)
    return np.where(ok, np.minimum(levels[k, a], levels[k, b]), np.inf)


def _cap_ends(formed: list, fill: np.ndarray, cap: int) -> np.ndarray:
    """Return each gap's end bar: its fill bar, or the bar a newer gap pushed it out of the cap."""
    end = fill.astype(np.int64)
    if len(formed) <= cap:
        return end
    # Evicting always takes the oldest open gap, so every evicted gap is older than every open one:
    # the open gaps are those above a rising watermark that are not yet filled.
    by_fill = np.argsort(fill, kind="stable")
    order, fill_sorted, fills = by_fill.tolist(), fill[by_fill].tolist(), fill.tolist()
    watermark, count, p, total = -1, 0, 0, len(formed)
    for t in formed:
        while p < total and fill_sorted[p] <= t:
            if order[p] > watermark:
                count -= 1
            p += 1
        count += 1
        if count > cap:
            watermark += 1
            while fills[watermark] <= t:
                watermark += 1
            end[watermark] = t
            count -= 1
    return end


def _in_atr(height, atr_value):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(atr_value > 0, height / atr_value, np.nan)


def _side(h: np.ndarray, low: np.ndarray, atr_values: np.ndarray, cap: int) -> dict:
    """Return the bullish-side arrays (bearish: call with -low, -high)."""
    n = len(low)
    formed = np.flatnonzero(low[2:] > h[:-2]) + 2
    bottom, top = h[formed - 2], low[formed]
    lows = _table(low, np.minimum)
    fill = _first_index(lows, formed + 1, lambda block, x: block > x, bottom)
    partial = _first_index(lows, formed + 1, lambda block, x: block >= x, top)
    end = _cap_ends(formed.tolist(), fill, cap)
    bars = np.arange(n)
    made = np.searchsorted(formed, bars, side="right")
    # Newest gap g < made with end[g] > t: search the reversed end times for the first one > t.
    ends_rev = end[::-1]
    j = _first_index(_table(ends_rev, np.maximum), len(formed) - made, lambda block, x: block <= x, bars)
    has = j < len(formed)
    g = np.where(has, len(formed) - 1 - j, 0)
    out = {"open": made - np.searchsorted(np.sort(end), bars, side="right")}
    new_bottom, new_top, size = (np.full(n, np.nan) for _ in range(3))
    new_bottom[formed], new_top[formed] = bottom, top
    size[formed] = _in_atr(top - bottom, atr_values[formed])
    new = np.zeros(n, bool)
    new[formed] = True
    out |= {"new": new, "new_bottom": new_bottom, "new_top": new_top, "new_size": size}
    if not len(formed):
        g_formed = np.zeros(n, np.int64)
        out |= {"near_bottom": new_bottom.copy(), "near_top": new_bottom.copy(), "near_size": size.copy()}
    else:
        g_formed = formed[g]
        seen = _range_min(lows, g_formed + 1, bars)
        out["near_bottom"] = np.where(has, bottom[g], np.nan)
        out["near_top"] = np.where(has, np.minimum(top[g], seen), np.nan)
        out["near_size"] = np.where(has, size[g_formed], np.nan)
    out["near_age"] = np.where(has, bars - g_formed, -1).astype(np.int64)
    state = np.where(bars >= (partial[g] if len(formed) else 0), STATE_PARTIAL, STATE_FRESH)
    out["near_state"] = np.where(has, state, STATE_NONE).astype(np.int8)
    return out


def _check_cap(max_open: int) -> None:
    if max_open < 1:
        raise ValueError(f"max_open must be at least 1, got {max_open}")


def _inputs(high, low, close, atr_period: int, max_open: int, atr_values: np.ndarray | None) -> tuple:
    """Return (high, low, ATR) as float64 arrays, the ATR computed unless the caller passed it."""
    _check_cap(max_open)
    high, low, close = (np.asarray(a, np.float64) for a in (high, low, close))
    return high, low, (atr(high, low, close, atr_period) if atr_values is None else atr_values)


def fvg_series(high: np.ndarray, low: np.ndarray, close: np.ndarray, atr_period: int = 14,
               max_open: int = MAX_OPEN_GAPS, atr_values: np.ndarray | None = None) -> FvgSeries:
    """Return the gap view at every bar from float64 arrays (finite prices, high >= low).

    `atr_values`, when given, must be `atr(high, low, close, atr_period)`: a caller that has it saves the work.
    """
    high, low, atr_values = _inputs(high, low, close, atr_period, max_open, atr_values)
    bull = _side(high, low, atr_values, max_open)
    bear = _side(-low, -high, atr_values, max_open)
    gap = bull["new"].astype(np.int8) - bear["new"].astype(np.int8)
    return FvgSeries(
        gap=gap,
        gap_bottom=np.where(bull["new"], bull["new_bottom"], -bear["new_top"]),
        gap_top=np.where(bull["new"], bull["new_top"], -bear["new_bottom"]),
        gap_size_atr=np.where(bull["new"], bull["new_size"], bear["new_size"]),
        below_bottom=bull["near_bottom"], below_top=bull["near_top"], below_size_atr=bull["near_size"],
        below_age=bull["near_age"], below_state=bull["near_state"],
        above_bottom=-bear["near_top"], above_top=-bear["near_bottom"], above_size_atr=bear["near_size"],
        above_age=bear["near_age"], above_state=bear["near_state"],
        open_below=bull["open"].astype(np.int64), open_above=bear["open"].astype(np.int64),
    )


def _side_last(h: np.ndarray, low: np.ndarray, atr_values: np.ndarray, cap: int) -> tuple:
    """Return `_side`'s values at the last bar only: (formed now, new bottom, new top, new size,
    nearest bottom, top, size, age, state, open count), in bullish terms like `_side`."""
    t = len(low) - 1
    formed = np.flatnonzero(low[2:] > h[:-2]) + 2
    bottom, top = h[formed - 2], low[formed]
    if len(formed) > cap:
        # Evictions depend on the order of all fills: `_side`'s own machinery decides.
        fill = _first_index(_table(low, np.minimum), formed + 1, lambda block, x: block > x, bottom)
        is_open = _cap_ends(formed.tolist(), fill, cap) > t
    else:
        # Filled by the last bar when some later low is at or below the bottom (NaN counts, as in `_side`).
        later_min = np.append(np.minimum.accumulate(low[::-1])[::-1][1:], np.inf)
        is_open = later_min[formed] > bottom
    new = bool(len(formed)) and int(formed[-1]) == t
    nan = float("nan")
    new_values = (float(bottom[-1]), float(top[-1]), _size(top[-1] - bottom[-1], atr_values[t])) if new \
        else (nan, nan, nan)
    count = int(np.count_nonzero(is_open))
    if not count:
        return (new, *new_values, nan, nan, nan, -1, STATE_NONE, 0)
    g = int(np.flatnonzero(is_open)[-1])
    f = int(formed[g])
    seen = low[f + 1:].min() if f < t else np.inf
    # Partly traded into once a later low went below the top; the unfilled part ends at that low.
    state = STATE_FRESH if seen >= top[g] else STATE_PARTIAL
    return (new, *new_values, float(bottom[g]), float(np.minimum(top[g], seen)),
            _size(top[g] - bottom[g], atr_values[f]), t - f, state, count)


def _size(height: float, atr_value: float) -> float:
    return float(_in_atr(height, atr_value))


def fvg_last(high: np.ndarray, low: np.ndarray, close: np.ndarray, atr_period: int = 14,
             max_open: int = MAX_OPEN_GAPS, atr_values: np.ndarray | None = None) -> FvgBar:
    """Return `fvg_series(...)` at the last bar only (at least one bar), without the per-bar arrays.

    A snapshot reads only the last bar, and the per-bar view of the nearest gap is most of
    `fvg_series`' work. `atr_values` as in `fvg_series`.
    """
    high, low, atr_values = _inputs(high, low, close, atr_period, max_open, atr_values)
    bull = _side_last(high, low, atr_values, max_open)
    bear = _side_last(-low, -high, atr_values, max_open)
    nan = float("nan")
    if bull[0]:
        gap = (GAP_BULLISH, bull[1], bull[2], bull[3])
    elif bear[0]:
        gap = (GAP_BEARISH, -bear[2], -bear[1], bear[3])
    else:
        gap = (GAP_NONE, -nan, -nan, nan)
    return FvgBar(*gap, *bull[4:9], -bear[5], -bear[4], *bear[6:9], bull[9], bear[9])


class _OpenGaps:
    """One side's open gaps in bullish terms: [formed, bottom, top, unfilled_top, size_atr], oldest first."""

    def __init__(self, cap: int) -> None:
        self.cap, self.gaps = cap, deque()

    def update(self, t: int, low: float, high_two_back: float | None, atr_value: float) -> bool:
        # The newest gap's unfilled edge is the highest of all, so a low at or above it touches none.
        if self.gaps and low < self.gaps[-1][3]:
            kept = deque()
            for gap in self.gaps:
                if low > gap[1]:
                    gap[3] = min(gap[3], low)
                    kept.append(gap)
            self.gaps = kept
        formed = high_two_back is not None and low > high_two_back
        if formed:
            height = low - high_two_back
            self.gaps.append([t, high_two_back, low, low, height / atr_value if atr_value > 0 else float("nan")])
            if len(self.gaps) > self.cap:
                self.gaps.popleft()
        return formed

    def nearest(self, t: int) -> tuple[float, float, float, int, int]:
        if not self.gaps:
            return float("nan"), float("nan"), float("nan"), -1, STATE_NONE
        formed, bottom, top, unfilled, size = self.gaps[-1]
        return bottom, unfilled, size, t - formed, STATE_FRESH if unfilled == top else STATE_PARTIAL


class FvgState:
    """Incremental gaps: feed closed bars in order, get that bar's `FvgBar`.

    Memory: the two previous bars, the ATR state and at most `max_open` open gaps per side.
    """

    def __init__(self, atr_period: int = 14, max_open: int = MAX_OPEN_GAPS) -> None:
        _check_cap(max_open)
        self._atr = AtrState(atr_period)
        self._bull, self._bear = _OpenGaps(max_open), _OpenGaps(max_open)
        self._back: deque = deque(maxlen=2)
        self._t = -1

    def update(self, high: float, low: float, close: float) -> FvgBar:
        """Add the bar that just closed and return the gap view at it."""
        high, low, close = float(high), float(low), float(close)
        self._t += 1
        atr_value = self._atr.update(high, low, close)
        two_back = self._back[0] if len(self._back) == 2 else None
        bull = self._bull.update(self._t, low, two_back[0] if two_back else None, atr_value)
        bear = self._bear.update(self._t, -high, -two_back[1] if two_back else None, atr_value)
        self._back.append((high, low))
        nan = float("nan")
        if bull:
            gap = (GAP_BULLISH, two_back[0], low, self._bull.gaps[-1][4])
        elif bear:
            gap = (GAP_BEARISH, high, two_back[1], self._bear.gaps[-1][4])
        else:
            gap = (GAP_NONE, nan, nan, nan)
        below = self._bull.nearest(self._t)
        b_bottom, b_unfilled, b_size, b_age, b_state = self._bear.nearest(self._t)
        return FvgBar(*gap, *below, -b_unfilled, -b_bottom, b_size, b_age, b_state,
                      len(self._bull.gaps), len(self._bear.gaps))
