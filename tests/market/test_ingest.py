import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from market.ingest import _PLAIN_NUMBER, _columns, candles_upsert, ms_to_db_datetimes, numeric_text
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


# Decimal text of every shape, inside and outside the plain form: signs, up to 45 digits on either
# side of the point, exponents of up to three digits.
_SIGN = st.sampled_from(["", "+", "-"])
_DIGITS = st.text("0123456789", max_size=45)
_NUMBER_TEXT = st.tuples(_SIGN, _DIGITS, st.sampled_from(["", "."]), _DIGITS, st.sampled_from(["", "e", "E"]), _SIGN,
                         st.text("0123456789", max_size=3)).map("".join)


@given(_NUMBER_TEXT)
@settings(max_examples=500)
def test_plain_number_text_is_text_pandas_parses_as_finite(text):
    # Text of the plain form skips pandas' parse, so pandas must accept every such text.
    if _PLAIN_NUMBER.fullmatch(text):
        assert np.isfinite(pd.to_numeric(pd.Series([text], dtype=object), errors="coerce").to_numpy(dtype=float)).all()


@pytest.mark.parametrize("text", [" 1.5", "1.5\n", "1e-400", "9" * 45, "1e100", "0x10", "1_000", "１", "1e400", "inf"])
def test_numeric_text_outside_the_plain_form_is_judged_by_pandas(text):
    # Accepted as written when pandas parses it as a finite number (whitespace around, an underflow,
    # many digits), refused otherwise: the plain form only spares the parse.
    parsed = pd.to_numeric(pd.Series([text], dtype=object), errors="coerce").to_numpy(dtype=float)
    series = pd.Series(["1.5", text], dtype=object, name="close")

    if np.isfinite(parsed).all():
        assert numeric_text(series) == ["1.5", text]
    else:
        with pytest.raises(ValueError, match=re.escape(f"column 'close': {text!r} is not a finite number")):
            numeric_text(series)


_CELLS = st.one_of(st.none(), st.just(np.nan), st.just(pd.NA), st.just(pd.NaT), st.just(""), st.floats(),
                   st.floats().map(np.float64), st.integers(), _NUMBER_TEXT, st.text(max_size=6))


@given(st.lists(_CELLS, min_size=1, max_size=8))
@settings(max_examples=300)
def test_numeric_text_of_any_cells_follows_the_rule(cells):
    # The rule, cell by cell: missing (pd.isna, or empty text) is None, text stays as written, anything
    # else is its repr; the first present text pandas does not parse as a finite number raises.
    texts = [None if pd.isna(v) or v == "" else (v if isinstance(v, str) else repr(v)) for v in cells]
    present = [t for t in texts if t is not None]
    finite = np.isfinite(pd.to_numeric(pd.Series(present, dtype=object), errors="coerce").to_numpy(dtype=float))
    series = pd.Series(cells, dtype=object, name="close")

    if finite.all():
        assert numeric_text(series) == texts
    else:
        bad = present[int(np.argmax(~finite))]
        with pytest.raises(ValueError, match=re.escape(f"column 'close': {bad!r} is not a finite number")):
            numeric_text(series)
