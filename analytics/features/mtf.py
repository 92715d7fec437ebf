"""Multi-timeframe trend agreement from 1m bars. Pure: no Django, no I/O, no clock.

From 1m bars build 15m, 1h, 4h, 1d and 1w bars (complete buckets only, 1w from Monday), run the
market structure on each, and at every 1m bar read each timeframe's trend from its CLOSED bars
only: a 1h bar counts from the 1m bar that completes it (its :59 minute) on.

Score, in -1..1:
- raw = sum of weight x trend (+1 up, -1 down, 0 range) over the five timeframes (`MtfWeights`,
  default 15m 0.40, 1h 0.25, 4h 0.20, 1d 0.10, 1w 0.05; must sum to 1).
- A timeframe is "available" once its structure has a labelled swing high and swing low (a second
  swing of each kind), i.e. once it can say up or down at all.
- Agreement (every available timeframe up, or every one down): raw moves `agree_bonus` (0.05)
  further in that direction. Conflict (at least one up and one down): raw moves `conflict_penalty`
  (0.10) towards 0, never past it. The result is clipped to -1..1.
- state: 1 agreement, -1 conflict, 0 neither.

`mtf_series` is the whole-history path (backtests); `MtfState.update` the live one (one 1m bar
in, built through `aggregate.BarAggregator`). Both give the same values at every 1m bar.
"""
from dataclasses import astuple, dataclass, field

import numpy as np

from analytics.features.aggregate import BarAggregator, resample_arrays
from analytics.features.structure import StructureState, structure_series

TIMEFRAMES = ("15m", "1h", "4h", "1d", "1w")
STATE_AGREE, STATE_NEITHER, STATE_CONFLICT = 1, 0, -1


@dataclass(frozen=True, slots=True)
class MtfWeights:
    """Weight of each timeframe's trend in the score; non-negative, summing to 1."""

    m15: float = 0.40
    h1: float = 0.25
    h4: float = 0.20
    d1: float = 0.10
    w1: float = 0.05

    def __post_init__(self) -> None:
        values = astuple(self)
        if min(values) < 0:
            raise ValueError(f"MTF weights must not be negative, got {values}")
        total = sum(values)
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"MTF weights must sum to 1, got sum {total:.6g}")


@dataclass(frozen=True, slots=True)
class MtfParams:
    weights: MtfWeights = field(default_factory=MtfWeights)
    pivot_length: int = 3           # structure pivot on every timeframe
    agree_bonus: float = 0.05
    conflict_penalty: float = 0.10


@dataclass(frozen=True, slots=True)
class MtfSeries:
    """Per 1m bar; columns follow TIMEFRAMES."""

    trend: np.ndarray       # int8 (n, 5) trend code per timeframe
    available: np.ndarray   # bool (n, 5)
    raw: np.ndarray         # float64 weighted trend sum
    score: np.ndarray       # float64 after bonus / penalty, -1..1
    state: np.ndarray       # int8 STATE_*


@dataclass(frozen=True, slots=True)
class MtfBar:
    trend: tuple[int, ...]
    available: tuple[bool, ...]
    raw: float
    score: float
    state: int


def mtf_score(trend: np.ndarray, available: np.ndarray,
              params: MtfParams = MtfParams()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (raw, score, state) per row of (rows, 5) trend codes and availability flags."""
    trend, available = np.atleast_2d(trend), np.atleast_2d(available).astype(bool)
    raw = trend.astype(np.float64) @ np.array(astuple(params.weights))
    up = ((trend == 1) & available).any(axis=1)
    down = ((trend == -1) & available).any(axis=1)
    # All available timeframes share one direction: no available one is range, and not both directions.
    flat = ((trend == 0) & available).any(axis=1)
    agree = (up ^ down) & ~flat
    conflict = up & down
    sign = np.sign(raw)
    score = np.where(agree, raw + params.agree_bonus * sign, raw)
    score = np.where(conflict, sign * np.maximum(np.abs(raw) - params.conflict_penalty, 0.0), score)
    state = np.where(agree, STATE_AGREE, np.where(conflict, STATE_CONFLICT, STATE_NEITHER)).astype(np.int8)
    return raw, np.clip(score, -1.0, 1.0), state


def mtf_series(open_time_ms: np.ndarray, open_: np.ndarray, high: np.ndarray, low: np.ndarray,
               close: np.ndarray, volume: np.ndarray | None = None,
               params: MtfParams = MtfParams()) -> MtfSeries:
    """Return the multi-timeframe view at every 1m bar (open_time_ms ascending, no duplicates)."""
    n = len(open_time_ms)
    volume = np.zeros(n) if volume is None else volume
    trend = np.zeros((n, len(TIMEFRAMES)), np.int8)
    available = np.zeros((n, len(TIMEFRAMES)), bool)
    bars = np.arange(n)
    for column, timeframe in enumerate(TIMEFRAMES):
        htf = resample_arrays(open_time_ms, open_, high, low, close, volume, timeframe)
        if not len(htf.close):
            continue
        structure = structure_series(htf.high, htf.low, htf.close, params.pivot_length)
        latest = np.searchsorted(htf.closed_at, bars, side="right") - 1
        known, at = latest >= 0, latest.clip(0)
        trend[:, column] = np.where(known, structure.trend[at], 0)
        available[:, column] = known & (structure.high_label[at] != 0) & (structure.low_label[at] != 0)
    raw, score, state = mtf_score(trend, available, params)
    return MtfSeries(trend, available, raw, score, state)


class MtfState:
    """Incremental multi-timeframe view: one closed 1m bar in, that bar's `MtfBar` out.

    Memory: per timeframe one forming bar and one `StructureState`.
    """

    def __init__(self, params: MtfParams = MtfParams()) -> None:
        self.params = params
        self._aggregators = [BarAggregator(tf) for tf in TIMEFRAMES]
        self._structures = [StructureState(params.pivot_length) for _ in TIMEFRAMES]
        self._weights = astuple(params.weights)
        self._trend = [0] * len(TIMEFRAMES)
        self._available = [False] * len(TIMEFRAMES)
        self._last: MtfBar | None = None

    def update(self, open_time_ms: int, open_: float, high: float, low: float, close: float,
               volume: float = 0.0) -> MtfBar:
        """Add one closed 1m bar and return the view at it."""
        changed = self._last is None
        for column, aggregator in enumerate(self._aggregators):
            bar = aggregator.update(open_time_ms, open_, high, low, close, volume)
            if bar is None:
                continue
            structure = self._structures[column].update(bar.high, bar.low, bar.close)
            self._trend[column] = structure.trend
            self._available[column] = structure.high_label != 0 and structure.low_label != 0
            changed = True
        if changed:  # the view moves only when a higher-timeframe bar closes
            self._last = self._score()
        return self._last

    def _score(self) -> MtfBar:
        # Scalar twin of mtf_score: numpy's per-call overhead would dominate on five values.
        p, trend, available = self.params, self._trend, self._available
        raw = sum(w * t for w, t in zip(self._weights, trend))
        known = {t for t, a in zip(trend, available) if a}
        agree = known in ({1}, {-1})
        conflict = {1, -1} <= known
        sign = (raw > 0) - (raw < 0)
        score = raw + p.agree_bonus * sign if agree else raw
        if conflict:
            score = sign * max(abs(raw) - p.conflict_penalty, 0.0)
        state = STATE_AGREE if agree else STATE_CONFLICT if conflict else STATE_NEITHER
        return MtfBar(tuple(trend), tuple(available), raw, min(max(score, -1.0), 1.0), state)
