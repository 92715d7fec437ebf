"""Inputs, parameters and outputs of the flow engine. Pure: no Django, no I/O, no clock.

Times are epoch milliseconds (UTC). Rates are fractions per funding interval (0.0001 = 0.01 %),
changes are percent, basis is basis points, money is USD, all as float.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from datetime import date
from functools import cache

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True, slots=True)
class FundingPoint:
    ts_ms: int
    rate: float                 # fraction per funding interval (8 h on Binance USD-M)


@dataclass(frozen=True, slots=True)
class OpenInterestPoint:
    ts_ms: int
    open_interest: float        # base units
    value_usd: float | None = None


@dataclass(frozen=True, slots=True)
class BasisPoint:
    ts_ms: int
    mark_price: float
    index_price: float


@dataclass(frozen=True, slots=True)
class CvdPoint:
    ts_ms: int
    cvd: float                  # cumulative taker buy - taker sell, base units


@dataclass(frozen=True, slots=True)
class CandlePoint:
    open_time_ms: int
    close_time_ms: int          # open + bar length: when the close became known
    close: float
    volume: float               # base units
    taker_buy_base: float | None = None


@dataclass(frozen=True, slots=True)
class EtfFlowPoint:
    day: date                   # trading day the flow belongs to
    fund: str
    net_flow_usd: float
    known_at_ms: int


@dataclass(frozen=True, slots=True)
class LiquidationZonePoint:
    side: str                   # "long" or "short" liquidations
    price_low: float
    price_high: float
    size_usd: float
    known_at_ms: int
    valid_until_ms: int | None = None


@dataclass(frozen=True, slots=True)
class SentimentPoint:
    score: float                # -1 (fear) .. +1 (greed)
    source: str
    known_at_ms: int
    valid_until_ms: int | None = None


@dataclass(frozen=True, slots=True)
class FlowInputs:
    """Everything the flow engine may see as of `as_of_ms`; each series oldest first."""

    as_of_ms: int
    asset: str = "BTC"
    funding: tuple[FundingPoint, ...] = ()
    open_interest: tuple[OpenInterestPoint, ...] = ()
    basis: tuple[BasisPoint, ...] = ()
    cvd: tuple[CvdPoint, ...] = ()
    candles: tuple[CandlePoint, ...] = ()
    etf_flows: tuple[EtfFlowPoint, ...] = ()
    liquidation_zones: tuple[LiquidationZonePoint, ...] = ()
    sentiment: tuple[SentimentPoint, ...] = ()
    price: float | None = None  # overrides the last candle close / mark price


CROWD_WEIGHTS = (("funding_level", 0.35), ("funding_z", 0.15), ("basis", 0.20), ("oi_build", 0.15),
                 ("sentiment", 0.15))
TRAP_WEIGHTS = (("crowding", 0.35), ("cvd_divergence_against_crowd", 0.20), ("magnet_against_crowd", 0.20),
                ("oi_fuel", 0.15), ("etf_flow_against_crowd", 0.10))
RISK_WEIGHTS = (("funding_extremity", 0.20), ("oi_spike", 0.15), ("trap_index", 0.25), ("etf_outflow", 0.15),
                ("liquidation_proximity", 0.15), ("sentiment_extremity", 0.10))


@dataclass(frozen=True, slots=True)
class FlowParams:
    """Every window, threshold and weight of the flow engine (docs/FLOW.md explains each)."""

    # Open interest: change windows, the spike alarm and the change that counts as full build-up.
    oi_windows_ms: tuple[int, ...] = (HOUR_MS, 4 * HOUR_MS, DAY_MS)
    oi_window_tolerance: float = 0.25       # reference sample may sit this fraction of the window early
    oi_trend_window_ms: int = DAY_MS
    oi_full_build_pct: float = 10.0
    oi_spike_window_ms: int = 4 * HOUR_MS
    oi_spike_pct: float = 5.0
    # Funding: neutral level (Binance's interest component), extremes, z-score history.
    funding_periods_per_year: float = 3 * 365
    funding_neutral_rate: float = 0.0001
    funding_extreme_rate: float = 0.0005
    funding_z_window_ms: int = 30 * DAY_MS
    funding_z_min_samples: int = 10
    funding_z_extreme: float = 2.0
    # Basis (mark vs index) that counts as fully one-sided.
    basis_extreme_bps: float = 10.0
    # CVD vs price over one window.
    cvd_window_ms: int = 4 * HOUR_MS
    cvd_price_move_pct: float = 0.5
    cvd_min_trend: float = 0.02
    cvd_full_trend: float = 0.10
    # ETF flows.
    etf_surprise_days: int = 20
    etf_min_history_days: int = 5
    etf_streak_days: int = 3
    etf_surprise_z: float = 2.0
    # Liquidation zones.
    liquidation_proximity_pct: float = 2.0  # e-folding distance of the proximity weight
    liquidation_near_pct: float = 3.0       # nearest cluster closer than this raises risk
    liquidation_magnet_min_strength: float = 0.2
    # Sentiment.
    sentiment_half_life_ms: int = DAY_MS
    sentiment_extreme: float = 0.7
    news_weight: float = 1.0
    # Staleness: older inputs are left out (contribution 0) and named in a stale_input warning.
    max_age_ms: tuple[tuple[str, int], ...] = (
        ("funding", 12 * HOUR_MS), ("open_interest", 8 * HOUR_MS), ("basis", 2 * HOUR_MS),
        ("cvd", 2 * HOUR_MS), ("candles", 2 * HOUR_MS), ("etf_flows", 4 * DAY_MS),
        ("liquidation_zones", 3 * DAY_MS), ("sentiment", 3 * DAY_MS),
    )
    # How far back the shell loads ETF flows, liquidation zones and sentiment (known_at / day).
    manual_lookback_ms: int = 45 * DAY_MS
    trap_warning: float = 0.6
    crowd_weights: tuple[tuple[str, float], ...] = CROWD_WEIGHTS
    trap_weights: tuple[tuple[str, float], ...] = TRAP_WEIGHTS
    risk_weights: tuple[tuple[str, float], ...] = RISK_WEIGHTS

    def __post_init__(self):
        for name in ("crowd_weights", "trap_weights", "risk_weights"):
            weights = [w for _, w in getattr(self, name)]
            # Weights summing to 1 over parts bounded in [-1, 1] / [0, 1] keep the outputs in range
            # without clipping, so the sum of contributions is the output exactly.
            if any(w < 0 for w in weights) or not math.isclose(sum(weights), 1.0, abs_tol=1e-9):
                raise ValueError(f"{name} must be non-negative and sum to 1, got {weights}")

    def max_age(self, name: str) -> int:
        """Return the largest age (ms) at which input `name` still counts."""
        return dict(self.max_age_ms)[name]


@dataclass(frozen=True, slots=True)
class Part:
    """One term of an output: contribution = weight * value (value None = missing, contributes 0)."""

    name: str
    value: float | None
    weight: float
    contribution: float
    note: str = ""


@dataclass(frozen=True, slots=True)
class Explained:
    """An output and the parts whose contributions sum to it (times `scale`)."""

    value: float
    parts: tuple[Part, ...]
    scale: float = 1.0

    def to_json(self) -> dict:
        """Return the value and its parts as JSON-safe dicts."""
        return {"value": self.value, "scale": self.scale, "parts": [_json_safe(p) for p in self.parts]}


@dataclass(frozen=True, slots=True)
class FlowWarning:
    name: str                   # e.g. funding_extreme_long, stale_input:funding
    detail: str = ""


@dataclass(frozen=True, slots=True)
class InputStatus:
    name: str
    count: int
    latest_ms: int | None
    status: str                 # "ok", "missing" or "stale"


@dataclass(frozen=True, slots=True)
class DerivativesContext:
    oi_change_pct: tuple[tuple[str, float | None], ...] = ()    # (window label, percent)
    oi_trend_pct: float | None = None
    oi_spike_pct: float | None = None
    funding_rate: float | None = None
    funding_annualised_pct: float | None = None
    funding_z: float | None = None
    funding_extreme: str = ""   # "long", "short" or ""
    basis_bps: float | None = None
    cvd_source: str = ""        # "samples", "candles" or ""
    cvd_trend: float | None = None   # CVD change / volume over the window, -1..1
    price_change_pct: float | None = None
    cvd_divergence: str = ""    # "bearish", "bullish" or ""
    cvd_divergence_strength: float = 0.0
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EtfContext:
    latest_day: date | None = None
    latest_by_fund: tuple[tuple[str, float], ...] = ()
    total_1d_usd: float | None = None
    total_5d_usd: float | None = None
    total_20d_usd: float | None = None
    streak_days: int = 0        # +n inflow days in a row, -n outflow days
    surprise_z: float | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Cluster:
    price_low: float
    price_high: float
    side: str
    size_usd: float
    distance_pct: float         # 0 when the price sits inside the band


@dataclass(frozen=True, slots=True)
class LiquidationContext:
    price: float | None = None
    nearest_above: Cluster | None = None
    nearest_below: Cluster | None = None
    weight_above: float = 0.0   # sum of size_usd * exp(-distance_pct / proximity_pct)
    weight_below: float = 0.0
    magnet: str = ""            # "above", "below" or ""
    magnet_strength: float = 0.0
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SentimentContext:
    score: float | None = None  # decayed combination, -1..1
    readings: tuple[tuple[str, float, float], ...] = ()  # (source, score, decay weight)
    news_score: float | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FlowResult:
    """The flow view as of `as_of_ms`: three explained outputs, warnings and the context behind them."""

    as_of_ms: int
    crowd_bias: Explained       # -1..1, positive = crowd long
    trap_index: Explained       # 0..1
    global_risk: Explained      # 0..100 (scale 100)
    warnings: tuple[FlowWarning, ...]
    derivatives: DerivativesContext
    etf: EtfContext
    liquidations: LiquidationContext
    sentiment: SentimentContext
    inputs: tuple[InputStatus, ...]
    notes: tuple[str, ...] = field(default=())

    def parts_json(self) -> dict:
        """Return every output with its parts and the context it came from, JSON-safe."""
        context = {f.name: _json_safe(getattr(self, f.name))
                   for f in fields(self) if f.name in ("derivatives", "etf", "liquidations", "sentiment")}
        return {"crowd_bias": self.crowd_bias.to_json(), "trap_index": self.trap_index.to_json(),
                "global_risk_score": self.global_risk.to_json(), "context": context, "notes": list(self.notes)}

    def warnings_json(self) -> list[dict]:
        """Return the warnings as [{"name", "detail"}]."""
        return [{"name": w.name, "detail": w.detail} for w in self.warnings]

    def inputs_json(self) -> list[dict]:
        """Return what each input held: count, latest time (ms) and status."""
        return [{name: getattr(i, name) for name in _field_names(InputStatus)} for i in self.inputs]


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _json_safe(value):
    """Return `value` as JSON-safe data: what _json_safe(asdict(value)) gives, without asdict's deep copies."""
    if hasattr(type(value), "__dataclass_fields__"):
        return {name: _json_safe(getattr(value, name)) for name in _field_names(type(value))}
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
