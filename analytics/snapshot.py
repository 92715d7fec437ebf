"""Build a market snapshot from bars. Pure: no Django, no I/O, no clock."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from analytics.features.momentum import momentum
from analytics.features.structure import market_structure
from analytics.features.volatility import atr


@dataclass(frozen=True, slots=True)
class Bars:
    """Closed bars of one instrument and timeframe, oldest first, as float64 arrays."""

    open_time_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    timeframe_ms: int

    def __len__(self) -> int:
        return len(self.close)

    def upto(self, n: int) -> "Bars":
        """Return the first `n` bars (what was known when bar n-1 closed)."""
        return Bars(self.open_time_ms[:n], self.open[:n], self.high[:n], self.low[:n],
                    self.close[:n], self.volume[:n], self.timeframe_ms)


@dataclass(frozen=True, slots=True)
class SnapshotParams:
    atr_period: int = 14
    pivot_length: int = 3
    momentum_period: int = 12


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    as_of_ms: int               # close time of the last bar used
    close: float
    atr: float
    atr_fraction: float         # ATR / close
    trend: str
    structure_labels: tuple[str, ...]   # labels of the last four swings, oldest first
    last_swing_high: float | None
    last_swing_low: float | None
    break_of_structure: str
    momentum: str
    roc_atr: float
    range_expansion: float
    volume_ratio: float

    def features(self) -> dict:
        """Return every feature as a JSON-safe dict (NaN becomes None)."""
        out = asdict(self)
        out["structure_labels"] = list(self.structure_labels)
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}


def min_bars(params: SnapshotParams) -> int:
    """Return the fewest bars a snapshot needs."""
    return max(params.atr_period, params.momentum_period + 1, 2 * params.pivot_length + 1) + 1


def build_snapshot(bars: Bars, params: SnapshotParams) -> MarketSnapshot:
    """Return the snapshot as of the close of the last bar; raise ValueError on too few bars."""
    if len(bars) < min_bars(params):
        raise ValueError(f"need at least {min_bars(params)} bars for a snapshot, got {len(bars)}")
    atr_series = atr(bars.high, bars.low, bars.close, params.atr_period)
    atr_now = float(atr_series[-1])
    structure = market_structure(bars.high, bars.low, bars.close, params.pivot_length)
    mom = momentum(bars.close, bars.high, bars.low, bars.volume, atr_now, params.momentum_period)
    close = float(bars.close[-1])
    return MarketSnapshot(
        as_of_ms=int(bars.open_time_ms[-1]) + bars.timeframe_ms,
        close=close,
        atr=atr_now,
        atr_fraction=atr_now / close if close else float("nan"),
        trend=structure.trend,
        structure_labels=tuple(s.label for s in structure.swings[-4:]),
        last_swing_high=structure.last_high.price if structure.last_high else None,
        last_swing_low=structure.last_low.price if structure.last_low else None,
        break_of_structure=structure.break_of_structure,
        momentum=mom.state,
        roc_atr=mom.roc_atr,
        range_expansion=mom.range_expansion,
        volume_ratio=mom.volume_ratio,
    )
