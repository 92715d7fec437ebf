"""Storing the closed candle each cycle: new rows counted right on every path, the series revision kept or replaced."""
import numpy as np
import pandas as pd
import pytest

from market.ingest import candles_upsert, candle_series_touch, numeric_text
from market.models import Candle, CandleSeries
from market.services import instrument_ensure

pytestmark = pytest.mark.django_db


@pytest.fixture
def instrument():
    return instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")


def _bars(*minutes, close="1.5"):
    return pd.DataFrame({"open_time_ms": [m * 60_000 for m in minutes], "open": "1", "high": "2", "low": "1",
                         "close": close, "volume": "3"})


def _revision(instrument):
    return CandleSeries.objects.get(instrument=instrument, timeframe="1m").revision


def test_candles_upsert_newer_bars_count_as_gained(instrument):
    candles_upsert(instrument_id=instrument.pk, timeframe="1m", frame=_bars(0, 1))

    gained = candles_upsert(instrument_id=instrument.pk, timeframe="1m", frame=_bars(2))

    assert gained == 1
    assert Candle.objects.count() == 3


def test_candles_upsert_a_time_twice_in_one_frame_counts_one_row(instrument):
    gained = candles_upsert(instrument_id=instrument.pk, timeframe="1m", frame=_bars(0, 1, 1))

    assert gained == 2
    assert Candle.objects.count() == 2


def test_candles_upsert_bar_inserted_behind_the_newest_replaces_the_revision(instrument):
    candles_upsert(instrument_id=instrument.pk, timeframe="1m", frame=_bars(0, 2))
    candle_series_touch(instrument_id=instrument.pk, timeframe="1m")
    revision = _revision(instrument)

    gained = candles_upsert(instrument_id=instrument.pk, timeframe="1m", frame=_bars(1))

    assert gained == 1
    assert _revision(instrument) != revision


def test_candles_upsert_bars_after_the_newest_keep_the_revision(instrument):
    candles_upsert(instrument_id=instrument.pk, timeframe="1m", frame=_bars(0, 1))
    candle_series_touch(instrument_id=instrument.pk, timeframe="1m")
    revision = _revision(instrument)

    # The last stored bar again, unchanged, with a new one: a candle job re-reading its last bar.
    gained = candles_upsert(instrument_id=instrument.pk, timeframe="1m", frame=_bars(1, 2))

    assert gained == 1
    assert _revision(instrument) == revision


def test_numeric_text_missing_values_of_any_kind_are_none():
    values = pd.Series(["1.5", np.nan, None, pd.NA, "", 2.5, 3], dtype=object, name="close")

    assert numeric_text(values) == ["1.5", None, None, None, None, "2.5", "3"]
