"""Deleting candles in the admin gives their series a new revision, so the engine's bar cache reloads it."""
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from django.urls import reverse

from analytics.selectors import bars_load, bars_remembered
from market.ingest import candles_upsert
from market.models import Candle, CandleSeries
from market.services import instrument_ensure

pytestmark = pytest.mark.django_db
FILE = "binance_usdm_BTCUSDT_15m_2025-07-04_2025-12-31.csv.gz"
NOW = datetime(2025, 7, 5, 0, 0, tzinfo=UTC)


@pytest.fixture
def instrument(market_data_dir):
    frame = pd.read_csv(market_data_dir / FILE, dtype=str, nrows=96)       # the first 96 bars of the file
    frame["open_time_ms"] = frame["open_time_ms"].astype("int64")
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
    candles_upsert(instrument_id=instrument.pk, timeframe="15m", frame=frame)
    return instrument


def _cached_closes(instrument) -> list[float]:
    with bars_remembered():
        return bars_load(instrument=instrument, timeframe="15m", now=NOW, count=96).close.tolist()


def _revision(instrument) -> int:
    return CandleSeries.objects.get(instrument=instrument, timeframe="15m").revision


def test_admin_delete_of_one_candle_replaces_the_revision_and_the_cache_reloads(admin_client, instrument):
    before = len(_cached_closes(instrument))
    revision = _revision(instrument)
    candle = Candle.objects.get(instrument=instrument, timeframe="15m", open_time=NOW - timedelta(hours=2))

    answer = admin_client.post(reverse("admin:market_candle_delete", args=[candle.pk]), {"post": "yes"})

    assert answer.status_code == 302
    assert _revision(instrument) != revision
    assert _cached_closes(instrument) == bars_load(instrument=instrument, timeframe="15m", now=NOW,
                                                   count=96).close.tolist()
    assert len(_cached_closes(instrument)) == before - 1


def test_admin_delete_selected_candles_replaces_the_revision_of_their_series(admin_client, instrument):
    before = len(_cached_closes(instrument))
    revision = _revision(instrument)
    doomed = list(Candle.objects.filter(instrument=instrument, open_time__lt=NOW - timedelta(hours=6))
                  .values_list("pk", flat=True))

    answer = admin_client.post(reverse("admin:market_candle_changelist"),
                               {"action": "delete_selected", "_selected_action": doomed, "post": "yes"})

    assert answer.status_code == 302, answer.content.decode()[-3000:]
    assert _revision(instrument) != revision
    assert _cached_closes(instrument) == bars_load(instrument=instrument, timeframe="15m", now=NOW,
                                                   count=96).close.tolist()
    assert doomed and len(_cached_closes(instrument)) == before - len(doomed)
