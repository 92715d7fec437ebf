from datetime import date, timedelta

import pytest
from hypothesis import given, settings, strategies as st

from analytics.flow import build_flow, visible_inputs
from analytics.flow.types import (
    DAY_MS, HOUR_MS, BasisPoint, CandlePoint, EtfFlowPoint, FlowInputs, FlowParams, FundingPoint,
    LiquidationZonePoint, OpenInterestPoint, SentimentPoint,
)

T = 400 * DAY_MS


def crowded_long_inputs(**overrides) -> FlowInputs:
    funding = tuple(FundingPoint(T - (60 - i) * 8 * HOUR_MS, 0.0001) for i in range(60))
    funding += (FundingPoint(T - HOUR_MS, 0.0006),)
    oi = tuple(OpenInterestPoint(T - (30 - i) * HOUR_MS, 100 + i) for i in range(31))
    bars = tuple(CandlePoint(T - (6 - i) * HOUR_MS, T - (5 - i) * HOUR_MS, 100 + i * 0.5, 10.0, 4.0) for i in range(6))
    base = dict(as_of_ms=T, funding=funding, open_interest=oi, basis=(BasisPoint(T, 102.6, 102.5),), candles=bars,
                liquidation_zones=(LiquidationZonePoint("long", 100, 101, 5e8, T - HOUR_MS),),
                sentiment=(SentimentPoint(0.9, "desk", T),))
    return FlowInputs(**(base | overrides))


def test_build_flow_no_inputs_is_neutral_with_notes():
    flow = build_flow(FlowInputs(as_of_ms=T))

    assert (flow.crowd_bias.value, flow.trap_index.value, flow.global_risk.value) == (0.0, 0.0, 0.0)
    assert flow.warnings == ()
    assert "funding: missing" in flow.notes
    assert all(p.contribution == 0 for p in flow.crowd_bias.parts)


def test_build_flow_crowded_long_raises_trap_and_warnings():
    flow = build_flow(crowded_long_inputs())

    names = {w.name for w in flow.warnings}
    assert flow.crowd_bias.value > 0.5
    assert {"funding_extreme_long", "cvd_bearish_divergence", "liquidation_magnet_below"} <= names
    assert flow.trap_index.value > 0.5


def test_build_flow_parts_reproduce_every_output():
    flow = build_flow(crowded_long_inputs())

    for out in (flow.crowd_bias, flow.trap_index, flow.global_risk):
        assert sum(p.contribution for p in out.parts) == pytest.approx(out.value, abs=1e-12)
        for p in out.parts:
            assert p.contribution == pytest.approx(0 if p.value is None else out.scale * p.weight * p.value)


def test_build_flow_ignores_points_after_as_of():
    later = crowded_long_inputs()
    leaked = crowded_long_inputs(funding=later.funding + (FundingPoint(T + 1, -0.01),),
                                 sentiment=later.sentiment + (SentimentPoint(-1.0, "desk", T + 1),))

    assert build_flow(leaked).parts_json() == build_flow(later).parts_json()


def test_build_flow_stale_funding_warns_and_contributes_nothing():
    flow = build_flow(FlowInputs(as_of_ms=T, funding=(FundingPoint(T - 13 * HOUR_MS, 0.001),)))

    assert [w.name for w in flow.warnings] == ["stale_input:funding"]
    assert {p.name: p.contribution for p in flow.crowd_bias.parts}["funding_level"] == 0.0


def test_visible_inputs_zone_without_valid_until_ages_out():
    zone = LiquidationZonePoint("long", 90, 91, 1.0, T - 4 * DAY_MS)

    seen, statuses = visible_inputs(FlowInputs(as_of_ms=T, liquidation_zones=(zone,)), FlowParams())

    assert seen.liquidation_zones == ()
    assert {s.name: s.status for s in statuses}["liquidation_zones"] == "stale"


def test_build_flow_news_source_is_pluggable():
    class FixedNews:
        def score(self, asset, as_of_ms):
            return -0.5 if asset == "BTC" else None

    flow = build_flow(FlowInputs(as_of_ms=T), news=FixedNews())

    assert flow.sentiment.score == -0.5
    assert {p.name: p.value for p in flow.crowd_bias.parts}["sentiment"] == -0.5


def test_build_flow_json_is_serialisable():
    import json

    flow = build_flow(crowded_long_inputs(etf_flows=(EtfFlowPoint(date(1971, 2, 4), "IBIT", -1e8, T - DAY_MS),)))

    text = json.dumps({"p": flow.parts_json(), "w": flow.warnings_json(), "i": flow.inputs_json()})
    assert "1971-02-04" in text


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
positive = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False)
ages = st.integers(min_value=-DAY_MS, max_value=40 * DAY_MS)


@st.composite
def any_inputs(draw) -> FlowInputs:
    ts = lambda: T - draw(ages)  # noqa: E731
    funding = sorted((FundingPoint(ts(), draw(st.floats(-0.01, 0.01))) for _ in range(draw(st.integers(0, 40)))),
                     key=lambda p: p.ts_ms)
    oi = sorted((OpenInterestPoint(ts(), draw(st.floats(0, 1e6))) for _ in range(draw(st.integers(0, 30)))),
                key=lambda p: p.ts_ms)
    bars = []
    for i in range(draw(st.integers(0, 12))):
        volume = draw(st.floats(0, 1e4))
        bars.append(CandlePoint(T - (12 - i) * HOUR_MS, T - (11 - i) * HOUR_MS, draw(positive), volume,
                                draw(st.none() | st.floats(0, 1).map(lambda f, v=volume: f * v))))
    zones = [LiquidationZonePoint(draw(st.sampled_from(["long", "short"])), lo, lo + draw(st.floats(0, 1e3)),
                                  draw(st.floats(0, 1e10)), ts(), draw(st.none() | st.just(T + 1)))
             for lo in draw(st.lists(positive, max_size=5))]
    sentiment = [SentimentPoint(draw(st.floats(-1, 1)), draw(st.sampled_from("abc")), ts())
                 for _ in range(draw(st.integers(0, 4)))]
    etf = [EtfFlowPoint(date(2024, 1, 1) + timedelta(days=draw(st.integers(0, 40))), draw(st.sampled_from("XY")),
                        draw(finite) * 1e3, ts()) for _ in range(draw(st.integers(0, 30)))]
    basis = [BasisPoint(ts(), draw(positive), draw(positive))] if draw(st.booleans()) else []
    return FlowInputs(T, "BTC", tuple(funding), tuple(oi), tuple(basis), (), tuple(bars), tuple(etf), tuple(zones),
                      tuple(sentiment), draw(st.none() | positive))


@settings(max_examples=300, deadline=None)
@given(any_inputs())
def test_build_flow_outputs_stay_in_bounds_for_any_inputs(inputs):
    flow = build_flow(inputs)

    assert -1.0 <= flow.crowd_bias.value <= 1.0
    assert 0.0 <= flow.trap_index.value <= 1.0
    assert 0.0 <= flow.global_risk.value <= 100.0
    assert sum(p.contribution for p in flow.global_risk.parts) == pytest.approx(flow.global_risk.value, abs=1e-9)
