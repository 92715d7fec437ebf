"""The snapshot's context is point in time: closed higher-timeframe bars and a fresh book only."""
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from analytics.selectors import bars_load, bars_load_many, context_load, resampled, structure_bars_load
from market.ingest import candles_upsert
from market.models import OrderBookSnapshot
from market.services import instrument_ensure

pytestmark = pytest.mark.django_db
FILE = "binance_usdm_BTCUSDT_15m_2025-07-04_2025-12-31.csv.gz"


@pytest.fixture
def instrument(market_data_dir):
    frame = pd.read_csv(market_data_dir / FILE, dtype=str, nrows=4 * 24 * 12)  # twelve days
    frame["open_time_ms"] = frame["open_time_ms"].astype("int64")
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
    candles_upsert(instrument_id=instrument.pk, timeframe="15m", frame=frame)
    return instrument


def test_context_load_resamples_only_closed_higher_bars(instrument):
    now = datetime(2025, 7, 12, 13, 0, tzinfo=UTC)

    context = context_load(instrument=instrument, timeframe="15m", now=now)

    assert len(context.higher["1d"]) >= 7
    assert len(context.higher["1w"]) == 0  # the first full week ends after `now`
    for timeframe, bars in context.higher.items():
        if not len(bars):
            continue
        last_close_ms = int(bars.open_time_ms[-1]) + bars.timeframe_ms
        assert last_close_ms <= now.timestamp() * 1000, timeframe


def test_context_load_unchanged_by_later_candles(instrument):
    now = datetime(2025, 7, 10, 9, 30, tzinfo=UTC)
    full = context_load(instrument=instrument, timeframe="15m", now=now)
    instrument.candles.filter(open_time__gte=now).delete()

    cut = context_load(instrument=instrument, timeframe="15m", now=now)

    for timeframe in full.higher:
        assert full.higher[timeframe].close.tolist() == cut.higher[timeframe].close.tolist()


def test_context_load_uses_fresh_book_only(instrument):
    now = datetime(2025, 7, 10, 9, 30, tzinfo=UTC)
    OrderBookSnapshot.objects.create(instrument=instrument, ts=now - timedelta(minutes=5), depth=1,
                                     bids=[["100", "1"]], asks=[["101", "1"]], best_bid=100, best_ask=101, spread_bps=99)

    assert context_load(instrument=instrument, timeframe="15m", now=now).book_bids is None

    OrderBookSnapshot.objects.create(instrument=instrument, ts=now - timedelta(seconds=30), depth=1,
                                     bids=[["100", "3"]], asks=[["101", "1"]], best_bid=100, best_ask=101, spread_bps=99)
    context = context_load(instrument=instrument, timeframe="15m", now=now)
    assert context.book_bids.tolist() == [[100.0, 3.0]]


def test_context_load_structure_timeframe_resampled_from_one_minute_bars(market_data_dir):
    frame = pd.read_csv(market_data_dir / "binance_usdm_BTCUSDT_1m_2025-06-06_2025-06-16.csv.gz", dtype=str,
                        nrows=1000)
    frame["open_time_ms"] = frame["open_time_ms"].astype("int64")
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
    candles_upsert(instrument_id=instrument.pk, timeframe="1m", frame=frame)
    first = datetime.fromtimestamp(int(frame["open_time_ms"].iloc[0]) / 1000, tz=UTC)
    now = first + timedelta(minutes=602)  # two minutes into a forming 5m bar

    context = context_load(instrument=instrument, timeframe="15m", now=now, structure_timeframes=("5m", "15m"))

    five = context.structure["5m"]
    assert set(context.structure) == {"5m"}  # the decision timeframe is read from the snapshot itself
    assert len(five) == 100 and five.timeframe_ms == 300_000
    assert int(five.open_time_ms[-1]) + 300_000 <= now.timestamp() * 1000  # only closed 5m bars
    one_minute = frame.set_index("open_time_ms")
    last = int(five.open_time_ms[-1])
    assert five.high[-1] == max(float(one_minute.loc[last + k * 60_000, "high"]) for k in range(5))


def test_context_load_reads_each_view_like_bars_load_and_structure_bars_like_structure_bars_load(instrument):
    # One UNION read on MariaDB (a query per timeframe on SQLite) gives what the single reads give.
    now = datetime(2025, 7, 12, 13, 0, tzinfo=UTC)
    candles_upsert(instrument_id=instrument.pk, timeframe="1h", frame=_hours(instrument, now))

    context = context_load(instrument=instrument, timeframe="15m", now=now, structure_timeframes=("1h", "4h"))

    assert _arrays(context.higher["1h"]) == _arrays(bars_load(instrument=instrument, timeframe="1h", now=now, count=30))
    assert _arrays(context.higher["15m"]) == _arrays(bars_load(instrument=instrument, timeframe="15m", now=now,
                                                               count=30))
    for timeframe in ("1h", "4h"):
        assert _arrays(context.structure[timeframe]) == _arrays(structure_bars_load(instrument=instrument,
                                                                                    timeframe=timeframe, now=now))
    assert len(context.structure["1h"]) == 100      # stored 1h bars: the last hundred, not the views' thirty


def test_bars_load_many_equals_one_bars_load_per_timeframe(instrument):
    now = datetime(2025, 7, 9, 10, 45, tzinfo=UTC)
    wanted = {"15m": 50, "1h": 7, "4h": 3}
    candles_upsert(instrument_id=instrument.pk, timeframe="1h", frame=_hours(instrument, now))

    many = bars_load_many(instrument=instrument, wanted=wanted, now=now)

    assert set(many) == set(wanted)
    for timeframe, count in wanted.items():
        single = bars_load(instrument=instrument, timeframe=timeframe, now=now, count=count)
        assert _arrays(many[timeframe]) == _arrays(single)
        assert many[timeframe].timeframe_ms == single.timeframe_ms
    assert len(many["15m"]) == 50 and len(many["1h"]) == 7 and len(many["4h"]) == 0


def _hours(instrument, now):
    """1h candles resampled from the stored 15m ones, up to a bar still forming at `now`."""
    bars = bars_load(instrument=instrument, timeframe="15m", now=now + timedelta(hours=2), count=10_000)
    hours = resampled(bars, "15m", "1h")
    return pd.DataFrame({"open_time_ms": hours.open_time_ms, **{c: getattr(hours, c) for c in
                                                                ("open", "high", "low", "close", "volume")}})


def _arrays(bars):
    return [bars.open_time_ms.tolist(), bars.open.tolist(), bars.high.tolist(), bars.low.tolist(),
            bars.close.tolist(), bars.volume.tolist()]
