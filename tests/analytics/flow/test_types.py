"""The flow's JSON: built straight from the dataclasses, it equals what asdict gave."""
import json
from dataclasses import asdict, fields
from datetime import date

from hypothesis import given, settings

from analytics.flow import build_flow
from analytics.flow.types import DAY_MS, EtfFlowPoint, _json_safe
from tests.analytics.flow.test_build_flow import T, any_inputs, crowded_long_inputs


def _asdict_json(flow) -> tuple:
    context = {name: _json_safe(asdict(getattr(flow, name))) for name in ("derivatives", "etf", "liquidations",
                                                                          "sentiment")}
    parts = {"crowd_bias": flow.crowd_bias, "trap_index": flow.trap_index, "global_risk_score": flow.global_risk}
    parts = {key: {"value": e.value, "scale": e.scale, "parts": [_json_safe(asdict(p)) for p in e.parts]}
             for key, e in parts.items()}
    return {**parts, "context": context, "notes": list(flow.notes)}, [asdict(i) for i in flow.inputs]


def _dumps(value) -> str:
    return json.dumps(value, sort_keys=False)


def test_flow_json_equals_asdict_json_with_dates_and_clusters():
    flow = build_flow(crowded_long_inputs(etf_flows=(EtfFlowPoint(date(1971, 2, 4), "IBIT", -1e8, T - DAY_MS),)))
    parts, inputs = _asdict_json(flow)

    assert flow.liquidations.nearest_below is not None   # a nested dataclass
    assert _dumps(flow.parts_json()) == _dumps(parts)
    assert flow.inputs_json() == inputs


@settings(max_examples=150, deadline=None)
@given(any_inputs())
def test_flow_json_equals_asdict_json_for_any_inputs(inputs):
    flow = build_flow(inputs)
    parts, statuses = _asdict_json(flow)

    assert _dumps(flow.parts_json()) == _dumps(parts)
    assert _dumps(flow.inputs_json()) == _dumps(statuses)


def test_json_safe_dataclass_keeps_field_order():
    flow = build_flow(crowded_long_inputs())

    assert list(_json_safe(flow.derivatives)) == [f.name for f in fields(flow.derivatives)]
