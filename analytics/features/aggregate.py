"""Higher-timeframe bars from 1m bars, the way `market.resample` builds them. Pure.

open = first open, high = max, low = min, close = last close, volume summed; buckets start at
`floor_open_time_ms` (1w on Monday 00:00 UTC) and only complete buckets (every 1m bar present)
count. `resample_arrays` does the whole history at once; `BarAggregator` does one 1m bar at a time
and hands out a bar the moment its last minute closes, so both see a bar at the same 1m index.
"""
from dataclasses import dataclass

import numpy as np

from market.timeframes import MINUTE_MS, floor_open_time_ms, timeframe_ms


@dataclass(frozen=True, slots=True)
class Bar:
    open_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class HtfBars:
    """Complete higher-timeframe bars and the 1m index at which each one closed."""

    open_time_ms: np.ndarray    # int64
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    closed_at: np.ndarray       # int64 index of the bucket's last 1m bar in the input


def _check(timeframe: str) -> int:
    step = timeframe_ms(timeframe)
    if step <= MINUTE_MS:
        raise ValueError(f"cannot build {timeframe} from 1m")
    return step


def resample_arrays(open_time_ms: np.ndarray, open_: np.ndarray, high: np.ndarray, low: np.ndarray,
                    close: np.ndarray, volume: np.ndarray, timeframe: str) -> HtfBars:
    """Return the complete `timeframe` bars of 1m arrays (open_time_ms ascending, no duplicates)."""
    step = _check(timeframe)
    open_time_ms = np.asarray(open_time_ms, np.int64)
    if not len(open_time_ms):
        empty = np.array([], np.float64)
        return HtfBars(np.array([], np.int64), empty, empty, empty, empty, empty, np.array([], np.int64))
    buckets = floor_open_time_ms(open_time_ms, timeframe)
    starts = np.flatnonzero(np.concatenate(([True], buckets[1:] != buckets[:-1])))
    ends = np.append(starts[1:], len(open_time_ms)) - 1
    keep = (ends - starts + 1) == step // MINUTE_MS
    starts, ends = starts[keep], ends[keep]
    if not len(starts):
        return resample_arrays(open_time_ms[:0], open_[:0], high[:0], low[:0], close[:0], volume[:0], timeframe)
    return HtfBars(
        open_time_ms=buckets[starts],
        open=np.asarray(open_, np.float64)[starts],
        high=_reduce(np.maximum, high, starts, ends),
        low=_reduce(np.minimum, low, starts, ends),
        close=np.asarray(close, np.float64)[ends],
        volume=_reduce(np.add, volume, starts, ends),
        closed_at=ends.astype(np.int64),
    )


def _reduce(ufunc, values, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    # Interleave ends + 1 so the dropped (incomplete) stretches fall on the odd, discarded slots;
    # the last bound would be out of range when it equals len(values), and reduceat runs to the end anyway.
    values = np.asarray(values, np.float64)
    bounds = np.column_stack((starts, ends + 1)).ravel()
    if bounds[-1] == len(values):
        bounds = bounds[:-1]
    return ufunc.reduceat(values, bounds)[::2]


class BarAggregator:
    """Build one higher timeframe from 1m bars fed in time order; memory is one forming bar."""

    def __init__(self, timeframe: str) -> None:
        self.timeframe = timeframe
        self._minutes = _check(timeframe) // MINUTE_MS
        self._bucket: int | None = None
        self._count = 0
        self._last_ms = -1
        self._open = self._high = self._low = self._close = self._volume = 0.0

    def update(self, open_time_ms: int, open_: float, high: float, low: float, close: float,
               volume: float) -> Bar | None:
        """Add one closed 1m bar; return the higher-timeframe bar it completes, else None."""
        if open_time_ms <= self._last_ms:
            raise ValueError(f"1m bar {open_time_ms} is not after {self._last_ms}")
        self._last_ms = open_time_ms
        bucket = floor_open_time_ms(open_time_ms, self.timeframe)
        if bucket != self._bucket:
            # A new bucket: an unfinished previous one missed minutes and is dropped, as resample does.
            self._bucket, self._count = bucket, 0
            self._open, self._high, self._low, self._volume = open_, high, low, 0.0
        self._count += 1
        self._high = max(self._high, high)
        self._low = min(self._low, low)
        self._close = close
        self._volume += volume
        if self._count < self._minutes:
            return None
        bar = Bar(bucket, float(self._open), float(self._high), float(self._low), float(self._close),
                  float(self._volume))
        self._bucket = None
        return bar
