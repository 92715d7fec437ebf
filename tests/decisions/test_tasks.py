"""The scheduled analytics and decision jobs."""
from datetime import UTC, datetime

import pandas as pd
import pytest
import time_machine

from analytics.models import Flow, Snapshot
from decisions import tasks
from market.ingest import candles_upsert
from market.services import instrument_ensure

pytestmark = pytest.mark.django_db
FILE = "binance_usdm_BTCUSDT_15m_2025-07-04_2025-12-31.csv.gz"
NOW = datetime(2025, 7, 8, 12, 3, 20, tzinfo=UTC)


@pytest.fixture
def active(market_data_dir):
    frame = pd.read_csv(market_data_dir / FILE, dtype=str, nrows=400)
    frame["open_time_ms"] = frame["open_time_ms"].astype("int64")
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
    instrument.is_active = True
    instrument.save()
    candles_upsert(instrument_id=instrument.pk, timeframe="15m", frame=frame)
    return instrument


@time_machine.travel(NOW, tick=False)
def test_analytics_run_all_records_snapshot_of_last_closed_bar_and_flow_now(active):
    assert tasks.analytics_run_all() == 1

    snapshot = Snapshot.objects.get()
    assert snapshot.as_of == datetime(2025, 7, 8, 12, 0, tzinfo=UTC)
    assert Flow.objects.get().as_of == NOW


@time_machine.travel(NOW, tick=False)
def test_analytics_run_all_failure_is_retried_then_saved(active, monkeypatch):
    calls = []
    real = tasks.analytics_record

    def flaky(**kwargs):
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("database went away")
        return real(**kwargs)

    monkeypatch.setattr(tasks, "analytics_record", flaky)

    assert tasks.analytics_run_all(sleep=lambda s: None) == 1
    assert len(calls) == 3 and Snapshot.objects.count() == 1


@time_machine.travel(NOW, tick=False)
def test_analytics_run_all_gives_up_after_attempts_and_saves_nothing(active, monkeypatch):
    def broken_flow(**kwargs):
        raise RuntimeError("flow input broken")

    monkeypatch.setattr("decisions.services.flow_run", broken_flow)

    assert tasks.analytics_run_all(sleep=lambda s: None) == 0
    assert (Flow.objects.count(), Snapshot.objects.count()) == (0, 0)


def test_analytics_run_all_stands_aside_when_engine_owns_clock(active, monkeypatch):
    monkeypatch.setenv("TRADINGBOT_CLOCK", "engine")

    assert tasks.analytics_run_all() == 0
    assert Snapshot.objects.count() == 0


@time_machine.travel(NOW, tick=False)
def test_analytics_run_all_refuses_window_with_gap_and_names_it(active, caplog):
    active.candles.filter(open_time=datetime(2025, 7, 8, 9, 0, tzinfo=UTC)).delete()

    assert tasks.analytics_run_all(sleep=lambda s: None) == 0

    assert Snapshot.objects.count() == 0
    assert "2025-07-08 09:00" in caplog.text and "missing rows in the window" in caplog.text
