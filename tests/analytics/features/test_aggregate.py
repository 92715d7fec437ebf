import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.features.aggregate import BarAggregator, resample_arrays
from market.resample import resample

MINUTE = 60_000
T0 = 1_717_200_000_000  # 2024-06-01 00:00 UTC, a Saturday
MONDAY = 1_717_372_800_000


def _minutes(count, start_ms=T0, drop=()):
    i = np.arange(count, dtype="float64")
    frame = pd.DataFrame({
        "open_time_ms": start_ms + np.arange(count, dtype="int64") * MINUTE,
        "open": 100 + i, "high": 102 + i + (i % 7), "low": 99 + i - (i % 5), "close": 101 + i,
        "volume": 0.5 + (i % 3),
    })
    return frame.drop(index=list(drop)).reset_index(drop=True)


def _arrays(frame):
    return [frame[c].to_numpy() for c in ("open_time_ms", "open", "high", "low", "close", "volume")]


def _incremental(frame, timeframe):
    aggregator = BarAggregator(timeframe)
    out = []
    for row, values in enumerate(zip(*(a.tolist() for a in _arrays(frame)))):
        bar = aggregator.update(*values)
        if bar is not None:
            out.append((row, bar))
    return out


def _assert_same_as_resample(frame, timeframe):
    expected = resample(frame, "1m", timeframe)
    bars = resample_arrays(*_arrays(frame), timeframe)
    live = _incremental(frame, timeframe)
    assert bars.open_time_ms.tolist() == expected["open_time_ms"].tolist() == [b.open_time_ms for _, b in live]
    assert bars.closed_at.tolist() == [row for row, _ in live]
    for column in ("open", "high", "low", "close", "volume"):
        np.testing.assert_allclose(getattr(bars, column), expected[column], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose([getattr(b, column) for _, b in live], expected[column], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("timeframe", ["15m", "1h", "4h", "1d"])
def test_aggregators_match_resample_on_complete_minutes(timeframe):
    _assert_same_as_resample(_minutes(3 * 1440 + 17), timeframe)


def test_aggregators_drop_a_bucket_with_a_missing_minute_like_resample():
    frame = _minutes(240, drop=[70, 239])   # hour 2 misses a minute; hour 4 misses its last one

    _assert_same_as_resample(frame, "1h")
    assert [b.open_time_ms for _, b in _incremental(frame, "1h")] == [T0, T0 + 120 * MINUTE]


def test_bar_aggregator_week_starts_monday_and_closes_on_its_last_minute():
    frame = _minutes(7 * 1440 + 2 * 1440, start_ms=T0)   # Saturday to the next Monday, inclusive

    (row, bar), = _incremental(frame, "1w")   # the weekend before and the last Monday are partial

    assert bar.open_time_ms == MONDAY and row == 2 * 1440 + 7 * 1440 - 1
    _assert_same_as_resample(frame, "1w")


def test_bar_aggregator_rejects_bars_out_of_order():
    aggregator = BarAggregator("15m")
    aggregator.update(T0, 1, 2, 0.5, 1.5, 1)

    with pytest.raises(ValueError, match="is not after"):
        aggregator.update(T0, 1, 2, 0.5, 1.5, 1)


def test_bar_aggregator_rejects_one_minute_target():
    with pytest.raises(ValueError, match="cannot build 1m"):
        BarAggregator("1m")


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 600), st.lists(st.integers(0, 599), max_size=30), st.sampled_from(["15m", "1h", "4h"]))
def test_aggregators_match_resample_with_random_holes(count, holes, timeframe):
    frame = _minutes(count, drop=sorted({h for h in holes if h < count}))

    if len(frame):
        _assert_same_as_resample(frame, timeframe)
