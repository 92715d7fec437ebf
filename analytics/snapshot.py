"""Build a market snapshot from bars. Pure: no Django, no I/O, no clock.

The snapshot is what the analysts see at the close of a bar: volatility, structure, momentum,
classic indicators, sessions, fair-value gaps, order-book imbalance and the multi-timeframe
view. Every value is the whole-history feature function's value at the last bar, so it equals
what the incremental (live) paths give for that bar. Where only that bar is read, a last-bar
twin (`fvg_last`, `sessions_last`, `trend_at_last`, tested equal bit for bit) skips the per-bar
arrays; series the strategies also read are shared through the bars' memo (features.shared).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

from analytics.features import fvg as fvg_mod
from analytics.features.indicators import macd, volume_zscore
from analytics.features.momentum import momentum
from analytics.features.mtf import TIMEFRAMES, MtfParams, mtf_score
from analytics.features.obi import obi
from analytics.features.shared import atr_of, bollinger_of, ema_of, rsi_of, structure_of
from analytics.features.sessions import SESSIONS, session_names, sessions_last
from analytics.features.structure import market_structure, trend_at_last
from analytics.features.volatility import atr_percentile, realised_volatility

_TREND = {1: "up", 0: "range", -1: "down"}
_BOS = {1: "bullish", 0: "", -1: "bearish"}
_GAP_STATE = {1: "fresh", 2: "partially filled"}


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
    # Series computed from these bars, shared by the snapshot and the strategies (analytics.features.shared).
    # Never copied by dataclasses.replace or upto(): a new window starts empty.
    memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

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
    atr_percentile_window: int = 200
    realised_vol_window: int = 30
    rsi_period: int = 14
    ema_fast: int = 21
    ema_slow: int = 55
    bollinger_period: int = 20
    bollinger_k: float = 2.0
    volume_z_window: int = 20
    fvg_max_open: int = 50
    obi_band_bps: float = 10.0
    mtf: MtfParams = field(default_factory=MtfParams)


@dataclass(frozen=True, slots=True)
class Context:
    """What a snapshot may use besides the bars: closed higher-timeframe bars and the book."""

    higher: dict[str, Bars] = field(default_factory=dict)   # keyed by "15m", "1h", ... (closed bars only)
    book_bids: np.ndarray | None = None                     # (levels, 2) price, qty
    book_asks: np.ndarray | None = None
    structure: dict[str, Bars] = field(default_factory=dict)  # timeframes whose HH/HL structure the rule reads


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
    extra: dict = field(default_factory=dict)   # every further feature, JSON-safe

    def features(self) -> dict:
        """Return every feature as a flat JSON-safe dict (NaN becomes None)."""
        # Not asdict: its deep copy of `extra` is thrown away by _json_safe, which rebuilds every container.
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out["structure_labels"] = list(self.structure_labels)
        return _json_safe({**out, **self.extra})


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) or math.isinf(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def min_bars(params: SnapshotParams) -> int:
    """Return the fewest bars a snapshot needs."""
    return max(params.atr_period, params.momentum_period + 1, 2 * params.pivot_length + 1) + 1


def _last(values: np.ndarray) -> float:
    return float(values[-1]) if len(values) else float("nan")


def _indicators(bars: Bars, params: SnapshotParams) -> dict:
    bands = bollinger_of(bars, params.bollinger_period, params.bollinger_k)
    lines = macd(bars.close)
    return {
        "rsi": _last(rsi_of(bars, params.rsi_period)),
        "ema_fast": _last(ema_of(bars, params.ema_fast)),
        "ema_slow": _last(ema_of(bars, params.ema_slow)),
        "macd": _last(lines.line), "macd_signal": _last(lines.signal), "macd_histogram": _last(lines.histogram),
        "bollinger_upper": _last(bands.upper), "bollinger_lower": _last(bands.lower),
        "bollinger_percent_b": _last(bands.percent_b), "bollinger_bandwidth": _last(bands.bandwidth),
        "volume_zscore": _last(volume_zscore(bars.volume, params.volume_z_window)),
    }


def _volatility(bars: Bars, atr_series: np.ndarray, params: SnapshotParams) -> dict:
    return {
        "atr_percentile": _last(atr_percentile(atr_series, params.atr_percentile_window)),
        "realised_vol_annual": _last(realised_volatility(bars.close, params.realised_vol_window, bars.timeframe_ms)),
    }


def _sessions(bars: Bars) -> dict:
    last = sessions_last(bars.open_time_ms, bars.high, bars.low)
    levels = {
        s.name: {"high": last.high[j], "low": last.low[j], "prev_high": last.prev_high[j], "prev_low": last.prev_low[j]}
        for j, s in enumerate(SESSIONS)
    }
    return {"sessions_active": list(session_names(last.active)), "session_levels": levels,
            "minutes_to_next_session": last.minutes_to_next_open}


def _fvg(bars: Bars, atr_series: np.ndarray, params: SnapshotParams) -> dict:
    gaps = fvg_mod.fvg_last(bars.high, bars.low, bars.close, params.atr_period, params.fvg_max_open,
                            atr_values=atr_series)

    def side(prefix: str) -> dict | None:
        state = int(getattr(gaps, f"{prefix}_state"))
        if state == 0:
            return None
        return {"bottom": float(getattr(gaps, f"{prefix}_bottom")), "top": float(getattr(gaps, f"{prefix}_top")),
                "size_atr": float(getattr(gaps, f"{prefix}_size_atr")),
                "age_bars": int(getattr(gaps, f"{prefix}_age")), "state": _GAP_STATE.get(state, str(state))}

    return {"fvg_below": side("below"), "fvg_above": side("above"),
            "fvg_open_below": int(gaps.open_below), "fvg_open_above": int(gaps.open_above)}


def _mtf(context: Context, params: SnapshotParams) -> dict:
    trend = np.zeros(len(TIMEFRAMES), dtype=np.int8)
    available = np.zeros(len(TIMEFRAMES), dtype=bool)
    for j, timeframe in enumerate(TIMEFRAMES):
        bars = context.higher.get(timeframe)
        if bars is None or len(bars) < 2 * params.mtf.pivot_length + 2:
            continue
        trend[j], available[j] = trend_at_last(bars.high, bars.low, params.mtf.pivot_length)
    raw, score, state = mtf_score(trend, available, params.mtf)
    return {"mtf_trends": {tf: (_TREND[int(t)] if a else None) for tf, t, a in zip(TIMEFRAMES, trend, available)},
            "mtf_raw": float(raw[0]), "mtf_score": float(score[0]),
            "mtf_state": {1: "agree", 0: "neither", -1: "conflict"}[int(state[0])]}


def _structure_detail(bars: Bars, params: SnapshotParams) -> dict:
    series = structure_of(bars, params.pivot_length)
    index = int(series.last_bos_index[-1])
    return {"last_break_of_structure": _BOS[int(series.last_bos[-1])] or None,
            "last_break_level": float(series.last_bos_level[-1]),
            "last_break_bars_ago": len(bars) - 1 - index if index >= 0 else None}


def _structure_trends(context: Context, params: SnapshotParams) -> dict:
    """Return the structure trend of each confirming timeframe; None where too few bars have closed."""
    out = {}
    for timeframe, bars in context.structure.items():
        if len(bars) < 2 * params.pivot_length + 2:
            out[timeframe] = None
            continue
        trend, known = trend_at_last(bars.high, bars.low, params.pivot_length)
        # No confirmed swing high and low yet: the trend code would read "range" by default.
        out[timeframe] = _TREND[trend] if known else None
    return {"structure_trends": out}


def build_snapshot(bars: Bars, params: SnapshotParams, context: Context | None = None) -> MarketSnapshot:
    """Return the snapshot as of the close of the last bar; raise ValueError on too few bars."""
    if len(bars) < min_bars(params):
        raise ValueError(f"need at least {min_bars(params)} bars for a snapshot, got {len(bars)}")
    context = context or Context()
    atr_series = atr_of(bars, params.atr_period)
    atr_now = float(atr_series[-1])
    structure = market_structure(bars.high, bars.low, bars.close, params.pivot_length)
    mom = momentum(bars.close, bars.high, bars.low, bars.volume, atr_now, params.momentum_period)
    close = float(bars.close[-1])
    extra = {**_volatility(bars, atr_series, params), **_indicators(bars, params), **_sessions(bars),
             **_fvg(bars, atr_series, params), **_structure_detail(bars, params), **_mtf(context, params),
             **_structure_trends(context, params),
             "volume_confirmed": mom.volume_confirmed}
    if context.book_bids is not None and context.book_asks is not None:
        extra["obi"] = obi(context.book_bids, context.book_asks, params.obi_band_bps)
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
        extra=extra,
    )
