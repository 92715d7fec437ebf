"""The edge: how much the evidence favours a long and a short, each in [0, 1]. Pure: no Django, no I/O.

edge_side = sum(weight_i * score_i(side)) / sum(weight_i) over the AVAILABLE components (a missing
input is left out and the others' weights renormalised), then the multi-timeframe adjustment, then
clipped to [0, 1]. Every component scores a side in [0, 1], 0.5 being neutral:

- fvg: s = state factor (fresh 1.0, partially filled 0.5). A gap on its named side of the close
  (the "below" gap's bottom <= close, the "above" gap's top >= close) counts for the side it
  supports (+0.35 s: bullish gap below for a long, bearish gap above for a short) and as a
  target magnet for the other side (+0.15 s). A support gap the close has traded through (wrong
  side) weakens the side it supported (-0.35 s). Score = 0.5 + the sum, so in [0.15, 1].
- risk_reward: clip((R - 1) / (rr_full - 1), 0, 1), the same for both sides (the ladder's R
  multiples do not depend on the side).
- news, whale, onchain, obi: (1 + s) / 2 for a long, (1 - s) / 2 for a short, s in [-1, 1].
- flow (contrarian): long (1 - crowd_bias) / 2, short (1 + crowd_bias) / 2; the crowded side
  (sign of crowd_bias) is multiplied by (1 - trap_index), and both by (1 - global_risk / 100).
- multi-timeframe: state "agree" adds `mtf_agree_bonus` to the side mtf_score points to (none
  when it is 0 or missing); state "conflict" subtracts `mtf_conflict_penalty` from each side that
  mtf_score does not point to (score <= 0 for the long, >= 0 for the short, both when 0 or missing).

Out-of-range inputs are clipped to their documented range; None, NaN and infinities are missing.
With nothing available both edges start at 0.5 and only the multi-timeframe adjustment applies.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from analytics.snapshot import MarketSnapshot

COMPONENTS = ("fvg", "risk_reward", "news", "whale", "onchain", "obi", "flow")
# A float sum of weights that were meant to total 1 misses by a few ulps; 1e-9 forgives only that.
SUM_TOLERANCE = 1e-9
# Same idea for the threshold: an edge computed as exactly 0.62 may come out as 0.6199999999999999.
THRESHOLD_TOLERANCE = 1e-9
FVG_SUPPORT = 0.35
FVG_MAGNET = 0.15
FVG_STATE_FACTOR = {"fresh": 1.0, "partially filled": 0.5}


def is_weight(value) -> bool:
    """Return whether `value` is a finite real number >= 0 (bools are not weights)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value >= 0


@dataclass(frozen=True, slots=True)
class EdgeWeights:
    """Weight of each component in the edge; finite, non-negative, summing to 1."""

    # Price-derived evidence measured on every bar carries the most: the gap structure and the
    # trade's own reward/risk (0.20 each). The live book and the derivatives flow are measured,
    # not inferred, so 0.15 each. The three sentiment readings are the noisiest and slowest,
    # sharing 0.30 equally, so no single headline can carry a trade.
    fvg: float = 0.20
    risk_reward: float = 0.20
    news: float = 0.10
    whale: float = 0.10
    onchain: float = 0.10
    obi: float = 0.15
    flow: float = 0.15

    def __post_init__(self) -> None:
        for name in COMPONENTS:
            value = getattr(self, name)
            if not is_weight(value):
                raise ValueError(f"EdgeWeights.{name} must be a finite number >= 0, got {value!r}")
        total = sum(getattr(self, name) for name in COMPONENTS)
        if abs(total - 1.0) > SUM_TOLERANCE:
            raise ValueError(f"EdgeWeights must sum to 1, got {total:.6g}")


@dataclass(frozen=True, slots=True)
class EdgeParams:
    weights: EdgeWeights = field(default_factory=EdgeWeights)
    mtf_agree_bonus: float = 0.05
    mtf_conflict_penalty: float = 0.10
    threshold: float = 0.62         # an edge at or above this lets the side trade
    rr_full: float = 3.0            # reward/risk at which the risk_reward component reaches 1.0

    def __post_init__(self) -> None:
        for name in ("mtf_agree_bonus", "mtf_conflict_penalty", "threshold"):
            value = getattr(self, name)
            if not math.isfinite(value) or not 0.0 <= value <= 1.0:
                raise ValueError(f"EdgeParams.{name} must be within [0, 1], got {value!r}")
        if not math.isfinite(self.rr_full) or self.rr_full <= 1.0:
            # The component is 0 at R <= 1, so its full score must lie above 1.
            raise ValueError(f"EdgeParams.rr_full must be a finite number > 1, got {self.rr_full!r}")


@dataclass(frozen=True, slots=True)
class EdgeInputs:
    """What the edge reads; None where the input is missing."""

    fvg_below: Mapping | None = None    # {bottom, top, size_atr, age_bars, state} as in MarketSnapshot.extra
    fvg_above: Mapping | None = None
    close: float | None = None
    reward_risk: float | None = None    # share-weighted R multiple of the take-profit ladder
    news: float | None = None           # sentiment readings, -1..1 (+ = bullish)
    whale: float | None = None
    onchain: float | None = None
    obi: float | None = None            # order-book imbalance, -1..1 (+ = bids heavier)
    crowd_bias: float | None = None     # -1..1, + = crowd long
    trap_index: float | None = None     # 0..1, how likely the crowded side is squeezed
    global_risk: float | None = None    # 0..100
    mtf_state: str | None = None        # "agree", "neither" or "conflict"
    mtf_score: float | None = None      # -1..1, + = higher timeframes up


_INPUT_FIELDS = frozenset(f.name for f in fields(EdgeInputs))


@dataclass(frozen=True, slots=True)
class EdgePart:
    name: str
    weight: float               # renormalised weight actually applied; 0 when not available
    long: float | None          # component score for each side, None when not available
    short: float | None
    available: bool
    note: str


@dataclass(frozen=True, slots=True)
class Edge:
    edge_long: float
    edge_short: float
    parts: tuple[EdgePart, ...]
    mtf_adjustment_long: float
    mtf_adjustment_short: float

    def for_side(self, side: int | str) -> float:
        """Return the edge of `side` (1 / "LONG" or -1 / "SHORT")."""
        return self.edge_long if side_sign(side) > 0 else self.edge_short


@dataclass(frozen=True, slots=True)
class _Score:
    long: float
    short: float
    note: str


def side_sign(side: int | str) -> int:
    """Return 1 for a long (1, "LONG"), -1 for a short (-1, "SHORT"); raise ValueError otherwise."""
    sign = {1: 1, -1: -1, "LONG": 1, "SHORT": -1}.get(side.upper() if isinstance(side, str) else side)
    if sign is None:
        raise ValueError(f"side must be 1, -1, 'LONG' or 'SHORT', got {side!r}")
    return sign


def _finite(value) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _clip(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _gap_holds(gap: Mapping, close: float | None, below: bool) -> bool:
    # Without a close, trust the snapshot: a "below" gap always sits at or below its close.
    if close is None:
        return True
    edge = _finite(gap.get("bottom") if below else gap.get("top"))
    if edge is None:
        return True
    return close >= edge if below else close <= edge


def _gap_effect(gap: Mapping, close: float | None, below: bool) -> tuple[float, float, str]:
    state = str(gap.get("state") or "unknown")
    strength = FVG_STATE_FACTOR.get(state, 0.0)
    where = "below" if below else "above"
    if not _gap_holds(gap, close, below):
        # The close traded through the gap that should have held: a failed support (or resistance).
        loss = -FVG_SUPPORT * strength
        note = f"{state} gap {where} broken by the close"
        return (loss, 0.0, note) if below else (0.0, loss, note)
    support, magnet = FVG_SUPPORT * strength, FVG_MAGNET * strength
    roles = ("support", "target") if below else ("target", "support")
    note = f"{state} gap {where} ({roles[0]} for a long, {roles[1]} for a short)"
    return (support, magnet, note) if below else (magnet, support, note)


def _fvg(inputs: EdgeInputs) -> _Score | None:
    if inputs.fvg_below is None and inputs.fvg_above is None:
        return None
    close = _finite(inputs.close)
    long = short = 0.5
    notes = []
    for gap, below in ((inputs.fvg_below, True), (inputs.fvg_above, False)):
        if gap is not None:
            delta_long, delta_short, note = _gap_effect(gap, close, below)
            long, short = long + delta_long, short + delta_short
            notes.append(note)
    return _Score(_clip(long, 0.0, 1.0), _clip(short, 0.0, 1.0), "; ".join(notes))


def _risk_reward(inputs: EdgeInputs, params: EdgeParams) -> _Score | None:
    r = _finite(inputs.reward_risk)
    if r is None:
        return None
    score = _clip((r - 1.0) / (params.rr_full - 1.0), 0.0, 1.0)
    return _Score(score, score, f"reward/risk {r:.2f}R (0 at 1R, full at {params.rr_full:g}R)")


def _signed(value, name: str) -> _Score | None:
    s = _finite(value)
    if s is None:
        return None
    s = _clip(s, -1.0, 1.0)
    return _Score((1.0 + s) / 2.0, (1.0 - s) / 2.0, f"{name} {s:+.2f}")


def _flow(inputs: EdgeInputs) -> _Score | None:
    bias, trap, risk = _finite(inputs.crowd_bias), _finite(inputs.trap_index), _finite(inputs.global_risk)
    if bias is None and trap is None and risk is None:
        return None
    bias = _clip(bias, -1.0, 1.0) if bias is not None else 0.0
    trap = _clip(trap, 0.0, 1.0) if trap is not None else 0.0
    calm = 1.0 - _clip(risk, 0.0, 100.0) / 100.0 if risk is not None else 1.0
    # Contrarian: the crowd's side is the one that gets squeezed.
    long, short = (1.0 - bias) / 2.0, (1.0 + bias) / 2.0
    if bias > 0:
        long *= 1.0 - trap
    elif bias < 0:
        short *= 1.0 - trap
    note = f"crowd bias {bias:+.2f}, trap index {trap:.2f}, global risk {(1.0 - calm) * 100:.0f}/100"
    return _Score(long * calm, short * calm, note)


def _component(name: str, inputs: EdgeInputs, params: EdgeParams) -> _Score | None:
    if name == "fvg":
        return _fvg(inputs)
    if name == "risk_reward":
        return _risk_reward(inputs, params)
    if name == "flow":
        return _flow(inputs)
    return _signed(getattr(inputs, name), name)


def _mtf_adjustment(inputs: EdgeInputs, params: EdgeParams) -> tuple[float, float]:
    score = _finite(inputs.mtf_score)
    direction = 0 if score is None or score == 0 else (1 if score > 0 else -1)
    if inputs.mtf_state == "agree":
        bonus = params.mtf_agree_bonus
        return (bonus if direction > 0 else 0.0, bonus if direction < 0 else 0.0)
    if inputs.mtf_state == "conflict":
        penalty = params.mtf_conflict_penalty
        return (-penalty if direction <= 0 else 0.0, -penalty if direction >= 0 else 0.0)
    return 0.0, 0.0


def build_edge(inputs: EdgeInputs, params: EdgeParams = EdgeParams()) -> Edge:
    """Return the long and short edges in [0, 1] with each component's contribution."""
    scores = {name: _component(name, inputs, params) for name in COMPONENTS}
    total = sum(getattr(params.weights, n) for n, s in scores.items() if s is not None)
    parts = []
    long_sum = short_sum = 0.0
    for name, score in scores.items():
        weight = getattr(params.weights, name)
        if score is None:
            parts.append(EdgePart(name, 0.0, None, None, False, f"missing: weight {weight:.2f} left out"))
            continue
        applied = weight / total if total > 0 else 0.0
        long_sum += applied * score.long
        short_sum += applied * score.short
        note = score.note if abs(applied - weight) <= SUM_TOLERANCE else (
            f"{score.note} (weight {weight:.2f} renormalised to {applied:.3f})")
        parts.append(EdgePart(name, applied, score.long, score.short, True, note))
    if total <= 0:
        long_sum = short_sum = 0.5
    adjust_long, adjust_short = _mtf_adjustment(inputs, params)
    return Edge(_clip(long_sum + adjust_long, 0.0, 1.0), _clip(short_sum + adjust_short, 0.0, 1.0),
                tuple(parts), adjust_long, adjust_short)


def _pair(value: float, threshold: float) -> tuple[str, str]:
    # Show more digits when two decimals would print an edge just below the threshold as equal to it.
    for digits in (2, 4, 6):
        a, b = f"{value:.{digits}f}", f"{threshold:.{digits}f}"
        if a != b or value >= threshold - THRESHOLD_TOLERANCE:
            return a, b
    return f"{value!r}", f"{threshold!r}"


def passes(edge: Edge, side: int | str, params: EdgeParams = EdgeParams()) -> tuple[bool, str]:
    """Return whether `side`'s edge reaches the threshold, and why (e.g. "edge_long 0.58 below threshold 0.62")."""
    name = "edge_long" if side_sign(side) > 0 else "edge_short"
    value = edge.for_side(side)
    ok = value >= params.threshold - THRESHOLD_TOLERANCE
    shown, limit = _pair(value, params.threshold)
    return ok, f"{name} {shown} {'at or above' if ok else 'below'} threshold {limit}"


def inputs_from_snapshot(snapshot: MarketSnapshot, **others) -> EdgeInputs:
    """Return EdgeInputs with the gaps, close, OBI and MTF view of `snapshot`, plus `others` (e.g. news=0.3)."""
    unknown = others.keys() - _INPUT_FIELDS
    if unknown:
        raise TypeError(f"inputs_from_snapshot got unknown inputs: {', '.join(sorted(unknown))}")
    extra = snapshot.extra
    state = extra.get("mtf_state")
    values = {key: extra.get(key) if isinstance(extra.get(key), Mapping) else None for key in ("fvg_below", "fvg_above")}
    values.update(close=_finite(snapshot.close), obi=_finite(extra.get("obi")),
                  mtf_state=state if state in ("agree", "neither", "conflict") else None,
                  mtf_score=_finite(extra.get("mtf_score")))
    values.update((key, _float_or_raw(key, value)) for key, value in others.items())
    # Built once: this runs on every bar of a backtest that reaches the edge.
    return EdgeInputs(**values)


def _float_or_raw(key: str, value):
    # Numbers from the shell may arrive as NaN when a source is stale: treat them as missing.
    if key in ("fvg_below", "fvg_above", "mtf_state"):
        return value
    return _finite(value)
