"""The risk state's day- and week-start equity: the last point at or before each start, read together."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from decisions.risk_state import risk_limits_for, risk_state_load
from decisions.selectors import trading_config_get
from execution.models import EquityPoint
from execution.services import account_ensure
from market.services import instrument_ensure

pytestmark = pytest.mark.django_db
# Wednesday 2025-07-09 12:00 UTC; the limits' day and week start at Warsaw midnight (22:00 UTC the day before).
NOW = datetime(2025, 7, 9, 12, 0, tzinfo=UTC)
DAY_START = datetime(2025, 7, 8, 22, 0, tzinfo=UTC)
WEEK_START = datetime(2025, 7, 6, 22, 0, tzinfo=UTC)


@pytest.fixture
def account():
    return account_ensure(name="paper")


@pytest.fixture
def instrument():
    return instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")


def _point(account, ts, equity):
    EquityPoint.objects.create(account=account, ts=ts, balance_usdt=equity, unrealized_pnl_usdt=0, equity_usdt=equity)


def _state(account, instrument, now=NOW):
    limits = risk_limits_for(trading_config_get())
    return risk_state_load(account=account, instrument=instrument, now=now, limits=limits, atr_percentile=None)


def test_risk_state_load_start_equities_are_the_last_points_at_or_before_each_start(account, instrument):
    _point(account, WEEK_START - timedelta(hours=1), D("9000"))
    _point(account, WEEK_START, D("9100"))          # at the start counts
    _point(account, WEEK_START + timedelta(hours=1), D("9200"))
    _point(account, DAY_START - timedelta(minutes=15), D("9300"))
    _point(account, DAY_START + timedelta(minutes=15), D("9400"))

    state = _state(account, instrument)

    assert state.week_start_equity == D("9100")
    assert state.day_start_equity == D("9300")


def test_risk_state_load_without_points_before_the_starts_uses_the_starting_balance(account, instrument):
    _point(account, DAY_START + timedelta(hours=1), D("9400"))

    state = _state(account, instrument)

    assert state.day_start_equity == state.week_start_equity == account.starting_balance_usdt


def test_risk_state_load_on_the_first_day_of_the_week_both_starts_are_the_same_point(account, instrument):
    monday_noon = WEEK_START + timedelta(hours=14)
    _point(account, WEEK_START - timedelta(minutes=15), D("9050"))

    state = _state(account, instrument, now=monday_noon)

    assert state.day_start_equity == state.week_start_equity == D("9050")
