"""Volatility features: true range, ATR, ATR percentile, realised volatility.

Pure: no Django, no I/O, no clock. Each feature has a vectorised whole-history function and a
`<Feature>State` updated one closed bar at a time; the two agree to 1e-9 (see indicators.py).
"""
import math
from bisect import bisect_left, bisect_right, insort
from collections import deque

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from analytics.features.indicators import CHUNK_ROWS, NAN, mean_std, rolling_mean_std

YEAR_MS = 365 * 86_400_000


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """Return the true range per bar; the first bar has no previous close, so it is high - low."""
    prev_close = np.concatenate(([close[0]], close[:-1])) if len(close) else close
    return np.maximum.reduce([high - low, np.abs(high - prev_close), np.abs(low - prev_close)])


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 14) -> np.ndarray:
    """Return Wilder's average true range; NaN until `period` bars exist.

    Seeded with the simple mean of the first `period` true ranges, then
    atr[i] = (atr[i-1] * (period - 1) + tr[i]) / period, as Wilder defined it.
    """
    if period < 1:
        raise ValueError("ATR period must be at least 1")
    tr = true_range(np.asarray(high, float), np.asarray(low, float), np.asarray(close, float))
    out = np.full(len(tr), np.nan)
    if len(tr) < period:
        return out
    value = float(tr[:period].mean())
    values = [value]
    append = values.append
    # A plain loop: the recursion is sequential and Python floats beat numpy scalars here.
    # Kept as Wilder wrote it (not as an EMA with alpha = 1/period) so results stay bit-identical.
    for tr_i in tr[period:].tolist():
        value = (value * (period - 1) + tr_i) / period
        append(value)
    out[period - 1:] = values
    return out


class AtrState:
    """Latest Wilder ATR, as `atr`; O(1) per bar."""

    __slots__ = ("period", "_prev_close", "_count", "_sum", "_value")

    def __init__(self, period: int = 14):
        if period < 1:
            raise ValueError("ATR period must be at least 1")
        self.period, self._prev_close = period, NAN
        self._count, self._sum, self._value = 0, 0.0, NAN

    @property
    def value(self) -> float:
        return self._value

    def update(self, high: float, low: float, close: float) -> float:
        """Fold in one bar and return the ATR (NaN until `period` bars)."""
        prev = close if math.isnan(self._prev_close) else self._prev_close
        tr = max(high - low, abs(high - prev), abs(low - prev))
        self._prev_close = close
        if self._count >= self.period:
            self._value = (self._value * (self.period - 1) + tr) / self.period
        else:
            self._sum += tr
            self._count += 1
            if self._count == self.period:
                self._value = self._sum / self.period
        return self._value


def atr_percentile(atr_values: np.ndarray, window: int = 500) -> np.ndarray:
    """Return the percent (0..100) of the previous `window` ATR values that are <= the current one.

    NaN until `window` earlier ATR values exist. Leading NaN (the ATR warming up) is allowed.
    """
    if window < 1:
        raise ValueError("window must be at least 1")
    values = np.asarray(atr_values, float)
    out = np.full(len(values), np.nan)
    valid = np.flatnonzero(~np.isnan(values))
    if len(valid) == 0 or len(values) <= valid[0] + window:
        return out
    first = int(valid[0]) + window
    # Row r holds values[r : r + window], the history of bar r + window.
    history = sliding_window_view(values[:-1], window)
    for start in range(first, len(values), CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, len(values))
        block = history[start - window:stop - window]
        out[start:stop] = np.count_nonzero(block <= values[start:stop, None], axis=1) * (100.0 / window)
    return out


class AtrPercentileState:
    """Latest ATR percentile, as `atr_percentile`; a sorted window, O(log window) search per bar."""

    __slots__ = ("_recent", "_sorted", "_value")

    def __init__(self, window: int = 500):
        if window < 1:
            raise ValueError("window must be at least 1")
        self._recent, self._sorted, self._value = deque(maxlen=window), [], NAN

    @property
    def value(self) -> float:
        return self._value

    def update(self, atr_value: float) -> float:
        """Fold in one ATR value and return its percentile (NaN until defined)."""
        if math.isnan(atr_value):
            return NAN
        window = self._recent.maxlen
        self._value = NAN
        if len(self._recent) == window:
            self._value = bisect_right(self._sorted, atr_value) * (100.0 / window)
            del self._sorted[bisect_left(self._sorted, self._recent[0])]
        self._recent.append(atr_value)
        insort(self._sorted, atr_value)
        return self._value


def realised_volatility(close: np.ndarray, window: int = 30, bar_ms: int = 60_000) -> np.ndarray:
    """Return the annualised realised volatility: sample std (ddof=1) of the last `window` log returns.

    Annualised by sqrt(bars per 365-day year), as crypto trades every day; 0.5 means 50 % a year.
    NaN until `window` returns (window + 1 closes) exist.
    """
    if window < 2:
        raise ValueError("window must be at least 2")
    close = np.asarray(close, float)
    out = np.full(len(close), np.nan)
    if len(close) < 2:
        return out
    _, std = rolling_mean_std(np.log(close[1:] / close[:-1]), window, ddof=1)
    out[1:] = std * math.sqrt(YEAR_MS / bar_ms)
    return out


class RealisedVolatilityState:
    """Latest realised volatility, as `realised_volatility`; O(window) per bar."""

    __slots__ = ("_annualise", "_prev", "_returns", "_value")

    def __init__(self, window: int = 30, bar_ms: int = 60_000):
        if window < 2:
            raise ValueError("window must be at least 2")
        self._annualise = math.sqrt(YEAR_MS / bar_ms)
        self._prev, self._returns, self._value = NAN, deque(maxlen=window), NAN

    @property
    def value(self) -> float:
        return self._value

    def update(self, close: float) -> float:
        """Fold in one close and return the annualised volatility (NaN until defined)."""
        if not math.isnan(self._prev):
            self._returns.append(math.log(close / self._prev))
        self._prev = close
        if len(self._returns) == self._returns.maxlen:
            self._value = mean_std(self._returns, ddof=1)[1] * self._annualise
        return self._value
