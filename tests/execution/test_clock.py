"""The engine on a simulated clock: a replay of real candles and the simulated market."""
from io import StringIO

import pytest
from django.core.management import call_command

from decisions.models import Decision
from execution.clock import FeedRunner
from execution.models import Account, EquityPoint
from market.feeds import ReplayFeed
from market.models import Candle, DataSource
from market.services import instrument_ensure

FILE = "binance_usdm_BTCUSDT_15m_2025-07-04_2025-12-31.csv.gz"


@pytest.mark.django_db
def test_feed_runner_replay_stores_bars_and_decides_each_close(market_data_dir):
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap",
                                   data_source=DataSource.REPLAY)
    instrument.is_active = True
    instrument.save()
    runner = FeedRunner(ReplayFeed(market_data_dir / FILE), instrument, "15m", decision_interval_minutes=5)

    warmed = runner.warm_up(300)
    steps = runner.run(bars_per_second=0, max_steps=24)

    assert (warmed, steps) == (300, 24)
    assert Candle.objects.filter(instrument=instrument).count() == 324
    assert Decision.objects.filter(instrument=instrument).count() == 24
    account = Account.objects.get(name="paper-replay")
    assert EquityPoint.objects.filter(account=account).count() == 24
    assert not Account.objects.filter(name="paper").exists()


@pytest.mark.django_db
def test_run_bot_simulated_source_says_so_and_trades_the_simulated_instrument():
    out = StringIO()

    call_command("run_bot", source="simulated", no_web=True, no_workers=True, max_steps=12, speed=0, stdout=out)

    text = out.getvalue()
    assert "SIMULATED market - not real prices" in text
    assert "stopped after 12 bars" in text
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap",
                                   data_source=DataSource.SIMULATED)
    assert instrument.is_active
    assert Decision.objects.filter(instrument=instrument).count() == 12


@pytest.mark.django_db
def test_run_bot_replay_resumes_after_last_replayed_bar():
    call_command("run_bot", source="replay", no_web=True, no_workers=True, max_steps=3, speed=0, stdout=StringIO())
    first = Candle.objects.count()

    call_command("run_bot", source="replay", no_web=True, no_workers=True, max_steps=3, speed=0, stdout=StringIO())

    assert Candle.objects.count() == first + 3
    assert Decision.objects.count() == 6


@pytest.mark.django_db
def test_feed_runner_failed_step_is_retried_for_the_same_bar(market_data_dir, monkeypatch):
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap",
                                   data_source=DataSource.REPLAY)
    instrument.is_active = True
    instrument.save()
    runner = FeedRunner(ReplayFeed(market_data_dir / FILE), instrument, "15m", decision_interval_minutes=5)
    runner.warm_up(300)
    import execution.clock as clock

    real_cycle, calls = clock.cycle_run, []

    def flaky_cycle(**kwargs):
        calls.append(kwargs["now"])
        if len(calls) == 2:
            raise RuntimeError("database is locked")
        return real_cycle(**kwargs)

    monkeypatch.setattr(clock, "cycle_run", flaky_cycle)

    steps = runner.run(bars_per_second=0, max_steps=3, retry_delay_s=0)

    assert steps == 3
    assert calls[1] == calls[2]  # the failed close was retried, not skipped
    assert Decision.objects.filter(instrument=instrument).count() == 3
