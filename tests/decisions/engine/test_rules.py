import pytest
from decimal import Decimal as D

from analytics.snapshot import MarketSnapshot
from decisions.engine.rules import RuleParams, decide


def _snap(**overrides) -> MarketSnapshot:
    base = dict(as_of_ms=0, close=100.0, atr=2.0, atr_fraction=0.02, trend="up", structure_labels=("HH", "HL"),
                last_swing_high=101.0, last_swing_low=95.0, break_of_structure="", momentum="up",
                roc_atr=1.5, range_expansion=1.0, volume_ratio=1.2)
    return MarketSnapshot(**(base | overrides))


def test_decide_up_structure_up_momentum_goes_long_with_atr_levels():
    signal = decide(_snap(), RuleParams(D("1.5"), D("3")))

    assert signal.action == "LONG"
    assert (signal.entry_price, signal.stop_price, signal.target_price) == (D("100.0"), D("97.0"), D("106.0"))


def test_decide_down_structure_down_momentum_goes_short():
    signal = decide(_snap(trend="down", momentum="down"), RuleParams(D("1"), D("2")))

    assert signal.action == "SHORT"
    assert signal.stop_price == D("102.0") and signal.target_price == D("96.0")


def test_decide_conflicting_signals_stays_flat_and_says_why():
    signal = decide(_snap(momentum="down"), RuleParams())

    assert signal.action == "FLAT"
    assert "structure up, momentum down" in signal.reason
    assert len(signal.rationale) == 3


from decisions.engine.rules import FlowView, flow_objections  # noqa: E402


@pytest.mark.parametrize(
    "flow, objection",
    [
        # each filter just past its threshold objects to a long, naming the reason
        (FlowView(funding_rate=0.00051), "above the long limit"),
        (FlowView(oi_change_4h_pct=-2.0), "open interest falling"),
        (FlowView(liquidation_magnet="above"), "liquidation magnet above"),
        (FlowView(etf_5d_usd=-1e6), "ETF flows"),
        (FlowView(global_risk=70.1), "global risk 70/100 above 70"),
        (FlowView(warnings=("oi_spike",)), "warning oi_spike"),
    ],
)
def test_decide_flow_filter_turns_long_into_flat_with_reason(flow, objection):
    signal = decide(_snap(), RuleParams(), flow)

    assert signal.action == "FLAT"
    assert objection in signal.reason


@pytest.mark.parametrize(
    "flow",
    [
        FlowView(),                                              # nothing known: nothing objects
        FlowView(funding_rate=0.0005, oi_change_4h_pct=-1.9, liquidation_magnet="below", etf_5d_usd=0.0,
                 global_risk=70.0, warnings=("cvd_bearish_divergence",)),  # every value just inside
    ],
)
def test_decide_flow_inside_limits_keeps_long(flow):
    assert decide(_snap(), RuleParams(), flow).action == "LONG"


def test_flow_objections_mirror_for_short():
    flow = FlowView(funding_rate=-0.0006, liquidation_magnet="below", etf_5d_usd=5e6)

    objections = flow_objections("SHORT", flow, RuleParams())

    assert len(objections) == 3
