from dataclasses import FrozenInstanceError
from datetime import time
from decimal import Decimal as D

import pytest

from decisions.risk.limits import RiskLimits, RiskState


def test_risk_limits_default_matches_the_issue():
    limits = RiskLimits.default()

    assert (limits.daily_loss_fraction, limits.loss_streak, limits.sl_streak, limits.max_trades_per_day) == (
        D("0.02"), 3, 3, 3)
    assert (limits.timezone, limits.trading_start, limits.trading_end) == ("Europe/Warsaw", time(7), time(23))
    assert (limits.news_mute_minutes, limits.volatility_size_factor, limits.min_profit_factor,
            limits.profit_factor_min_trades, limits.rate_window_minutes) == (15, 0.5, 1.0, 10, 5)


def test_risk_limits_conservative_pauses_after_two():
    limits = RiskLimits.conservative()

    assert (limits.loss_streak, limits.sl_streak) == (2, 2)
    assert limits.with_changes(loss_streak=3, sl_streak=3) == RiskLimits.default()


def test_risk_limits_is_frozen():
    with pytest.raises(FrozenInstanceError):
        RiskLimits().loss_streak = 5


def test_risk_limits_tz_is_the_zone():
    assert RiskLimits().tz.key == "Europe/Warsaw"


@pytest.mark.parametrize(
    "changes, message",
    [
        # fractions strictly between 0 and 1
        ({"daily_loss_fraction": D("0")}, "daily_loss_fraction"),
        ({"weekly_drawdown_fraction": D("1")}, "weekly_drawdown_fraction"),
        ({"max_drawdown_fraction": D("-0.1")}, "max_drawdown_fraction"),
        # counts at least 1
        ({"loss_streak": 0}, "loss_streak"),
        ({"max_trades_per_day": 0}, "max_trades_per_day"),
        ({"max_orders_per_window": 0}, "max_orders_per_window"),
        # durations not negative
        ({"cooldown_minutes": -1}, "cooldown_minutes"),
        # ranges of the market gates
        ({"volatility_percentile": 100.5}, "volatility_percentile"),
        ({"volatility_size_factor": 0.0}, "volatility_size_factor"),
        ({"max_correlation": 1.1}, "max_correlation"),
        ({"max_spread_bps": 0.0}, "max_spread_bps"),
        ({"min_volume_24h_usdt": D("-1")}, "min_volume_24h_usdt"),
        # the calendar
        ({"timezone": "Mars/Olympus"}, "timezone"),
    ],
)
def test_risk_limits_invalid_value_raises_naming_the_field(changes, message):
    with pytest.raises(ValueError, match=message):
        RiskLimits(**changes)


@pytest.mark.parametrize(
    "changes",
    [
        {"cooldown_minutes": 0},            # no cooldown
        {"news_mute_minutes": 0},
        {"volatility_size_factor": 1.0},    # throttle reports only
        {"max_correlation": 1.0},
        {"trading_start": time(0), "trading_end": time(0)},   # open all day
        {"trading_start": time(22), "trading_end": time(6)},  # across midnight
        {"timezone": "UTC"},
    ],
)
def test_risk_limits_edge_values_are_valid(changes):
    assert RiskLimits(**changes)


def test_risk_limits_as_dict_is_json_safe():
    out = RiskLimits().as_dict()

    assert out["daily_loss_fraction"] == "0.02"
    assert out["trading_start"] == "07:00"
    assert out["timezone"] == "Europe/Warsaw"


def test_risk_state_defaults_to_no_trades_and_no_readings():
    state = RiskState(D("1"), D("1"), D("1"), D("1"))

    assert state.closed_trades == () and state.open_positions == () and state.recent_orders == ()
    assert state.spread_bps is None and dict(state.correlations) == {}
