"""Market structure: confirmed swing highs/lows, HH/HL/LH/LL labels, trend and break of structure.

Pure: no Django, no I/O, no clock. A swing at bar j is confirmed only at bar j + pivot_length,
once the bars to its right exist, so nothing here looks ahead.

Two paths give the same per-bar values: `structure_series` over whole arrays (backtests) and
`StructureState.update` one bar at a time (live). Codes in the arrays:

- trend: TREND_UP 1, TREND_DOWN -1, TREND_RANGE 0 (up needs the last high HH and the last low HL)
- high_label: 1 HH, -1 LH, 0 none yet; low_label: 1 HL, -1 LL, 0 none yet
- bos: BOS_BULLISH 1 (close crosses above the last swing high), BOS_BEARISH -1, 0 none
"""
from collections import deque
from dataclasses import dataclass

import numpy as np

TREND_UP, TREND_RANGE, TREND_DOWN = 1, 0, -1
BOS_BULLISH, BOS_NONE, BOS_BEARISH = 1, 0, -1
TREND_NAMES = {TREND_UP: "up", TREND_RANGE: "range", TREND_DOWN: "down"}
BOS_NAMES = {BOS_BULLISH: "bullish", BOS_NONE: "", BOS_BEARISH: "bearish"}
HIGH_LABELS = {1: "HH", -1: "LH", 0: ""}
LOW_LABELS = {1: "HL", -1: "LL", 0: ""}


@dataclass(frozen=True, slots=True)
class Swing:
    index: int          # bar of the extreme
    confirmed_at: int   # first bar at which it is known (index + pivot_length)
    price: float
    kind: str           # "high" or "low"
    label: str          # HH / LH for highs, HL / LL for lows; "" for the first of its kind


@dataclass(frozen=True, slots=True)
class Structure:
    swings: tuple[Swing, ...]
    trend: str                      # "up", "down" or "range"
    last_high: Swing | None
    last_low: Swing | None
    break_of_structure: str         # "bullish", "bearish" or "" at the last bar


@dataclass(frozen=True, slots=True)
class StructureSeries:
    """Per-bar structure; value i uses bars 0..i only."""

    trend: np.ndarray           # int8 trend code
    last_high: np.ndarray       # float64 price of the last confirmed swing high, NaN before the first
    last_low: np.ndarray        # float64
    high_label: np.ndarray      # int8 label code of the last swing high
    low_label: np.ndarray       # int8 label code of the last swing low
    bos: np.ndarray             # int8 break of structure at this bar
    last_bos: np.ndarray        # int8 code of the latest break so far
    last_bos_index: np.ndarray  # int64 bar of the latest break, -1 before the first
    last_bos_level: np.ndarray  # float64 swing level it broke, NaN before the first


@dataclass(frozen=True, slots=True)
class StructureBar:
    """Structure at one bar, as `StructureState.update` returns it (same codes as the series)."""

    trend: int
    last_high: float
    last_low: float
    high_label: int
    low_label: int
    bos: int
    last_bos: int
    last_bos_index: int
    last_bos_level: float


def _swing_masks(high: np.ndarray, low: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Return boolean masks of swing highs / lows at their own bar (only bars k..n-k-1 can be one)."""
    n = len(high)
    is_high, is_low = np.zeros(n, bool), np.zeros(n, bool)
    if k < 1 or n < 2 * k + 1:
        return is_high, is_low
    count = n - 2 * k
    left_max, right_max = (_window_extreme(high, start, k, count, np.maximum) for start in (0, k + 1))
    left_min, right_min = (_window_extreme(low, start, k, count, np.minimum) for start in (0, k + 1))
    mid_h, mid_l = high[k:n - k], low[k:n - k]
    # Strict on the left, non-strict on the right: a flat top is counted once, at its first bar.
    is_high[k:n - k] = (mid_h > left_max) & (mid_h >= right_max)
    is_low[k:n - k] = (mid_l < left_min) & (mid_l <= right_min)
    return is_high, is_low


def _window_extreme(values: np.ndarray, start: int, k: int, count: int, ufunc) -> np.ndarray:
    """Return ufunc over values[r : r + k] for r = start .. start + count - 1.

    k shifted slices instead of a sliding window: the same maxima (max and min are exact), without
    the window view's set-up, which dominates on the few dozen bars of a higher timeframe.
    """
    out = values[start:start + count]
    for j in range(1, k):
        out = ufunc(out, values[start + j:start + j + count])
    return out


def _label_codes(prices: np.ndarray) -> np.ndarray:
    """Return 1 where a swing is above the previous one of its kind, -1 where not, 0 for the first."""
    codes = np.zeros(len(prices), np.int8)
    codes[1:] = np.where(prices[1:] > prices[:-1], 1, -1)
    return codes


def swing_points(high: np.ndarray, low: np.ndarray, pivot_length: int) -> list[Swing]:
    """Return confirmed swings in bar order, labelled against the previous swing of their kind."""
    high, low = np.asarray(high, float), np.asarray(low, float)
    is_high, is_low = _swing_masks(high, low, pivot_length)
    swings = []
    for kind, mask, prices, names in (("high", is_high, high, HIGH_LABELS), ("low", is_low, low, LOW_LABELS)):
        index = np.flatnonzero(mask)
        codes = _label_codes(prices[index])
        swings += [Swing(int(i), int(i) + pivot_length, float(prices[i]), kind, names[int(c)])
                   for i, c in zip(index, codes)]
    # Sort by bar; at the same bar the high comes first, as a left-to-right scan finds them.
    return sorted(swings, key=lambda s: (s.index, s.kind != "high"))


def market_structure(high: np.ndarray, low: np.ndarray, close: np.ndarray, pivot_length: int = 3) -> Structure:
    """Return the structure as known at the last bar."""
    swings = swing_points(high, low, pivot_length)
    last_high = next((s for s in reversed(swings) if s.kind == "high"), None)
    last_low = next((s for s in reversed(swings) if s.kind == "low"), None)
    labels = {s.label for s in (last_high, last_low) if s is not None}
    if labels == {"HH", "HL"}:
        trend = "up"
    elif labels == {"LH", "LL"}:
        trend = "down"
    else:
        trend = "range"
    bos = ""
    if len(close) >= 2:
        if last_high is not None and close[-1] > last_high.price >= close[-2]:
            bos = "bullish"
        elif last_low is not None and close[-1] < last_low.price <= close[-2]:
            bos = "bearish"
    return Structure(tuple(swings), trend, last_high, last_low, bos)


def _known_at_bar(mask: np.ndarray, prices: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Return, per bar, the price and label code of the last swing confirmed by that bar."""
    n = len(mask)
    index = np.flatnonzero(mask)
    codes = _label_codes(prices[index])
    latest = np.full(n, -1, np.int64)
    latest[index + k] = np.arange(len(index))
    latest = np.maximum.accumulate(latest) if n else latest
    known = latest >= 0
    price = np.where(known, prices[index][latest.clip(0)] if len(index) else np.nan, np.nan)
    label = np.where(known, codes[latest.clip(0)] if len(index) else 0, 0).astype(np.int8)
    return price, label


def _check_pivot(pivot_length: int) -> None:
    if pivot_length < 1:
        raise ValueError(f"pivot_length must be at least 1, got {pivot_length}")


def structure_series(high: np.ndarray, low: np.ndarray, close: np.ndarray, pivot_length: int = 3) -> StructureSeries:
    """Return the structure at every bar from float64 arrays; bar i sees swings confirmed by i."""
    _check_pivot(pivot_length)
    high, low, close = (np.asarray(a, np.float64) for a in (high, low, close))
    k, n = pivot_length, len(close)
    is_high, is_low = _swing_masks(high, low, k)
    last_high, high_label = _known_at_bar(is_high, high, k)
    last_low, low_label = _known_at_bar(is_low, low, k)
    trend = np.zeros(n, np.int8)
    trend[(high_label == 1) & (low_label == 1)] = TREND_UP
    trend[(high_label == -1) & (low_label == -1)] = TREND_DOWN
    prev_close = np.concatenate(([np.nan], close[:-1])) if n else close
    with np.errstate(invalid="ignore"):
        bullish = (close > last_high) & (last_high >= prev_close)
        bearish = ~bullish & (close < last_low) & (last_low <= prev_close)
    bos = (bullish.astype(np.int8) - bearish.astype(np.int8))
    event = np.where(bos != 0, np.arange(n), -1)
    last_index = np.maximum.accumulate(event) if n else event.astype(np.int64)
    seen = last_index >= 0
    at = last_index.clip(0)
    level = np.where(bos == BOS_BULLISH, last_high, last_low)
    return StructureSeries(
        trend=trend, last_high=last_high, last_low=last_low, high_label=high_label, low_label=low_label,
        bos=bos, last_bos=np.where(seen, bos[at], 0).astype(np.int8),
        last_bos_index=last_index.astype(np.int64), last_bos_level=np.where(seen, level[at], np.nan),
    )


def _last_label(swing_prices: np.ndarray) -> int:
    # _label_codes of the last swing: 0 for the first of its kind, else 1 above the one before, -1 not.
    if len(swing_prices) < 2:
        return 0
    return 1 if swing_prices[-1] > swing_prices[-2] else -1


def trend_at_last(high: np.ndarray, low: np.ndarray, pivot_length: int = 3) -> tuple[int, bool]:
    """Return `structure_series`' trend code at the last bar and whether both swing labels are known there.

    Every swing `_swing_masks` finds is confirmed by the last bar, so its labels are those of the
    last two swings of each kind: the multi-timeframe view needs only these, not the per-bar series.
    """
    _check_pivot(pivot_length)
    high, low = np.asarray(high, np.float64), np.asarray(low, np.float64)
    is_high, is_low = _swing_masks(high, low, pivot_length)
    high_label, low_label = _last_label(high[is_high]), _last_label(low[is_low])
    trend = TREND_RANGE
    if high_label == 1 and low_label == 1:
        trend = TREND_UP
    elif high_label == -1 and low_label == -1:
        trend = TREND_DOWN
    return trend, high_label != 0 and low_label != 0


class StructureState:
    """Incremental structure: feed closed bars in order, get that bar's `StructureBar`.

    Memory is bounded: the last 2 * pivot_length + 1 highs and lows, the previous close, the last
    swing of each kind and the `keep_swings` most recent swings (for display).
    """

    def __init__(self, pivot_length: int = 3, keep_swings: int = 8) -> None:
        _check_pivot(pivot_length)
        self.pivot_length = pivot_length
        self._highs: deque[float] = deque(maxlen=2 * pivot_length + 1)
        self._lows: deque[float] = deque(maxlen=2 * pivot_length + 1)
        self.swings: deque[Swing] = deque(maxlen=keep_swings)
        self._count = 0
        self._prev_close = float("nan")
        self._high, self._low = float("nan"), float("nan")
        self._high_label = self._low_label = 0
        self._last_bos, self._last_bos_index, self._last_bos_level = 0, -1, float("nan")

    def update(self, high: float, low: float, close: float) -> StructureBar:
        """Add the bar that just closed and return the structure at it."""
        k = self.pivot_length
        self._highs.append(float(high))
        self._lows.append(float(low))
        self._count += 1
        if k >= 1 and self._count >= 2 * k + 1:
            self._confirm(self._count - 1 - k)
        close = float(close)
        bos = BOS_NONE
        if close > self._high and self._high >= self._prev_close:
            bos = BOS_BULLISH
        elif close < self._low and self._low <= self._prev_close:
            bos = BOS_BEARISH
        if bos:
            level = self._high if bos == BOS_BULLISH else self._low
            self._last_bos, self._last_bos_index, self._last_bos_level = bos, self._count - 1, level
        self._prev_close = close
        return StructureBar(self._trend(), self._high, self._low, self._high_label, self._low_label, bos,
                            self._last_bos, self._last_bos_index, self._last_bos_level)

    def _confirm(self, index: int) -> None:
        k, highs, lows = self.pivot_length, list(self._highs), list(self._lows)
        mid_h, mid_l = highs[k], lows[k]
        if mid_h > max(highs[:k]) and mid_h >= max(highs[k + 1:]):
            self._high_label = 0 if self._high != self._high else (1 if mid_h > self._high else -1)
            self._high = mid_h
            self.swings.append(Swing(index, index + k, mid_h, "high", HIGH_LABELS[self._high_label]))
        if mid_l < min(lows[:k]) and mid_l <= min(lows[k + 1:]):
            self._low_label = 0 if self._low != self._low else (1 if mid_l > self._low else -1)
            self._low = mid_l
            self.swings.append(Swing(index, index + k, mid_l, "low", LOW_LABELS[self._low_label]))

    def _trend(self) -> int:
        if self._high_label == 1 and self._low_label == 1:
            return TREND_UP
        if self._high_label == -1 and self._low_label == -1:
            return TREND_DOWN
        return TREND_RANGE
