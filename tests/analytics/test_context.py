"""The snapshot's context is point in time: closed higher-timeframe bars and a fresh book only."""
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from analytics.selectors import context_load
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
