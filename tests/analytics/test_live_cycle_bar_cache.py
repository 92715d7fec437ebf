"""The engine cycle's cache of closed bars answers exactly what the database does, and reloads rewritten series."""
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from django.db import connection

from analytics.selectors import bars_load, bars_load_many, bars_remembered, context_load
from market.ingest import candles_upsert
from market.models import Candle, CandleSeries
from market.services import instrument_ensure

pytestmark = pytest.mark.django_db
FILE = "binance_usdm_BTCUSDT_15m_2025-07-04_2025-12-31.csv.gz"
START = datetime(2025, 7, 8, 0, 0, tzinfo=UTC)
STEP = timedelta(minutes=15)


@pytest.fixture
def frame(market_data_dir):
    frame = pd.read_csv(market_data_dir / FILE, dtype=str, nrows=4 * 24 * 8)    # eight days
    frame["open_time_ms"] = frame["open_time_ms"].astype("int64")
    return frame


@pytest.fixture
def instrument(frame):
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
    candles_upsert(instrument_id=instrument.pk, timeframe="15m", frame=_until(frame, START))
    return instrument


def _until(frame, moment):
    return frame[frame["open_time_ms"] < int(moment.timestamp() * 1000)]


def _bar_at(frame, moment):
    return frame[frame["open_time_ms"] == int(moment.timestamp() * 1000)]


def _arrays(bars):
    return [bars.open_time_ms.tolist(), bars.open.tolist(), bars.high.tolist(), bars.low.tolist(),
            bars.close.tolist(), bars.volume.tolist()]


def _cycle_reads(instrument, now):
    with bars_remembered():
        return (bars_load(instrument=instrument, timeframe="15m", now=now, count=300),
                bars_load_many(instrument=instrument, wanted={"15m": 30, "1h": 30, "4h": 30}, now=now),
                context_load(instrument=instrument, timeframe="15m", now=now, structure_timeframes=("5m", "1h")))


def test_bars_remembered_each_cycle_equals_the_uncached_reads(instrument, frame):
    for k in range(6):
        now = START + k * STEP
        candles_upsert(instrument_id=instrument.pk, timeframe="15m", frame=_bar_at(frame, now - STEP))

        bars, many, context = _cycle_reads(instrument, now)

        assert _arrays(bars) == _arrays(bars_load(instrument=instrument, timeframe="15m", now=now, count=300))
        for timeframe, bars_of in many.items():
            expected = bars_load(instrument=instrument, timeframe=timeframe, now=now, count=30)
            assert _arrays(bars_of) == _arrays(expected), timeframe
        uncached = context_load(instrument=instrument, timeframe="15m", now=now, structure_timeframes=("5m", "1h"))
        for timeframe in uncached.higher:
            assert _arrays(context.higher[timeframe]) == _arrays(uncached.higher[timeframe]), timeframe
        for timeframe in uncached.structure:
            assert _arrays(context.structure[timeframe]) == _arrays(uncached.structure[timeframe]), timeframe


def test_bars_remembered_later_cycle_reads_revisions_and_new_bars_only(instrument, frame,
                                                                      django_assert_num_queries):
    _cycle_reads(instrument, START)
    candles_upsert(instrument_id=instrument.pk, timeframe="15m", frame=_bar_at(frame, START))
    now = START + STEP

    # The revisions and the bars closed since of every cached series: one UNION ALL on MariaDB; on
    # SQLite, which cannot limit a compound select's parts, the revisions, then one query a series
    # (15m, 1h, 4h, 1d, 1w, 5m, 1m).
    reads = 1 if connection.features.supports_slicing_ordering_in_compound else 1 + 7
    with django_assert_num_queries(reads), bars_remembered():
        bars = bars_load(instrument=instrument, timeframe="15m", now=now, count=300)
        bars_load_many(instrument=instrument, wanted={"15m": 30, "1h": 30}, now=now)

    assert int(bars.open_time_ms[-1]) == int(START.timestamp() * 1000)
    assert len(bars) == 300


def test_bars_remembered_rewritten_bar_is_read_again(instrument, frame):
    now = START
    before = _cycle_reads(instrument, now)[0]
    rewritten = _bar_at(frame, now - 10 * STEP).copy()
    rewritten["close"] = str(float(rewritten["close"].iloc[0]) + 1)
    rewritten["high"] = str(max(float(rewritten["high"].iloc[0]), float(rewritten["close"].iloc[0])))

    candles_upsert(instrument_id=instrument.pk, timeframe="15m", frame=rewritten)
    after = _cycle_reads(instrument, now)[0]

    assert after.close[-10] == before.close[-10] + 1
    assert _arrays(after) == _arrays(bars_load(instrument=instrument, timeframe="15m", now=now, count=300))


def test_bars_remembered_bar_filled_into_a_gap_is_read(instrument, frame):
    gap = START - 20 * STEP
    Candle.objects.filter(instrument=instrument, timeframe="15m", open_time=gap).delete()
    holed = _cycle_reads(instrument, START)[0]

    candles_upsert(instrument_id=instrument.pk, timeframe="15m", frame=_bar_at(frame, gap))
    filled = _cycle_reads(instrument, START)[0]

    gap_ms = int(gap.timestamp() * 1000)
    assert gap_ms not in holed.open_time_ms.tolist()
    assert gap_ms in filled.open_time_ms.tolist()
    assert _arrays(filled) == _arrays(bars_load(instrument=instrument, timeframe="15m", now=START, count=300))


def test_bars_remembered_series_recreated_with_other_bars_is_reloaded(instrument, frame):
    _cycle_reads(instrument, START)
    # A purge and a new import (or a test database rolled back): new rows, a new revision row.
    Candle.objects.filter(instrument=instrument).delete()
    CandleSeries.objects.filter(instrument=instrument).delete()
    shifted = _until(frame, START).copy()
    shifted["close"] = shifted["low"]

    candles_upsert(instrument_id=instrument.pk, timeframe="15m", frame=shifted)
    bars = _cycle_reads(instrument, START)[0]

    assert bars.close.tolist() == bars.low.tolist()


def test_bars_remembered_earlier_now_gets_only_bars_closed_by_then(instrument, frame):
    _cycle_reads(instrument, START)
    earlier = START - 40 * STEP

    bars = _cycle_reads(instrument, earlier)[0]

    assert int(bars.open_time_ms[-1]) + bars.timeframe_ms <= int(earlier.timestamp() * 1000)
    assert _arrays(bars) == _arrays(bars_load(instrument=instrument, timeframe="15m", now=earlier, count=300))


def test_bars_remembered_deeper_read_than_cached_reads_the_database(instrument):
    with bars_remembered():
        bars_load(instrument=instrument, timeframe="15m", now=START, count=50)
        deep = bars_load(instrument=instrument, timeframe="15m", now=START, count=300)

    assert _arrays(deep) == _arrays(bars_load(instrument=instrument, timeframe="15m", now=START, count=300))
    assert len(deep) == 300


def test_bars_load_outside_the_block_sees_a_write_no_writer_announced(instrument):
    with bars_remembered():
        bars_load(instrument=instrument, timeframe="15m", now=START, count=10)
    last = START - STEP
    Candle.objects.filter(instrument=instrument, timeframe="15m", open_time=last).update(close=1, low=1)

    bars = bars_load(instrument=instrument, timeframe="15m", now=START, count=10)

    assert bars.close[-1] == 1.0


@pytest.mark.parametrize(("written", "new_rows"), [
    (lambda frame: _bar_at(frame, START), 1),                   # the next closed bar: an append
    (lambda frame: _until(frame, START).tail(3), 0),            # stored bars again, same values
], ids=["append", "same-values"])
def test_candles_upsert_that_changes_no_stored_bar_keeps_the_revision(instrument, frame, written, new_rows):
    with bars_remembered():
        bars_load(instrument=instrument, timeframe="15m", now=START, count=10)
    revision = CandleSeries.objects.get(instrument=instrument, timeframe="15m").revision

    gained = candles_upsert(instrument_id=instrument.pk, timeframe="15m", frame=written(frame))

    assert gained == new_rows
    assert CandleSeries.objects.get(instrument=instrument, timeframe="15m").revision == revision


def test_candles_upsert_changed_bar_replaces_the_revision(instrument, frame):
    with bars_remembered():
        bars_load(instrument=instrument, timeframe="15m", now=START, count=10)
    revision = CandleSeries.objects.get(instrument=instrument, timeframe="15m").revision
    changed = _until(frame, START).tail(1).copy()
    changed["volume"] = "12345.678"

    gained = candles_upsert(instrument_id=instrument.pk, timeframe="15m", frame=changed)

    assert gained == 0
    assert CandleSeries.objects.get(instrument=instrument, timeframe="15m").revision != revision


def test_bars_remembered_series_rewritten_while_a_bar_was_added_is_reloaded(instrument, frame):
    _cycle_reads(instrument, START)
    rewritten = _bar_at(frame, START - 10 * STEP).copy()
    rewritten["close"] = rewritten["low"]
    # A new bar and a rewritten one: the cycle's one read brings the new revision with the new bar.
    candles_upsert(instrument_id=instrument.pk, timeframe="15m", frame=pd.concat([rewritten, _bar_at(frame, START)]))
    now = START + STEP

    bars, many, _ = _cycle_reads(instrument, now)

    assert _arrays(bars) == _arrays(bars_load(instrument=instrument, timeframe="15m", now=now, count=300))
    assert _arrays(many["15m"]) == _arrays(bars_load(instrument=instrument, timeframe="15m", now=now, count=30))
    assert bars.close[-11] == bars.low[-11]
    assert int(bars.open_time_ms[-1]) == int(START.timestamp() * 1000)


def test_bars_remembered_rewrite_of_one_instrument_keeps_the_others_cache(instrument, frame,
                                                                           django_assert_num_queries):
    other = instrument_ensure(exchange="binanceusdm", exchange_symbol="ETHUSDT", market_type="swap")
    candles_upsert(instrument_id=other.pk, timeframe="15m", frame=_until(frame, START))
    _cycle_reads(instrument, START)
    _cycle_reads(other, START)
    rewritten = _bar_at(frame, START - 5 * STEP).copy()
    rewritten["close"] = rewritten["high"]
    candles_upsert(instrument_id=instrument.pk, timeframe="15m", frame=rewritten)

    # The other instrument's series are current: its revisions and new bars only (see above).
    reads = 1 if connection.features.supports_slicing_ordering_in_compound else 1 + 7
    with django_assert_num_queries(reads), bars_remembered():
        kept = bars_load(instrument=other, timeframe="15m", now=START, count=300)
    reloaded = _cycle_reads(instrument, START)[0]

    assert _arrays(kept) == _arrays(bars_load(instrument=other, timeframe="15m", now=START, count=300))
    assert _arrays(reloaded) == _arrays(bars_load(instrument=instrument, timeframe="15m", now=START, count=300))
    assert reloaded.close[-5] == reloaded.high[-5]
