"""Derivatives context: open-interest change, funding level and extremes, basis, CVD vs price.

Pure: no Django, no I/O, no clock. Series are oldest first and already cut at the as-of time.
"""
from __future__ import annotations

import bisect
import math
import statistics

from analytics.flow.types import (
    HOUR_MS, BasisPoint, CandlePoint, CvdPoint, DerivativesContext, FlowParams, FundingPoint, OpenInterestPoint,
)


def clip(value: float, low: float, high: float) -> float:
    """Return `value` limited to [low, high]."""
    return min(high, max(low, value))


def window_label(window_ms: int) -> str:
    """Return '1h', '4h', '24h' style labels for a window in ms."""
    hours = window_ms / HOUR_MS
    return f"{hours:g}h" if hours >= 1 else f"{window_ms // 60_000}m"


def oi_change_pct(points: tuple[OpenInterestPoint, ...], window_ms: int, tolerance: float) -> float | None:
    """Return the percent change of open interest from `window_ms` before the last sample to the last.

    The reference is the latest sample at or before last - window; it must lie no more than
    `tolerance * window_ms` earlier, else the sampling is too coarse for the window and None is returned.
    """
    if not points:
        return None
    last = points[-1]
    target = last.ts_ms - window_ms
    i = bisect.bisect_right([p.ts_ms for p in points], target) - 1
    if i < 0 or target - points[i].ts_ms > tolerance * window_ms or points[i].open_interest <= 0:
        return None
    return (last.open_interest / points[i].open_interest - 1.0) * 100.0


def funding_z(points: tuple[FundingPoint, ...], window_ms: int, min_samples: int) -> float | None:
    """Return (last rate - mean) / sample std of the rates in (last - window, last), the last excluded."""
    if not points:
        return None
    last = points[-1]
    history = [p.rate for p in points[:-1] if p.ts_ms > last.ts_ms - window_ms]
    if len(history) < max(2, min_samples):
        return None
    std = statistics.stdev(history)
    return (last.rate - statistics.fmean(history)) / std if std > 0 else None


def funding_extreme(rate: float, z: float | None, params: FlowParams) -> str:
    """Return 'long' / 'short' when funding is extreme by level or by z-score, else ''."""
    z = 0.0 if z is None else z
    if rate > 0 and (rate >= params.funding_extreme_rate or z >= params.funding_z_extreme):
        return "long"
    if rate < 0 and (rate <= -params.funding_extreme_rate or z <= -params.funding_z_extreme):
        return "short"
    return ""


def funding_level_score(rate: float, params: FlowParams) -> float:
    """Return (rate - neutral) / (extreme - neutral) clipped to [-1, 1]: +1 = longs pay at the extreme."""
    return clip((rate - params.funding_neutral_rate) / (params.funding_extreme_rate - params.funding_neutral_rate),
                -1.0, 1.0)


def basis_bps(point: BasisPoint) -> float | None:
    """Return (mark - index) / index in basis points."""
    if point.index_price <= 0:
        return None
    return (point.mark_price - point.index_price) / point.index_price * 1e4


def cvd_from_candles(candles: tuple[CandlePoint, ...]) -> list[float] | None:
    """Return cumsum(2 * taker_buy_base - volume) per bar, or None when a bar lacks taker_buy_base."""
    if not candles or any(c.taker_buy_base is None for c in candles):
        return None
    out, running = [], 0.0
    for c in candles:
        running += 2.0 * c.taker_buy_base - c.volume
        out.append(running)
    return out


def _value_before(times: list[int], values: list[float], target_ms: int) -> float | None:
    i = bisect.bisect_right(times, target_ms) - 1
    return values[i] if i >= 0 else None


def cvd_trend(cvd_points: tuple[CvdPoint, ...], candles: tuple[CandlePoint, ...],
              window_ms: int) -> tuple[float | None, float | None, str]:
    """Return (CVD change / volume over the window, price change in percent, source).

    The window ends at the last candle's close (else the last CVD sample) and starts window_ms
    earlier. CVD comes from the stored samples when present (change against the latest sample at
    or before the start), else from the candles closing inside the window: sum(2 * taker_buy_base -
    volume), the difference of cvd = cumsum(2 * taker_buy_base - volume). Without candle volume the
    trend is the sign of the change. Price change: last close vs the close at or before the start.
    """
    if not candles and not cvd_points:
        return None, None, ""
    end = candles[-1].close_time_ms if candles else cvd_points[-1].ts_ms
    start = end - window_ms
    start_close = _value_before([c.close_time_ms for c in candles], [c.close for c in candles], start)
    price_change = (candles[-1].close / start_close - 1.0) * 100.0 if start_close else None
    in_window = [c for c in candles if start < c.close_time_ms <= end]
    volume = sum(c.volume for c in in_window)
    if cvd_points:
        source = "samples"
        times, values = [p.ts_ms for p in cvd_points], [p.cvd for p in cvd_points]
        first, last = _value_before(times, values, start), _value_before(times, values, end)
        delta = None if first is None or last is None else last - first
    else:
        source = "candles"
        covered = bool(in_window) and in_window[0].open_time_ms <= start
        complete = all(c.taker_buy_base is not None for c in in_window)
        delta = cvd_from_candles(tuple(in_window))[-1] if covered and complete else None
    if delta is None:
        return None, price_change, ""
    trend = clip(delta / volume, -1.0, 1.0) if volume > 0 else (math.copysign(1.0, delta) if delta else 0.0)
    return trend, price_change, source


def cvd_divergence(trend: float | None, price_change_pct: float | None, params: FlowParams) -> tuple[str, float]:
    """Return ('bearish' | 'bullish' | '', strength 0..1): price up while CVD falls is bearish."""
    if trend is None or price_change_pct is None:
        return "", 0.0
    strength = min(1.0, abs(trend) / params.cvd_full_trend)
    if price_change_pct >= params.cvd_price_move_pct and trend <= -params.cvd_min_trend:
        return "bearish", strength
    if price_change_pct <= -params.cvd_price_move_pct and trend >= params.cvd_min_trend:
        return "bullish", strength
    return "", 0.0


def derivatives_context(funding: tuple[FundingPoint, ...], open_interest: tuple[OpenInterestPoint, ...],
                        basis: tuple[BasisPoint, ...], cvd: tuple[CvdPoint, ...], candles: tuple[CandlePoint, ...],
                        params: FlowParams) -> DerivativesContext:
    """Return the derivatives context; missing series leave their fields None with a note."""
    notes: list[str] = []
    oi_changes = tuple((window_label(w), oi_change_pct(open_interest, w, params.oi_window_tolerance))
                       for w in params.oi_windows_ms)
    oi_trend = oi_change_pct(open_interest, params.oi_trend_window_ms, params.oi_window_tolerance)
    oi_spike = oi_change_pct(open_interest, params.oi_spike_window_ms, params.oi_window_tolerance)
    if not open_interest:
        notes.append("open_interest: no samples")
    elif oi_trend is None:
        notes.append("open_interest: too little history or too coarse for the trend window")
    rate = annualised = z = None
    extreme = ""
    if funding:
        rate = funding[-1].rate
        annualised = rate * params.funding_periods_per_year * 100.0
        z = funding_z(funding, params.funding_z_window_ms, params.funding_z_min_samples)
        extreme = funding_extreme(rate, z, params)
        if z is None:
            notes.append("funding: too little history (or no spread) for a z-score")
    else:
        notes.append("funding: no samples")
    bps = basis_bps(basis[-1]) if basis else None
    if bps is None:
        notes.append("basis: no mark/index sample")
    trend, price_change, source = cvd_trend(cvd, candles, params.cvd_window_ms)
    if trend is None:
        notes.append("cvd: no CVD samples and no candles with taker-buy volume covering the window")
    divergence, strength = cvd_divergence(trend, price_change, params)
    return DerivativesContext(
        oi_change_pct=oi_changes, oi_trend_pct=oi_trend, oi_spike_pct=oi_spike, funding_rate=rate,
        funding_annualised_pct=annualised, funding_z=z, funding_extreme=extreme, basis_bps=bps,
        cvd_source=source, cvd_trend=trend, price_change_pct=price_change,
        cvd_divergence=divergence, cvd_divergence_strength=strength, notes=tuple(notes),
    )
