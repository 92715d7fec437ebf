import math
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from decisions.engine.edge import Edge
from decisions.engine.fusion import FusionWeights, RiskLevelParams, entry_zone, fuse, risk_level


def _edge(long: float, short: float) -> Edge:
    return Edge(long, short, (), 0.0, 0.0)


# --- weights

def test_fusion_weights_default_is_065_035():
    assert (FusionWeights().technical, FusionWeights().model) == (0.65, 0.35)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"technical": -0.1, "model": 1.1}, r"FusionWeights\.technical must be a finite number >= 0"),
    ({"model": math.nan}, r"FusionWeights\.model must be a finite number >= 0"),
    ({"technical": 0.7}, r"FusionWeights must sum to 1, got 1\.05"),
    ({"technical": 0.65 + 2e-9}, r"FusionWeights must sum to 1"),     # just outside the tolerance
])
def test_fusion_weights_invalid_raises(overrides, message):
    with pytest.raises(ValueError, match=message):
        FusionWeights(**overrides)


# --- fuse

@pytest.mark.parametrize(("side", "strength", "edge", "confidence", "technical", "model"), [
    (1, 0.8, _edge(0.7, 0.2), 0.65 * 0.8 + 0.35 * 0.7, 0.52, 0.245),    # long reads edge_long
    (-1, 0.8, _edge(0.7, 0.2), 0.65 * 0.8 + 0.35 * 0.2, 0.52, 0.07),    # short reads edge_short
    (1, 1.0, _edge(1.0, 0.0), 1.0, 0.65, 0.35),                          # the top
    (1, 1.7, _edge(0.5, 0.5), 0.65 + 0.175, 0.65, 0.175),                # strength clipped to 1
    (1, math.nan, _edge(0.5, 0.5), 0.175, 0.0, 0.175),                   # NaN strength is no evidence
])
def test_fuse_weighted_sum_of_strength_and_side_edge(side, strength, edge, confidence, technical, model):
    fused = fuse(side, strength, edge)

    assert fused.side == side
    assert fused.confidence == pytest.approx(confidence)
    assert (fused.technical_part, fused.model_part) == pytest.approx((technical, model))


def test_fuse_no_side_has_zero_confidence():
    fused = fuse(0, 0.9, _edge(0.9, 0.9))

    assert (fused.side, fused.confidence, fused.reason) == (0, 0.0, "no technical side: confidence 0")


def test_fuse_reason_shows_the_arithmetic():
    fused = fuse(1, 0.8, _edge(0.7, 0.2), FusionWeights(0.5, 0.5))

    assert fused.reason == "LONG: technical 0.50 x 0.80 + model 0.50 x edge 0.70 = confidence 0.750"


@pytest.mark.parametrize("side", [2, "LONG", True])
def test_fuse_unknown_side_raises(side):
    with pytest.raises(ValueError, match="technical_side must be 1, 0 or -1"):
        fuse(side, 0.5, _edge(0.5, 0.5))


@given(st.sampled_from([1, 0, -1]), st.floats(allow_nan=True, allow_infinity=True),
       st.floats(0, 1), st.floats(0, 1), st.floats(0, 1))
def test_fuse_confidence_always_within_unit_interval(side, strength, long, short, technical):
    fused = fuse(side, strength, _edge(long, short), FusionWeights(technical, 1.0 - technical))

    assert 0.0 <= fused.confidence <= 1.0


# --- risk level

@pytest.mark.parametrize(("global_risk", "atr_percentile", "confidence", "level"), [
    # global risk thresholds 40 / 70
    (39.9, 10.0, 0.8, "low"),
    (40.0, 10.0, 0.8, "medium"),
    (69.9, 10.0, 0.8, "medium"),
    (70.0, 10.0, 0.8, "high"),
    # ATR percentile thresholds 70 / 90
    (10.0, 69.9, 0.8, "low"),
    (10.0, 70.0, 0.8, "medium"),
    (10.0, 90.0, 0.8, "high"),
    # confidence thresholds 0.65 / 0.50
    (10.0, 10.0, 0.65, "low"),
    (10.0, 10.0, 0.6499, "medium"),
    (10.0, 10.0, 0.50, "medium"),
    (10.0, 10.0, 0.4999, "high"),
    (10.0, 10.0, math.nan, "high"),
    # missing market readings
    (None, 10.0, 0.8, "low"),               # one reading is enough
    (math.nan, None, 0.8, "medium"),        # none: not assumed calm
    (None, 95.0, 0.8, "high"),
])
def test_risk_level_worst_reading_wins(global_risk, atr_percentile, confidence, level):
    assert risk_level(global_risk, atr_percentile, confidence) == level


def test_risk_level_params_unordered_thresholds_raise():
    with pytest.raises(ValueError, match="RiskLevelParams global_risk thresholds must be finite and ordered"):
        RiskLevelParams(medium_global_risk=80.0)


# --- entry zone

@pytest.mark.parametrize(("side", "entry", "atr", "zone"), [
    (1, D("100.03"), D("2"), (D("99.5"), D("100.5"))),      # long: chase bound rounded down, toward entry
    (-1, D("100.03"), D("2"), (D("99.6"), D("100.6"))),     # short: chase bound rounded up, toward entry
    (1, D("100.00"), D("2"), (D("99.5"), D("100.5"))),      # on the grid already
    (1, D("100.03"), D("0"), (D("100.0"), D("100.1"))),     # zero width: the ticks around entry
    (1, D("100.03"), 0.2, (D("99.9"), D("100.1"))),         # float ATR accepted
])
def test_entry_zone_on_ticks_around_entry(side, entry, atr, zone):
    assert entry_zone(side, entry, atr, tick=D("0.1")) == zone


def test_entry_zone_width_is_a_parameter():
    assert entry_zone(1, D("100"), D("2"), D("1"), tick=D("0.5")) == (D("98.0"), D("102.0"))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"side": 0}, "side must be 1 or -1"),
    ({"tick": D("0")}, "tick must be > 0"),
    ({"atr": D("-1")}, "atr and width_atr must be >= 0"),
    ({"atr": math.nan}, "atr must be finite"),
])
def test_entry_zone_invalid_input_raises(kwargs, message):
    args = {"side": 1, "entry": D("100"), "atr": D("2"), "tick": D("0.1")} | kwargs

    with pytest.raises(ValueError, match=message):
        entry_zone(**args)


@given(st.sampled_from([1, -1]),
       st.decimals(min_value=D("0.001"), max_value=D("100000"), places=3),
       st.decimals(min_value=D("0"), max_value=D("5000"), places=2),
       st.decimals(min_value=D("0"), max_value=D("2"), places=2),
       st.sampled_from([D("0.01"), D("0.1"), D("0.5"), D("1"), D("0.0001")]))
def test_entry_zone_contains_entry_and_sits_on_ticks(side, entry, atr, width, tick):
    low, high = entry_zone(side, entry, atr, width, tick=tick)

    assert low <= entry <= high
    assert low % tick == 0 and high % tick == 0
    # Never more chasing than width ATRs, beyond what it takes to keep the entry on the grid.
    chase = high - entry if side > 0 else entry - low
    assert chase <= max(width * atr, tick)
