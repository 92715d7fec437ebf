from decimal import Decimal as D

from hypothesis import given, strategies as st

from decisions.risk.sizing import SizingInput, round_to_tick, size_position


def make_input(**overrides) -> SizingInput:
    base = dict(equity_usdt=D("10000"), risk_fraction=D("0.01"), entry_price=D("100"),
                stop_price=D("98"), step_size=D("0.001"), min_notional_usdt=D("5"))
    return SizingInput(**(base | overrides))


def test_size_position_rounds_down_to_step():
    assert size_position(make_input(stop_price=D("97"))) == D("33.333")


def test_size_position_below_min_notional_returns_zero():
    assert size_position(make_input(equity_usdt=D("1"))) == 0


def test_size_position_tight_stop_capped_by_leverage():
    # 1 % risk over a 0.10 stop would be 1000 units (100 000 USDT); 3x leverage caps it at 300.
    assert size_position(make_input(stop_price=D("99.9"))) == D("300")


def test_size_position_zero_stop_distance_returns_zero():
    assert size_position(make_input(stop_price=D("100"))) == 0


def test_round_to_tick_nearest():
    assert round_to_tick(D("100.26"), D("0.1")) == D("100.3")


@given(st.decimals(min_value=D("0.01"), max_value=D("99.99"), places=2))
def test_size_position_never_risks_more_than_budget(stop):
    inp = make_input(stop_price=stop)

    assert size_position(inp) * (inp.entry_price - stop) <= D("100")  # 1 % of 10 000
