"""Combine the contexts into crowd bias, trap index, global risk and warnings, each with its parts.

Pure: no Django, no I/O, no clock. Every output is the sum of weight * value over its parts; the
weights sum to 1 (FlowParams checks it) and the values are bounded, so no clipping hides a term.
A missing input gives value None, contribution 0 and a note.
"""
from __future__ import annotations

from analytics.flow.derivatives import clip, funding_level_score
from analytics.flow.types import (
    DerivativesContext, EtfContext, Explained, FlowParams, FlowWarning, LiquidationContext, Part, SentimentContext,
)


def explain(values: dict[str, float | None], weights: tuple[tuple[str, float], ...], notes: dict[str, str],
            low: float, high: float, scale: float = 1.0) -> Explained:
    """Return sum(scale * weight * value) with one Part per weight; None values contribute 0."""
    parts = []
    for name, weight in weights:
        value = values.get(name)
        contribution = 0.0 if value is None else scale * weight * value
        note = notes.get(name, "missing input" if value is None else "")
        parts.append(Part(name, value, weight, contribution, note))
    # Bounded by construction; the clip only absorbs float rounding (1e-16).
    total = clip(sum(p.contribution for p in parts), low, high)
    return Explained(total, tuple(parts), scale)


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def crowd_bias(d: DerivativesContext, s: SentimentContext, p: FlowParams) -> Explained:
    """Return crowd positioning in [-1, 1] (+ = crowd long) from funding, basis, OI build-up and sentiment.

    funding_level = clip((rate - neutral) / (extreme - neutral)); funding_z = clip(z / z_extreme);
    basis = clip(bps / basis_extreme_bps); oi_build = direction * clip(oi_trend / oi_full_build, 0, 1)
    where direction is the sign of funding vs neutral (else of the basis); sentiment = decayed score.
    """
    direction = None
    if d.funding_rate is not None:
        direction = _sign(d.funding_rate - p.funding_neutral_rate)
    elif d.basis_bps is not None:
        direction = _sign(d.basis_bps)
    oi_build = None
    if d.oi_trend_pct is not None and direction is not None:
        oi_build = direction * clip(d.oi_trend_pct / p.oi_full_build_pct, 0.0, 1.0)
    values = {
        "funding_level": None if d.funding_rate is None else funding_level_score(d.funding_rate, p),
        "funding_z": None if d.funding_z is None else clip(d.funding_z / p.funding_z_extreme, -1.0, 1.0),
        "basis": None if d.basis_bps is None else clip(d.basis_bps / p.basis_extreme_bps, -1.0, 1.0),
        "oi_build": oi_build,
        "sentiment": s.score,
    }
    notes = {"oi_build": "no OI trend or no funding/basis to give it a side"} if oi_build is None else {}
    return explain(values, p.crowd_weights, notes, -1.0, 1.0)


def trap_index(bias: float, d: DerivativesContext, e: EtfContext, liq: LiquidationContext,
               p: FlowParams) -> Explained:
    """Return how likely the crowded side is squeezed, in [0, 1].

    crowding = |bias|; cvd_divergence_against_crowd = divergence strength when it opposes the crowd;
    magnet_against_crowd = magnet strength when the magnet lies on the crowd's liquidation side
    (below for a long crowd); oi_fuel = clip(oi_trend / oi_full_build, 0, 1);
    etf_flow_against_crowd = clip(-direction * surprise_z / etf_surprise_z, 0, 1).
    """
    direction = _sign(bias)
    against = {1: ("bearish", "below"), -1: ("bullish", "above"), 0: ("", "")}[direction]
    divergence = None
    if d.cvd_trend is not None:
        divergence = d.cvd_divergence_strength if direction and d.cvd_divergence == against[0] else 0.0
    magnet = None
    if liq.nearest_above is not None or liq.nearest_below is not None:
        magnet = liq.magnet_strength if direction and liq.magnet == against[1] else 0.0
    values = {
        "crowding": abs(bias),
        "cvd_divergence_against_crowd": divergence,
        "magnet_against_crowd": magnet,
        "oi_fuel": None if d.oi_trend_pct is None else clip(d.oi_trend_pct / p.oi_full_build_pct, 0.0, 1.0),
        "etf_flow_against_crowd": None if e.surprise_z is None else clip(
            -direction * e.surprise_z / p.etf_surprise_z, 0.0, 1.0),
    }
    return explain(values, p.trap_weights, {}, 0.0, 1.0)


def global_risk(trap: float, d: DerivativesContext, e: EtfContext, liq: LiquidationContext,
                s: SentimentContext, p: FlowParams) -> Explained:
    """Return the global risk score in [0, 100] = 100 * sum(weight * value), values in [0, 1].

    funding_extremity = max(|funding_level|, |funding_z| / z_extreme) capped at 1; oi_spike =
    min(1, |OI change over the spike window| / oi_spike_pct); trap_index; etf_outflow =
    max(clip(-surprise_z / etf_surprise_z), clip(-streak / (2 * etf_streak_days))); liquidation_proximity
    = clip(1 - nearest distance / liquidation_near_pct); sentiment_extremity = |sentiment|.
    """
    funding = [abs(funding_level_score(d.funding_rate, p))] if d.funding_rate is not None else []
    if d.funding_z is not None:
        funding.append(min(1.0, abs(d.funding_z) / p.funding_z_extreme))
    etf = None
    if e.total_1d_usd is not None:
        from_z = 0.0 if e.surprise_z is None else clip(-e.surprise_z / p.etf_surprise_z, 0.0, 1.0)
        etf = max(from_z, clip(-e.streak_days / (2 * p.etf_streak_days), 0.0, 1.0))
    nearest = [c.distance_pct for c in (liq.nearest_above, liq.nearest_below) if c is not None]
    values = {
        "funding_extremity": max(funding) if funding else None,
        "oi_spike": None if d.oi_spike_pct is None else min(1.0, abs(d.oi_spike_pct) / p.oi_spike_pct),
        "trap_index": trap,
        "etf_outflow": etf,
        "liquidation_proximity": clip(1.0 - min(nearest) / p.liquidation_near_pct, 0.0, 1.0) if nearest else None,
        "sentiment_extremity": None if s.score is None else abs(s.score),
    }
    return explain(values, p.risk_weights, {}, 0.0, 100.0, scale=100.0)


def flow_warnings(bias: float, trap: float, d: DerivativesContext, e: EtfContext, liq: LiquidationContext,
                  s: SentimentContext, p: FlowParams) -> list[FlowWarning]:
    """Return the named warnings the contexts raise (stale inputs are added by build_flow)."""
    out = []
    if d.funding_extreme:
        out.append(FlowWarning(f"funding_extreme_{d.funding_extreme}",
                               f"funding {d.funding_rate:.6f}/interval, z={_fmt(d.funding_z)}"))
    if d.oi_spike_pct is not None and abs(d.oi_spike_pct) >= p.oi_spike_pct:
        out.append(FlowWarning("oi_spike", f"OI {d.oi_spike_pct:+.2f}% over {p.oi_spike_window_ms // 3_600_000}h"))
    if d.cvd_divergence:
        out.append(FlowWarning(f"cvd_{d.cvd_divergence}_divergence",
                               f"price {d.price_change_pct:+.2f}%, CVD trend {d.cvd_trend:+.3f}"))
    if abs(e.streak_days) >= p.etf_streak_days:
        kind = "inflow" if e.streak_days > 0 else "outflow"
        out.append(FlowWarning(f"etf_{kind}_streak", f"{abs(e.streak_days)} {kind} days in a row"))
    if e.surprise_z is not None and abs(e.surprise_z) >= p.etf_surprise_z:
        kind = "inflow" if e.surprise_z > 0 else "outflow"
        out.append(FlowWarning(f"etf_{kind}_surprise", f"latest total {e.surprise_z:+.2f} std vs trailing mean"))
    if liq.magnet and liq.magnet_strength >= p.liquidation_magnet_min_strength:
        out.append(FlowWarning(f"liquidation_magnet_{liq.magnet}", f"strength {liq.magnet_strength:.2f}"))
    if s.score is not None and abs(s.score) >= p.sentiment_extreme:
        out.append(FlowWarning("sentiment_extreme_greed" if s.score > 0 else "sentiment_extreme_fear",
                               f"score {s.score:+.2f}"))
    if trap >= p.trap_warning and bias:
        out.append(FlowWarning(f"crowded_{'long' if bias > 0 else 'short'}_trap", f"trap index {trap:.2f}"))
    return out


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"
