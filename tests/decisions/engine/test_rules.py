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
