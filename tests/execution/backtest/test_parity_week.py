"""Parity over a week: real candles replayed by the engine's feed runner and by the backtester trade identically.

The live side is what `manage.py run_bot --source replay` runs at each bar: `FeedRunner.step` (store
the released bar, then the engine cycle on the simulated clock, paper account of the replay source).
The django-q2 schedules stand aside while the engine owns the clock (decisions.tasks.engine_owns_clock),
so no task is on this path.
"""
from datetime import datetime, timezone
from decimal import Decimal as D

import pytest
from django.conf import settings

from decisions.selectors import trading_config_get
from execution.backtest.engine import backtest_run
from execution.backtest.world import Candles, InstrumentSpec
from execution.clock import FeedRunner
from execution.models import EquityPoint, Position
from execution.selectors import account_name_for
from market.feeds import ReplayFeed
from market.models import DataSource
from market.services import instrument_ensure
from tests.execution.backtest.test_parity import (
    STEP_MS, _backtest_decisions, _backtest_fills, _backtest_orders, _live_decisions, _live_fills, _live_orders,
    _mode_on,
)
from tests.market_fixtures import BTC_15M_FILE, DAY_BARS, WARMUP_BARS, real_frame

WEEK_BARS = 7 * DAY_BARS


@pytest.fixture
def week_through_both(market_data_dir, db):
    """Replay a week through FeedRunner (as run_bot does) and the same candles through backtest_run; return both."""
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap",
                                   data_source=DataSource.REPLAY)
    instrument.is_active = True
    instrument.save()
    config = _mode_on(trading_config_get())
    config.save()
    runner = FeedRunner(ReplayFeed(market_data_dir / BTC_15M_FILE), instrument, config.decision_timeframe,
                        settings.DECISION_INTERVAL_MINUTES)
    assert runner.warm_up(WARMUP_BARS) == WARMUP_BARS
    # step(), the unit FeedRunner.run repeats: run() retries a failing bar forever, which would hang a test.
    steps = [runner.step() for _ in range(WEEK_BARS)]
    assert all(step is not None for step in steps)

    frame = real_frame(market_data_dir, BTC_15M_FILE, WARMUP_BARS + WEEK_BARS)
    first = datetime.fromtimestamp((int(frame["open_time_ms"].iloc[WARMUP_BARS]) + STEP_MS) / 1000, tz=timezone.utc)
    first_position = Position.objects.order_by("pk").first()
    result = backtest_run(candles={"15m": Candles.from_frame("15m", frame)}, instrument=InstrumentSpec.of(instrument),
                          config=config, starting_equity=D(settings.PAPER_STARTING_EQUITY_USDT), start=first,
                          account_name=account_name_for(instrument.data_source),
                          first_position_id=first_position.pk if first_position else 1)
    return instrument, result


def test_parity_week_replayed_by_the_feed_runner_and_backtested_decides_orders_fills_and_books_identically(
        week_through_both):
    instrument, result = week_through_both

    live_decisions = _live_decisions(instrument)
    live_orders = _live_orders()
    live_fills = _live_fills()
    live_equity = [(p.ts, p.balance_usdt, p.unrealized_pnl_usdt, p.equity_usdt)
                   for p in EquityPoint.objects.order_by("ts")]

    assert len(live_decisions) == WEEK_BARS
    assert len(live_equity) == WEEK_BARS
    assert {row[2] for row in live_orders} >= {"entry", "tp1", "tp2", "sl"}
    assert _backtest_decisions(result) == live_decisions
    assert _backtest_orders(result) == live_orders
    assert _backtest_fills(result) == live_fills
    assert [(p.ts, p.balance_usdt, p.unrealized_pnl_usdt, p.equity_usdt) for p in result.equity] == live_equity
