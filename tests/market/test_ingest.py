import numpy as np
import pandas as pd
import pytest

from market.ingest import _columns, candles_upsert, ms_to_db_datetimes, numeric_text
from market.models import Candle
from market.services import instrument_ensure


def test_ms_to_db_datetimes_matches_django_spelling():
    # Midnight, a whole minute and a funding time a few ms past the hour.
    stamps = np.array([1749254400000, 1749254460000, 1749283200005])

    assert ms_to_db_datetimes(stamps) == [
        "2025-06-07 00:00:00", "2025-06-07 00:01:00", "2025-06-07 08:00:00.005000",
    ]


def test_numeric_text_keeps_strings_as_written_and_blanks_as_none():
    assert numeric_text(pd.Series(["108989.40", "", None, "1e-05"], dtype=object)) == ["108989.40", None, None, "1e-05"]


@pytest.mark.parametrize("bad", ["1); DROP TABLE market_candle; --", "nan", "inf", "12,5", "'1'"])
def test_numeric_text_non_number_raises(bad):
    with pytest.raises(ValueError, match="is not a finite number"):
        numeric_text(pd.Series(["1.0", bad], dtype=object, name="close"))


@pytest.mark.django_db
def test_candles_upsert_bad_value_writes_nothing():
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
    frame = pd.DataFrame({"open_time_ms": [0, 60_000], "open": ["1", "1"], "high": ["2", "2"],
                          "low": ["1", "1"], "close": ["1", "x'); --"], "volume": ["1", "1"]})

    with pytest.raises(ValueError, match="'close'"):
        candles_upsert(instrument_id=instrument.pk, timeframe="1m", frame=frame)

    assert Candle.objects.count() == 0


@pytest.mark.django_db
def test_candles_upsert_second_write_updates_in_place():
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
    frame = pd.DataFrame({"open_time_ms": [0], "open": ["1"], "high": ["2"], "low": ["1"], "close": ["1.5"],
                          "volume": ["3"]})
    candles_upsert(instrument_id=instrument.pk, timeframe="1m", frame=frame)

    added = candles_upsert(instrument_id=instrument.pk, timeframe="1m", frame=frame.assign(close=["1.75"]))

    assert added == 0
    assert str(Candle.objects.get().close.normalize()) == "1.75"


@pytest.mark.django_db
def test_candles_upsert_counts_the_new_rows_among_older_and_later_stored_ones():
    # New rows are counted over the frame's time range only; rows stored outside it are not touched.
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")

    def bars(*minutes):
        return pd.DataFrame({"open_time_ms": [m * 60_000 for m in minutes], "open": "1", "high": "2", "low": "1",
                             "close": "1.5", "volume": "3"})
    assert candles_upsert(instrument_id=instrument.pk, timeframe="1m", frame=bars(0, 1, 5, 9)) == 4

    assert candles_upsert(instrument_id=instrument.pk, timeframe="1m", frame=bars(1, 2, 3, 5, 6)) == 3
    assert candles_upsert(instrument_id=instrument.pk, timeframe="1m", frame=bars(9)) == 0
    assert candles_upsert(instrument_id=instrument.pk, timeframe="5m", frame=bars(0)) == 1
    assert Candle.objects.filter(timeframe="1m").count() == 7


def test_numeric_text_names_the_first_bad_column_of_several():
    frame = pd.DataFrame({"open": ["1", "2"], "high": [2.0, 3.0], "low": ["1", "nan"], "close": ["x", "1"]})

    with pytest.raises(ValueError, match="column 'low': 'nan' is not a finite number"):
        _columns(frame, ["open", "high", "low", "close"])
