import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics.snapshot import Bars, MarketSnapshot, SnapshotParams, build_snapshot
from decisions.engine.edge import (
    COMPONENTS, Edge, EdgeInputs, EdgeParams, EdgeWeights, build_edge, inputs_from_snapshot, passes, side_sign,
)

FRESH_BELOW = {"bottom": 95.0, "top": 97.0, "size_atr": 1.0, "age_bars": 3, "state": "fresh"}
FRESH_ABOVE = {"bottom": 103.0, "top": 105.0, "size_atr": 1.0, "age_bars": 3, "state": "fresh"}
PARTIAL_BELOW = {**FRESH_BELOW, "state": "partially filled"}


def _edge(long: float, short: float = 0.5) -> Edge:
    return Edge(long, short, (), 0.0, 0.0)


def _part(edge: Edge, name: str):
    return next(p for p in edge.parts if p.name == name)


# --- weights and params validation


def test_edge_weights_defaults_sum_to_one():
    weights = EdgeWeights()

    assert sum(getattr(weights, name) for name in COMPONENTS) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("name", COMPONENTS)
@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
def test_edge_weights_bad_value_raises_naming_the_field(name, bad):
    with pytest.raises(ValueError, match=rf"EdgeWeights\.{name} must be a finite number >= 0"):
        EdgeWeights(**{name: bad})


@pytest.mark.parametrize(("fvg", "message"), [
    (0.30, r"EdgeWeights must sum to 1, got 1\.1"),       # 0.10 too much
    (0.10, r"EdgeWeights must sum to 1, got 0\.9"),       # 0.10 too little
    (0.20 + 2e-9, r"EdgeWeights must sum to 1"),          # just outside the 1e-9 tolerance
])
def test_edge_weights_sum_off_by_more_than_tolerance_raises(fvg, message):
    with pytest.raises(ValueError, match=message):
        EdgeWeights(fvg=fvg)


def test_edge_weights_sum_within_tolerance_is_accepted():
    weights = EdgeWeights(fvg=0.20 + 5e-10)

    assert weights.fvg > 0.20


@pytest.mark.parametrize(("overrides", "message"), [
    ({"threshold": 1.2}, r"EdgeParams\.threshold must be within \[0, 1\]"),
    ({"mtf_agree_bonus": -0.01}, r"EdgeParams\.mtf_agree_bonus must be within \[0, 1\]"),
    ({"mtf_conflict_penalty": math.nan}, r"EdgeParams\.mtf_conflict_penalty must be within \[0, 1\]"),
    ({"rr_full": 1.0}, r"EdgeParams\.rr_full must be a finite number > 1"),
])
def test_edge_params_bad_value_raises_naming_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        EdgeParams(**overrides)


# --- components, each alone so its renormalised weight is 1 and the edge equals its score

@pytest.mark.parametrize(("reward_risk", "expected"), [
    (0.5, 0.0),                 # below 1R: nothing
    (1.0, 0.0),                 # lower endpoint
    (1.0 + 1e-6, 5e-7),         # just above it: linear from 0
    (2.0, 0.5),                 # half way to rr_full 3
    (3.0 - 1e-6, 1.0 - 5e-7),   # just below the upper endpoint
    (3.0, 1.0),                 # upper endpoint
    (4.5, 1.0),                 # capped
])
def test_build_edge_risk_reward_linear_between_endpoints(reward_risk, expected):
    edge = build_edge(EdgeInputs(reward_risk=reward_risk))

    assert edge.edge_long == pytest.approx(expected, abs=1e-12)
    assert edge.edge_short == pytest.approx(expected, abs=1e-12)


def test_build_edge_risk_reward_full_score_follows_rr_full():
    edge = build_edge(EdgeInputs(reward_risk=3.0), EdgeParams(rr_full=5.0))

    assert edge.edge_long == pytest.approx(0.5)


@pytest.mark.parametrize("name", ["news", "whale", "onchain", "obi"])
@pytest.mark.parametrize(("reading", "long", "short"), [
    (1.0, 1.0, 0.0),
    (0.0, 0.5, 0.5),
    (-0.5, 0.25, 0.75),
    (3.0, 1.0, 0.0),            # out of range: clipped to 1
])
def test_build_edge_signed_component_maps_reading_to_half_plus_half(name, reading, long, short):
    edge = build_edge(EdgeInputs(**{name: reading}))

    assert (edge.edge_long, edge.edge_short) == pytest.approx((long, short))
    assert _part(edge, name).available


@pytest.mark.parametrize(("bias", "trap", "risk", "long", "short"), [
    (0.0, None, None, 0.5, 0.5),            # balanced crowd: neutral
    (0.6, None, None, 0.2, 0.8),            # crowd long: contrarian short
    (-0.6, None, None, 0.8, 0.2),           # crowd short: contrarian long
    (0.6, 0.5, None, 0.1, 0.8),             # the trap halves the crowded (long) side
    (-0.6, 0.5, None, 0.8, 0.1),
    (0.0, 1.0, None, 0.5, 0.5),             # no crowded side: the trap has nothing to squeeze
    (0.6, None, 50.0, 0.1, 0.4),            # global risk 50 halves both
    (0.6, 0.5, 100.0, 0.0, 0.0),            # maximal risk: no flow edge either way
    (None, None, 20.0, 0.4, 0.4),           # only the risk known
])
def test_build_edge_flow_contrarian_with_trap_and_risk(bias, trap, risk, long, short):
    edge = build_edge(EdgeInputs(crowd_bias=bias, trap_index=trap, global_risk=risk))

    assert (edge.edge_long, edge.edge_short) == pytest.approx((long, short))


@pytest.mark.parametrize(("below", "above", "close", "long", "short"), [
    (FRESH_BELOW, None, 100.0, 0.85, 0.65),         # support for the long, target for the short
    (PARTIAL_BELOW, None, 100.0, 0.675, 0.575),     # partially filled counts half
    (None, FRESH_ABOVE, 100.0, 0.65, 0.85),         # mirrored
    (FRESH_BELOW, FRESH_ABOVE, 100.0, 1.0, 1.0),    # both: symmetric
    (FRESH_BELOW, None, 95.0, 0.85, 0.65),          # close at the bottom edge: still holds
    (FRESH_BELOW, None, 94.9, 0.15, 0.5),           # close through the gap: failed support weakens the long
    (None, FRESH_ABOVE, 105.1, 0.5, 0.15),          # failed resistance weakens the short
    (FRESH_BELOW, None, None, 0.85, 0.65),          # no close: trust the snapshot's side
    ({**FRESH_BELOW, "state": "odd"}, None, 100.0, 0.5, 0.5),   # unknown state: no weight
])
def test_build_edge_fvg_support_magnet_and_wrong_side(below, above, close, long, short):
    edge = build_edge(EdgeInputs(fvg_below=below, fvg_above=above, close=close))

    assert (edge.edge_long, edge.edge_short) == pytest.approx((long, short))


# --- renormalisation and missing inputs


def test_build_edge_missing_components_renormalise_the_rest():
    edge = build_edge(EdgeInputs(news=1.0, obi=-1.0))   # weights 0.10 and 0.15 -> 0.4 and 0.6

    assert (edge.edge_long, edge.edge_short) == pytest.approx((0.4, 0.6))
    assert _part(edge, "news").weight == pytest.approx(0.4)
    assert "renormalised to 0.400" in _part(edge, "news").note
    missing = _part(edge, "whale")
    assert (missing.available, missing.weight, missing.long) == (False, 0.0, None)
    assert missing.note == "missing: weight 0.10 left out"


def test_build_edge_all_components_present_keeps_the_weights():
    inputs = EdgeInputs(fvg_below=FRESH_BELOW, close=100.0, reward_risk=2.0, news=0.0, whale=0.0, onchain=0.0,
                        obi=0.0, crowd_bias=0.0)

    edge = build_edge(inputs)

    assert [p.weight for p in edge.parts] == pytest.approx([0.20, 0.20, 0.10, 0.10, 0.10, 0.15, 0.15])
    assert not any("renormalised" in p.note for p in edge.parts)
    assert edge.edge_long == pytest.approx(0.2 * 0.85 + 0.2 * 0.5 + 0.6 * 0.5)


@pytest.mark.parametrize("missing", [None, math.nan, math.inf])
def test_build_edge_nothing_available_is_neutral(missing):
    edge = build_edge(EdgeInputs(news=missing, obi=missing, reward_risk=missing))

    assert (edge.edge_long, edge.edge_short) == (0.5, 0.5)
    assert not any(p.available for p in edge.parts)


# --- multi-timeframe adjustment

@pytest.mark.parametrize(("state", "score", "adjust_long", "adjust_short"), [
    # agreement: the bonus goes to the side the score points to
    ("agree", 0.5, 0.05, 0.0),
    ("agree", -0.5, 0.0, 0.05),
    ("agree", 0.0, 0.0, 0.0),
    ("agree", None, 0.0, 0.0),
    # conflict: the penalty hits each side the score does not point to
    ("conflict", 0.3, 0.0, -0.10),
    ("conflict", -0.3, -0.10, 0.0),
    ("conflict", 0.0, -0.10, -0.10),
    ("conflict", None, -0.10, -0.10),
    # neither: nothing
    ("neither", 0.7, 0.0, 0.0),
    (None, 0.7, 0.0, 0.0),
])
def test_build_edge_mtf_adjustment_by_state_and_score(state, score, adjust_long, adjust_short):
    edge = build_edge(EdgeInputs(news=0.0, mtf_state=state, mtf_score=score))

    assert (edge.mtf_adjustment_long, edge.mtf_adjustment_short) == (adjust_long, adjust_short)
    assert (edge.edge_long, edge.edge_short) == pytest.approx((0.5 + adjust_long, 0.5 + adjust_short))


@pytest.mark.parametrize(("news", "state", "score", "ok"), [
    # the agreement bonus lifts 0.57 exactly onto the 0.62 threshold
    (0.14, "agree", 0.4, True),
    (0.1398, "agree", 0.4, False),          # 0.5699 + 0.05: just below
    (0.1402, "agree", 0.4, True),           # just above
    (0.14, "neither", 0.4, False),          # no bonus: 0.57
    # the conflict penalty drops 0.72 exactly onto it
    (0.44, "conflict", -0.2, True),
    (0.4398, "conflict", -0.2, False),
    (0.44, "conflict", 0.2, True),          # score points to the long: no penalty, 0.72
])
def test_passes_at_and_around_threshold_after_mtf(news, state, score, ok):
    edge = build_edge(EdgeInputs(news=news, mtf_state=state, mtf_score=score))

    assert passes(edge, "LONG")[0] is ok


def test_build_edge_clips_after_mtf_adjustment():
    high = build_edge(EdgeInputs(news=1.0, mtf_state="agree", mtf_score=0.9))
    low = build_edge(EdgeInputs(news=-1.0, mtf_state="conflict", mtf_score=0.0))

    assert high.edge_long == 1.0
    assert low.edge_long == 0.0


# --- the threshold

@pytest.mark.parametrize(("value", "ok", "reason"), [
    (0.58, False, "edge_long 0.58 below threshold 0.62"),
    (0.62 - 1e-6, False, "edge_long 0.619999 below threshold 0.620000"),
    (0.6199, False, "edge_long 0.6199 below threshold 0.6200"),
    (0.62, True, "edge_long 0.62 at or above threshold 0.62"),
    (0.62 + 1e-6, True, "edge_long 0.62 at or above threshold 0.62"),
    (0.62 - 1e-12, True, "edge_long 0.62 at or above threshold 0.62"),  # float noise is forgiven
    (0.75, True, "edge_long 0.75 at or above threshold 0.62"),
])
def test_passes_long_table_around_threshold(value, ok, reason):
    assert passes(_edge(value), 1) == (ok, reason)


def test_passes_short_reads_the_short_edge_and_custom_threshold():
    assert passes(_edge(0.9, 0.55), "SHORT", EdgeParams(threshold=0.5)) == (
        True, "edge_short 0.55 at or above threshold 0.50")


@pytest.mark.parametrize("side", [0, "FLAT", 2, None])
def test_side_sign_unknown_side_raises(side):
    with pytest.raises(ValueError, match="side must be 1, -1, 'LONG' or 'SHORT'"):
        side_sign(side)


# --- from a snapshot

def _snapshot(**extra) -> MarketSnapshot:
    return MarketSnapshot(as_of_ms=0, close=100.0, atr=2.0, atr_fraction=0.02, trend="up", structure_labels=(),
                          last_swing_high=None, last_swing_low=None, break_of_structure="", momentum="up",
                          roc_atr=0.0, range_expansion=1.0, volume_ratio=1.0, extra=extra)


def test_inputs_from_snapshot_reads_gaps_obi_mtf_and_takes_others():
    snapshot = _snapshot(fvg_below=FRESH_BELOW, fvg_above=None, obi=0.4, mtf_state="agree", mtf_score=0.3)

    inputs = inputs_from_snapshot(snapshot, reward_risk=2.0, news=0.2, whale=math.nan)

    assert inputs.fvg_below == FRESH_BELOW and inputs.fvg_above is None
    assert (inputs.close, inputs.obi, inputs.mtf_state, inputs.mtf_score) == (100.0, 0.4, "agree", 0.3)
    assert (inputs.reward_risk, inputs.news, inputs.whale) == (2.0, 0.2, None)


@pytest.mark.parametrize("extra", [
    {"obi": math.nan, "mtf_score": None, "mtf_state": "sideways"},
    {},
])
def test_inputs_from_snapshot_nan_or_absent_features_are_missing(extra):
    inputs = inputs_from_snapshot(_snapshot(**extra))

    assert (inputs.obi, inputs.mtf_score, inputs.mtf_state, inputs.fvg_below) == (None, None, None, None)


def test_inputs_from_snapshot_unknown_input_raises():
    with pytest.raises(TypeError, match="unknown inputs: sentiment"):
        inputs_from_snapshot(_snapshot(), sentiment=0.3)


def test_build_edge_real_candles_stays_in_range_and_reads_the_gaps(market_data_dir):
    import pandas as pd

    frame = pd.read_csv(market_data_dir / "binance_usdm_BTCUSDT_15m_2025-07-04_2025-12-31.csv.gz", nrows=1500)
    cols = [frame[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close", "volume")]
    bars = Bars(frame["open_time_ms"].to_numpy(dtype=np.int64), *cols, 900_000)

    for n in range(200, len(bars) + 1, 100):
        snapshot = build_snapshot(bars.upto(n), SnapshotParams())
        edge = build_edge(inputs_from_snapshot(snapshot, reward_risk=1.8))

        assert 0.0 <= edge.edge_long <= 1.0 and 0.0 <= edge.edge_short <= 1.0
        has_gap = snapshot.extra["fvg_below"] is not None or snapshot.extra["fvg_above"] is not None
        assert _part(edge, "fvg").available is has_gap


# --- invariants

_any_number = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))
_gap = st.one_of(st.none(), st.fixed_dictionaries({
    "bottom": st.floats(50, 150), "top": st.floats(50, 150), "size_atr": st.floats(0, 5),
    "age_bars": st.integers(0, 100), "state": st.sampled_from(["fresh", "partially filled", "other"])}))
_inputs = st.builds(
    EdgeInputs, fvg_below=_gap, fvg_above=_gap, close=_any_number, reward_risk=_any_number, news=_any_number,
    whale=_any_number, onchain=_any_number, obi=_any_number, crowd_bias=_any_number, trap_index=_any_number,
    global_risk=_any_number, mtf_state=st.sampled_from([None, "agree", "neither", "conflict"]),
    mtf_score=_any_number)


@given(_inputs)
def test_build_edge_any_inputs_edges_within_unit_interval(inputs):
    edge = build_edge(inputs)

    assert 0.0 <= edge.edge_long <= 1.0
    assert 0.0 <= edge.edge_short <= 1.0
    assert sum(p.weight for p in edge.parts) == pytest.approx(1.0) or not any(p.available for p in edge.parts)


_reading = st.floats(-1, 1)


@given(_inputs, st.sampled_from(["news", "whale", "onchain", "obi"]), _reading, _reading)
def test_build_edge_reading_toward_long_never_lowers_edge_long(inputs, name, a, b):
    low, high = sorted((a, b))
    before = build_edge(replace(inputs, **{name: low}))
    after = build_edge(replace(inputs, **{name: high}))

    assert after.edge_long >= before.edge_long
    assert after.edge_short <= before.edge_short


@given(_inputs, _reading, _reading, st.floats(0, 1), st.floats(0, 100))
def test_build_edge_crowd_turning_short_never_lowers_edge_long(inputs, a, b, trap, risk):
    lower, higher = sorted((a, b))
    base = replace(inputs, trap_index=trap, global_risk=risk)

    before = build_edge(replace(base, crowd_bias=higher))
    after = build_edge(replace(base, crowd_bias=lower))     # the crowd leans less long: contrarian long gains

    assert after.edge_long >= before.edge_long
    assert after.edge_short <= before.edge_short


@given(_inputs, st.floats(0, 10), st.floats(0, 10))
def test_build_edge_higher_reward_risk_never_lowers_either_edge(inputs, a, b):
    low, high = sorted((a, b))

    before = build_edge(replace(inputs, reward_risk=low))
    after = build_edge(replace(inputs, reward_risk=high))

    assert after.edge_long >= before.edge_long and after.edge_short >= before.edge_short


@given(_inputs, st.sampled_from(["trap_index", "global_risk"]), st.floats(0, 1), st.floats(0, 1))
def test_build_edge_more_trap_or_risk_never_raises_either_edge(inputs, name, a, b):
    lower, higher = sorted((a, b))
    scale = 100.0 if name == "global_risk" else 1.0

    before = build_edge(replace(inputs, **{name: lower * scale}))
    after = build_edge(replace(inputs, **{name: higher * scale}))

    assert after.edge_long <= before.edge_long and after.edge_short <= before.edge_short
