import pytest
from decimal import Decimal as D

from analytics.snapshot import MarketSnapshot
from decisions.engine.rules import RuleParams, decide, stop_level


def _snap(**overrides) -> MarketSnapshot:
    base = dict(as_of_ms=0, close=100.0, atr=2.0, atr_fraction=0.02, trend="up", structure_labels=("HH", "HL"),
                last_swing_high=101.0, last_swing_low=95.0, break_of_structure="", momentum="up",
                roc_atr=1.5, range_expansion=1.0, volume_ratio=1.2)
    return MarketSnapshot(**(base | overrides))


def test_decide_up_structure_up_momentum_goes_long_with_atr_levels():
    signal = decide(_snap(), RuleParams(D("1.5")))

    assert signal.action == "LONG"
    assert (signal.entry_price, signal.stop_price, signal.target_price) == (D("100.0"), D("97.0"), D("109.0"))


def test_decide_down_structure_down_momentum_goes_short():
    signal = decide(_snap(trend="down", momentum="down"), RuleParams(D("1")))

    assert signal.action == "SHORT"
    assert signal.stop_price == D("102.0") and signal.target_price == D("94.0")


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


from hypothesis import given, strategies as st  # noqa: E402

from decisions.engine.rules import take_profit_ladder  # noqa: E402
from decisions.risk.gates import check_rr_min  # noqa: E402


def test_decide_long_builds_40_40_20_ladder_at_1_2_3_r():
    signal = decide(_snap(), RuleParams(D("1.5")))

    assert signal.take_profits == ((D("103.0"), D("0.4")), (D("106.0"), D("0.4")), (D("109.0"), D("0.2")))
    assert signal.target_price == D("109.0")


@given(st.decimals(min_value=D("1"), max_value=D("100000"), places=1),
       st.decimals(min_value=D("0.1"), max_value=D("500"), places=1), st.sampled_from(["LONG", "SHORT"]))
def test_levels_stop_on_losing_side_and_ladder_ordered(entry, distance, side):
    stop = entry - distance if side == "LONG" else entry + distance

    ladder = take_profit_ladder(entry, stop, RuleParams())

    prices = [p for p, _ in ladder]
    assert (stop < entry) if side == "LONG" else (stop > entry)
    assert prices == (sorted(prices) if side == "LONG" else sorted(prices, reverse=True))
    assert all((p > entry) if side == "LONG" else (p < entry) for p in prices)
    assert sum(share for _, share in ladder) == 1


@pytest.mark.parametrize(
    "rr_min, verdict",
    [(D("1.8"), "allow"), (D("1.81"), "block"), (D("1.3"), "allow")],  # 0.4*1 + 0.4*2 + 0.2*3 = 1.8
)
def test_check_rr_min_share_weighted(rr_min, verdict):
    ladder = take_profit_ladder(D("100"), D("98"), RuleParams())

    assert check_rr_min(D("100"), D("98"), ladder, rr_min).verdict == verdict


# Structure stop: beyond the last swing by a buffer, with the ATR stop as the fallback.
@pytest.mark.parametrize("action, swing_low, swing_high, stop, how", [
    # a long: 0.2 ATR (ATR 2) below the swing low 97
    ("LONG", 97.0, None, D("96.6"), "stop 0.2 ATR beyond the last swing low 97"),
    # a short: 0.2 ATR above the swing high 103
    ("SHORT", None, 103.0, D("103.4"), "stop 0.2 ATR beyond the last swing high 103"),
    # no swing: the ATR stop (1.5 ATR)
    ("LONG", None, None, D("97.0"), "no swing low for a structure stop"),
    # the swing is above a long's entry: wrong side, ATR stop
    ("LONG", 101.0, None, D("97.0"), "on the wrong side"),
    # the swing is 5 ATR away (> 4): ATR stop
    ("LONG", 90.0, None, D("97.0"), "beyond 4 ATR"),
])
def test_stop_level_structure_mode(action, swing_low, swing_high, stop, how):
    snapshot = MarketSnapshot(0, 100.0, 2.0, 0.02, "up", (), swing_high, swing_low, "", "up", 1.0, 1.0, 1.0)

    level, line = stop_level(snapshot, action, D("100.0"), RuleParams(stop_mode="structure"))

    assert level == stop
    assert how in line


def test_stop_level_atr_mode_ignores_the_swing():
    snapshot = MarketSnapshot(0, 100.0, 2.0, 0.02, "up", (), None, 99.0, "", "up", 1.0, 1.0, 1.0)

    assert stop_level(snapshot, "LONG", D("100.0"), RuleParams())[0] == D("97.0")
