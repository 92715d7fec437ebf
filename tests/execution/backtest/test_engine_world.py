"""The backtest's market reads cut resampled views from one whole-history resample; they equal the live rule's
per-call resample (analytics.selectors.views_filled / structure_bars_from) on every window."""
from decimal import Decimal as D

import numpy as np
import pandas as pd
import pytest

from analytics.selectors import structure_bars_from, views_filled
from execution.backtest.world import Candles, FundingRates, Market
from market.resample import resample

MINUTES_FILE = "binance_usdm_BTCUSDT_1m_2025-06-06_2025-06-16.csv.gz"


@pytest.fixture
def minutes(market_data_dir):
    frame = pd.read_csv(market_data_dir / MINUTES_FILE)
    # Drop an hour in the middle: buckets around a gap are incomplete and must be left out the same way.
    times = frame["open_time_ms"]
    cut = (times >= times.iloc[6000]) & (times < times.iloc[6000] + 3_600_000)
    return Candles.from_frame("1m", frame[~cut].reset_index(drop=True))


def _same(a, b) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("open_time_ms", "open", "high", "low",
                                                                        "close", "volume")) \
        and a.timeframe_ms == b.timeframe_ms


@pytest.mark.parametrize("timeframe", ["5m", "1h"])
def test_structure_bars_cut_from_the_whole_resample_equal_the_per_call_resample(minutes, timeframe):
    market = Market({"1m": minutes})

    for now in minutes.open_time_ms[200::97] + 60_000:
        stored = market.bars_load(timeframe=timeframe, now_ms=int(now), count=100)
        expected = structure_bars_from(stored, timeframe, 100,
                                       lambda n, t=int(now): market.bars_load(timeframe="1m", now_ms=t, count=n))
        assert _same(market.structure_bars_load(timeframe=timeframe, now_ms=int(now)), expected)


def test_thin_views_cut_from_the_whole_resample_equal_the_per_call_resample(minutes):
    frame = pd.DataFrame({"open_time_ms": minutes.open_time_ms, "open": minutes.open, "high": minutes.high,
                          "low": minutes.low, "close": minutes.close, "volume": minutes.volume})
    quarters = Candles.from_frame("15m", resample(frame, "1m", "15m"))
    market = Market({"15m": quarters})

    for now in quarters.open_time_ms[40::13] + 900_000:
        now = int(now)
        context = market.context_load(timeframe="15m", now_ms=now)
        higher = {tf: market.bars_load(timeframe=tf, now_ms=now, count=30) for tf in context.higher}
        expected = views_filled(higher, "15m", 30, lambda n: market.bars_load(timeframe="15m", now_ms=now, count=n))
        assert set(context.higher) == set(expected)
        assert all(_same(context.higher[tf], expected[tf]) for tf in expected)


def test_funding_rates_keep_stored_decimals_and_refuse_unordered_times():
    rates = FundingRates.of([1, 2], ["0.0001", 0.00004855], [None, "65000.5"])

    assert [str(r) for r in rates.rates] == ["0.0001000000", "0.0000485500"]
    assert rates.marks == (None, D("65000.5000000000"))
    with pytest.raises(ValueError, match="funding times must increase"):
        FundingRates.of([2, 1], ["0.1", "0.2"])
    with pytest.raises(ValueError, match="2 funding times but 1 rates"):
        FundingRates.of([1, 2], ["0.1"])
