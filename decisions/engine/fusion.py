"""Fuse the technical rule with the edge model into one confidence; rate the risk; place the entry zone.

Pure: no Django, no I/O, no clock.

- confidence = technical * strength + model * edge(side), with the weights summing to 1 (0.65 /
  0.35 by default), strength and edge in [0, 1]; no technical side means confidence 0.
- risk level = the worst of three readings: global risk (>= 70 high, >= 40 medium), ATR
  percentile (>= 90 high, >= 70 medium) and confidence (< 0.50 high, < 0.65 medium); a missing
  reading is skipped, and with neither market reading known the level is at least medium.
- entry zone = entry -/+ width_atr * ATR on the tick grid, entry always inside. The adverse bound
  (above entry for a long, below for a short) is rounded towards the entry so the grid never
  allows more chasing than width_atr; the favourable bound is rounded away from it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from decisions.engine.edge import SUM_TOLERANCE, Edge, is_weight

LEVELS = ("low", "medium", "high")


@dataclass(frozen=True, slots=True)
class FusionWeights:
    """Share of the technical rule and of the edge model in the confidence; non-negative, summing to 1."""

    technical: float = 0.65
    model: float = 0.35

    def __post_init__(self) -> None:
        for name in ("technical", "model"):
            value = getattr(self, name)
            if not is_weight(value):
                raise ValueError(f"FusionWeights.{name} must be a finite number >= 0, got {value!r}")
        total = self.technical + self.model
        if abs(total - 1.0) > SUM_TOLERANCE:
            raise ValueError(f"FusionWeights must sum to 1, got {total:.6g}")


@dataclass(frozen=True, slots=True)
class Fused:
    side: int                   # 1 long, -1 short, 0 none
    confidence: float           # 0..1
    technical_part: float       # technical weight * strength
    model_part: float           # model weight * edge of the side
    reason: str


def _unit(value: float) -> float:
    # A NaN strength or edge is no evidence at all, not an error that should stop the decision.
    return min(max(value, 0.0), 1.0) if math.isfinite(value) else 0.0


def fuse(technical_side: int, technical_strength: float, edge: Edge,
         weights: FusionWeights = FusionWeights()) -> Fused:
    """Return the side and confidence in [0, 1] from the technical signal and the edge of that side."""
    if technical_side not in (1, 0, -1) or isinstance(technical_side, bool):
        raise ValueError(f"technical_side must be 1, 0 or -1, got {technical_side!r}")
    if technical_side == 0:
        return Fused(0, 0.0, 0.0, 0.0, "no technical side: confidence 0")
    strength = _unit(float(technical_strength))
    model_edge = _unit(edge.for_side(technical_side))
    technical_part = weights.technical * strength
    model_part = weights.model * model_edge
    confidence = min(max(technical_part + model_part, 0.0), 1.0)
    name = "LONG" if technical_side > 0 else "SHORT"
    reason = (f"{name}: technical {weights.technical:.2f} x {strength:.2f} + model {weights.model:.2f} x "
              f"edge {model_edge:.2f} = confidence {confidence:.3f}")
    return Fused(technical_side, confidence, technical_part, model_part, reason)


@dataclass(frozen=True, slots=True)
class RiskLevelParams:
    # 70 matches RuleParams.max_global_risk: above it the rule opens nothing at all.
    high_global_risk: float = 70.0          # 0..100
    medium_global_risk: float = 40.0
    high_atr_percentile: float = 90.0       # 0..100, as analytics.features.volatility.atr_percentile
    medium_atr_percentile: float = 70.0
    high_below_confidence: float = 0.50     # a coin flip or worse
    medium_below_confidence: float = 0.65

    def __post_init__(self) -> None:
        pairs = (("global_risk", self.medium_global_risk, self.high_global_risk),
                 ("atr_percentile", self.medium_atr_percentile, self.high_atr_percentile),
                 ("confidence", self.high_below_confidence, self.medium_below_confidence))
        for name, lower, upper in pairs:
            if not (math.isfinite(lower) and math.isfinite(upper)) or lower > upper:
                raise ValueError(
                    f"RiskLevelParams {name} thresholds must be finite and ordered, got {lower!r}, {upper!r}")


def _level_at_least(value: float | None, medium: float, high: float) -> int | None:
    if value is None or not math.isfinite(value):
        return None
    return 2 if value >= high else 1 if value >= medium else 0


def risk_level(global_risk: float | None, atr_percentile: float | None, confidence: float,
               params: RiskLevelParams = RiskLevelParams()) -> str:
    """Return "low", "medium" or "high": the worst of the global risk, ATR percentile and confidence readings."""
    market = [level for level in (_level_at_least(global_risk, params.medium_global_risk, params.high_global_risk),
                                  _level_at_least(atr_percentile, params.medium_atr_percentile,
                                                  params.high_atr_percentile)) if level is not None]
    # Knowing nothing about the market is not the same as knowing it is calm.
    market_level = max(market) if market else 1
    if not math.isfinite(confidence) or confidence < params.high_below_confidence:
        confidence_level = 2
    else:
        confidence_level = 1 if confidence < params.medium_below_confidence else 0
    return LEVELS[max(market_level, confidence_level)]


def _to_decimal(value: Decimal | float | int, name: str) -> Decimal:
    number = value if isinstance(value, Decimal) else Decimal(repr(value) if isinstance(value, float) else value)
    if not number.is_finite():
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


def _on_grid(price: Decimal, tick: Decimal, rounding: str) -> Decimal:
    return (price / tick).to_integral_value(rounding=rounding) * tick


def entry_zone(side: int, entry: Decimal, atr: Decimal | float, width_atr: Decimal = Decimal("0.25"), *,
               tick: Decimal) -> tuple[Decimal, Decimal]:
    """Return (low, high) on the tick grid around `entry`, width_atr ATRs each way, entry inside."""
    if side not in (1, -1) or isinstance(side, bool):
        raise ValueError(f"side must be 1 or -1, got {side!r}")
    entry, atr_value = _to_decimal(entry, "entry"), _to_decimal(atr, "atr")
    width, tick = _to_decimal(width_atr, "width_atr"), _to_decimal(tick, "tick")
    if tick <= 0:
        raise ValueError(f"tick must be > 0, got {tick}")
    if atr_value < 0 or width < 0:
        raise ValueError(f"atr and width_atr must be >= 0, got {atr_value}, {width}")
    reach = width * atr_value
    floor_entry, ceil_entry = _on_grid(entry, tick, ROUND_FLOOR), _on_grid(entry, tick, ROUND_CEILING)
    if side > 0:
        low = _on_grid(entry - reach, tick, ROUND_FLOOR)
        high = max(_on_grid(entry + reach, tick, ROUND_FLOOR), ceil_entry)
    else:
        low = min(_on_grid(entry - reach, tick, ROUND_CEILING), floor_entry)
        high = _on_grid(entry + reach, tick, ROUND_CEILING)
    return low, high
