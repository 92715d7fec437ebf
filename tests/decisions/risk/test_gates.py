from datetime import time
from decimal import Decimal as D

import pytest

from decisions.risk.gates import (
    GateResult,
    check_correlation,
    check_costs_vs_target,
    check_count,
    check_daily_loss,
    check_max_drawdown,
    check_min_volume,
    check_no_open_position,
    check_profit_factor,
    check_quiet_period,
    check_spread,
    check_streak,
    check_trading_hours,
    check_turnover,
    check_volatility,
    check_weekly_drawdown,
    first_block,
    in_window,
)


@pytest.mark.parametrize(
    "start, now, verdict",
    [
        (D("10000"), D("9801"), "allow"),   # -1.99 %: inside the limit
        (D("10000"), D("9800"), "block"),   # exactly -2 %: the limit itself blocks
        (D("10000"), D("10500"), "allow"),  # a winning day
        (D("0"), D("0"), "block"),          # no equity at all
    ],
)
def test_check_daily_loss_limit_two_percent(start, now, verdict):
    assert check_daily_loss(start, now, D("0.02")).verdict == verdict


def test_check_daily_loss_reason_names_the_change():
    assert "-2.50%" in check_daily_loss(D("10000"), D("9750"), D("0.02")).reason


def test_first_block_returns_first_blocking_gate():
    gates = [GateResult("a", "allow", ""), check_no_open_position(True), GateResult("c", "block", "")]

    assert first_block(gates).name == "one_position"


@pytest.mark.parametrize(
    "target, verdict",
    [
        (D("101"), "allow"),    # 1 % target, 0.1 % round trip = 10 % of it
        (D("100.3"), "block"),  # 0.3 % target: costs are a third of the move
        (D("99"), "allow"),     # a short's target below entry counts the same
    ],
)
def test_check_costs_vs_target_quarter_limit(target, verdict):
    gate = check_costs_vs_target(D("100"), target, D("0.0004"), D("1"), D("0.25"))

    assert gate.verdict == verdict


# --- the gates added with the risk wall -------------------------------------------------------

@pytest.mark.parametrize(
    "low, verdict",
    [
        (D("9501"), "allow"),   # -4.99 %: inside the 5 % weekly limit
        (D("9500"), "block"),   # exactly -5 %: the limit itself blocks
        (D("9499"), "block"),   # beyond it
    ],
)
def test_check_weekly_drawdown_limit_five_percent(low, verdict):
    assert check_weekly_drawdown(D("10000"), low, D("0.05")).verdict == verdict


@pytest.mark.parametrize(
    "now, verdict",
    [
        (D("9001"), "allow"),   # -9.99 % from the peak
        (D("9000"), "block"),   # exactly -10 %
        (D("8999"), "block"),
        (D("0"), "block"),      # wiped out
    ],
)
def test_check_max_drawdown_limit_ten_percent(now, verdict):
    assert check_max_drawdown(D("10000"), now, D("0.10")).verdict == verdict


@pytest.mark.parametrize("check, args", [
    # no reference equity: block rather than divide by zero
    (check_weekly_drawdown, (D("0"), D("0"), D("0.05"))),
    (check_max_drawdown, (D("0"), D("0"), D("0.1"))),
])
def test_drawdown_gates_without_reference_equity_block(check, args):
    assert check(*args).blocked


@pytest.mark.parametrize(
    "streak, verdict",
    [
        (2, "allow"),   # one below
        (3, "block"),   # the 3rd in a row pauses
        (4, "block"),
    ],
)
def test_check_streak_limit_three(streak, verdict):
    assert check_streak("loss_streak", streak, 3, "losses").verdict == verdict


@pytest.mark.parametrize(
    "pf, trades, verdict",
    [
        # judged from the 10th trade on
        (0.5, 9, "allow"),
        (0.5, 10, "block"),
        (0.5, 11, "block"),
        # at, just below and above 1.0 with enough trades
        (1.0, 10, "allow"),
        (0.99, 10, "block"),
        (1.01, 10, "allow"),
        (float("inf"), 12, "allow"),   # no losing trade
    ],
)
def test_check_profit_factor_below_one_after_ten_trades(pf, trades, verdict):
    assert check_profit_factor(pf, trades, 1.0, 10).verdict == verdict


@pytest.mark.parametrize(
    "count, verdict",
    [
        (2, "allow"),   # a 3rd trade may still open
        (3, "block"),   # three done: the 4th is blocked
        (4, "block"),
    ],
)
def test_check_count_limit_three(count, verdict):
    assert check_count("trades_per_day", count, 3, "entries today").verdict == verdict


@pytest.mark.parametrize(
    "since_ms, verdict",
    [
        (None, "allow"),                    # never happened
        (1_000_000 - 15 * 60_000, "allow"),  # exactly 15 min ago: the quiet period is over
        (1_000_000 - 15 * 60_000 + 1, "block"),  # 1 ms short of it
        (1_000_000 - 60_000, "block"),
    ],
)
def test_check_quiet_period_fifteen_minutes(since_ms, verdict):
    assert check_quiet_period("news_mute", 1_000_000, since_ms, 15, "hard news").verdict == verdict


@pytest.mark.parametrize(
    "side, others, verdict",
    [
        # same direction: above the limit blocks, at it passes
        ("LONG", [("ETHUSDT", "LONG", 0.81)], "block"),
        ("LONG", [("ETHUSDT", "LONG", 0.80)], "allow"),
        ("LONG", [("ETHUSDT", "LONG", 0.79)], "allow"),
        # the other direction of a positively correlated symbol hedges
        ("LONG", [("ETHUSDT", "SHORT", 0.95)], "allow"),
        # anti-correlated and held the other way: the same bet
        ("LONG", [("XUSDT", "SHORT", -0.81)], "block"),
        ("LONG", [("XUSDT", "SHORT", -0.80)], "allow"),
        ("SHORT", [("XUSDT", "SHORT", -0.95)], "allow"),
        ("SHORT", [], "allow"),  # nothing open
    ],
)
def test_check_correlation_no_same_direction_stacking(side, others, verdict):
    assert check_correlation(side, others, 0.8).verdict == verdict


@pytest.mark.parametrize(
    "turnover, verdict",
    [
        (D("49999"), "allow"),   # cap = 5 x 10,000
        (D("50000"), "block"),   # reached
        (D("50001"), "block"),
    ],
)
def test_check_turnover_five_times_equity(turnover, verdict):
    assert check_turnover(turnover, D("10000"), D("5"), 5).verdict == verdict


@pytest.mark.parametrize(
    "spread, verdict",
    [
        (4.99, "allow"),
        (5.0, "allow"),     # the cap itself passes
        (5.01, "block"),
        (None, "allow"),    # no book reading (backtests)
    ],
)
def test_check_spread_cap_five_bps(spread, verdict):
    assert check_spread(spread, 5.0).verdict == verdict


@pytest.mark.parametrize(
    "volume, verdict",
    [
        (D("9999999"), "block"),
        (D("10000000"), "allow"),   # the floor itself passes
        (D("10000001"), "allow"),
        (9_999_999.5, "block"),     # a float reading compares too
        (None, "allow"),
    ],
)
def test_check_min_volume_ten_million(volume, verdict):
    assert check_min_volume(volume, D("10000000")).verdict == verdict


@pytest.mark.parametrize(
    "percentile, verdict, factor",
    [
        (89.9, "allow", 1.0),
        (90.0, "allow", 1.0),     # at the threshold: full size
        (90.1, "shrink", 0.5),    # above it: half size
        (None, "allow", 1.0),     # ATR still warming up
        (float("nan"), "allow", 1.0),
    ],
)
def test_check_volatility_above_ninety_halves_size(percentile, verdict, factor):
    gate = check_volatility(percentile, 90.0, 0.5)

    assert (gate.verdict, gate.size_factor) == (verdict, factor)
    assert not gate.blocked


@pytest.mark.parametrize(
    "clock, start, end, inside",
    [
        # a day window 07:00-23:00: start inclusive, end exclusive
        (time(6, 59), time(7), time(23), False),
        (time(7, 0), time(7), time(23), True),
        (time(22, 59), time(7), time(23), True),
        (time(23, 0), time(7), time(23), False),
        # a window across midnight 22:00-06:00
        (time(21, 59), time(22), time(6), False),
        (time(22, 0), time(22), time(6), True),
        (time(0, 0), time(22), time(6), True),
        (time(5, 59), time(22), time(6), True),
        (time(6, 0), time(22), time(6), False),
        (time(12, 0), time(22), time(6), False),
        # start == end: open all day
        (time(3, 0), time(0), time(0), True),
    ],
)
def test_check_trading_hours_window(clock, start, end, inside):
    assert in_window(clock, start, end) is inside
    assert check_trading_hours(clock, start, end, "Europe/Warsaw").blocked is not inside


def test_gate_result_as_dict_keeps_the_original_shape_for_allow_and_block():
    assert GateResult("a", "block", "why").as_dict() == {"name": "a", "verdict": "block", "reason": "why"}


def test_gate_result_as_dict_shrink_carries_size_factor():
    assert GateResult("v", "shrink", "hot", 0.5).as_dict() == {
        "name": "v", "verdict": "shrink", "reason": "hot", "size_factor": 0.5}


@pytest.mark.parametrize("kwargs, message", [
    ({"verdict": "maybe"}, "unknown verdict"),
    ({"verdict": "shrink", "size_factor": 0.0}, "outside"),
    ({"verdict": "shrink", "size_factor": 1.5}, "outside"),
])
def test_gate_result_invalid_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GateResult(name="x", reason="", **kwargs)


def test_first_block_skips_shrink():
    gates = [GateResult("v", "shrink", "", 0.5), GateResult("b", "block", "")]

    assert first_block(gates).name == "b"
