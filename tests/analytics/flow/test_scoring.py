import pytest

from analytics.flow.scoring import crowd_bias, explain, flow_warnings, global_risk, trap_index
from analytics.flow.types import (
    Cluster, DerivativesContext, EtfContext, FlowParams, LiquidationContext, SentimentContext,
)

P = FlowParams()
NO_LIQ = LiquidationContext()


def test_explain_sums_weighted_values_and_zeroes_missing():
    out = explain({"a": 0.5, "b": None}, (("a", 0.6), ("b", 0.4)), {}, -1, 1)

    assert out.value == pytest.approx(0.3)
    assert [(x.name, x.contribution, x.note) for x in out.parts] == [("a", pytest.approx(0.3), ""),
                                                                     ("b", 0.0, "missing input")]


def test_flow_params_weights_not_summing_to_one_raise():
    with pytest.raises(ValueError, match="crowd_weights must be non-negative and sum to 1"):
        FlowParams(crowd_weights=(("funding_level", 0.5),))


def test_crowd_bias_matches_hand_computation():
    d = DerivativesContext(funding_rate=0.0003, funding_z=1.0, basis_bps=5.0, oi_trend_pct=5.0)
    s = SentimentContext(score=0.4)

    bias = crowd_bias(d, s, P)

    # funding 0.5*0.35 + z 0.5*0.15 + basis 0.5*0.2 + oi +0.5*0.15 + sentiment 0.4*0.15
    assert bias.value == pytest.approx(0.175 + 0.075 + 0.1 + 0.075 + 0.06)
    assert sum(p.contribution for p in bias.parts) == pytest.approx(bias.value)


def test_crowd_bias_oi_build_follows_funding_side():
    d = DerivativesContext(funding_rate=-0.0003, oi_trend_pct=20.0)

    parts = {p.name: p.value for p in crowd_bias(d, SentimentContext(), P).parts}

    assert parts["oi_build"] == -1.0
    assert parts["funding_level"] == pytest.approx(-1.0)


def test_trap_index_long_crowd_with_bearish_divergence_and_magnet_below():
    d = DerivativesContext(cvd_trend=-0.2, cvd_divergence="bearish", cvd_divergence_strength=1.0, oi_trend_pct=5.0)
    liq = LiquidationContext(price=100.0, nearest_below=Cluster(95, 96, "long", 1.0, 4.0), magnet="below",
                             magnet_strength=0.5)
    e = EtfContext(total_1d_usd=-1.0, surprise_z=-1.0)

    trap = trap_index(0.6, d, e, liq, P)

    # 0.6*0.35 + 1*0.2 + 0.5*0.2 + 0.5*0.15 + 0.5*0.1
    assert trap.value == pytest.approx(0.21 + 0.2 + 0.1 + 0.075 + 0.05)


def test_trap_index_magnet_with_the_crowd_adds_nothing():
    liq = LiquidationContext(price=100.0, nearest_above=Cluster(101, 102, "short", 1.0, 1.0), magnet="above",
                             magnet_strength=1.0)

    trap = trap_index(0.5, DerivativesContext(), EtfContext(), liq, P)

    assert {p.name: p.value for p in trap.parts}["magnet_against_crowd"] == 0.0


def test_global_risk_matches_hand_computation():
    d = DerivativesContext(funding_rate=0.0005, funding_z=1.0, oi_spike_pct=-2.5)
    e = EtfContext(total_1d_usd=-1.0, streak_days=-3, surprise_z=-1.0)
    liq = LiquidationContext(price=100.0, nearest_below=Cluster(98, 99, "long", 1.0, 1.5))
    s = SentimentContext(score=-0.5)

    risk = global_risk(0.4, d, e, liq, s, P)

    # funding max(1, 0.5)=1 *.2, oi .5*.15, trap .4*.25, etf max(.5, .5)*.15, liq (1-1.5/3)*.15, sent .5*.1
    expected = 100 * (0.2 + 0.075 + 0.1 + 0.075 + 0.075 + 0.05)
    assert risk.value == pytest.approx(expected)
    assert sum(p.contribution for p in risk.parts) == pytest.approx(expected)


def test_flow_warnings_name_each_condition():
    d = DerivativesContext(funding_rate=0.0006, funding_extreme="long", oi_spike_pct=6.0, cvd_trend=-0.1,
                           price_change_pct=1.0, cvd_divergence="bearish")
    e = EtfContext(total_1d_usd=-1.0, streak_days=-3, surprise_z=-2.5)
    liq = LiquidationContext(magnet="below", magnet_strength=0.5)
    s = SentimentContext(score=0.8)

    names = [w.name for w in flow_warnings(0.7, 0.65, d, e, liq, s, P)]

    assert names == ["funding_extreme_long", "oi_spike", "cvd_bearish_divergence", "etf_outflow_streak",
                     "etf_outflow_surprise", "liquidation_magnet_below", "sentiment_extreme_greed",
                     "crowded_long_trap"]


def test_flow_warnings_quiet_market_has_none():
    assert flow_warnings(0.1, 0.1, DerivativesContext(), EtfContext(), NO_LIQ, SentimentContext(), P) == []
