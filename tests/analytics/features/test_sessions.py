import math
from datetime import datetime, timezone

import numpy as np
import pytest
from hypothesis import given, strategies as st

from analytics.features.sessions import (
    DAY_MS, SessionsState, minutes_to_next_open, session_names, sessions, sessions_last,
)

ASIA, EU, US = range(3)


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


def _run(times, high, low):
    """Return the vectorised series and the State's bars for the same input."""
    times = np.array([_ms(t) if isinstance(t, str) else t for t in times], np.int64)
    state = SessionsState()
    live = [state.update(t, h, lo) for t, h, lo in zip(times.tolist(), high, low)]
    return sessions(times, np.asarray(high, float), np.asarray(low, float)), live


@pytest.mark.parametrize("time, names", [
    ("2025-06-02 03:00", ("asia",)),
    # overlaps are explicit: both sessions are open
    ("2025-06-02 07:30", ("asia", "eu")),
    ("2025-06-02 08:00", ("eu",)),           # end is exclusive
    ("2025-06-02 14:00", ("eu", "us")),
    ("2025-06-02 13:29", ("eu",)),
    ("2025-06-02 20:00", ()),
    ("2025-06-07 03:00", ("asia",)),         # a Saturday: crypto sessions run every day
])
def test_sessions_active_follows_fixed_utc_hours(time, names):
    series, live = _run([time], [1.0], [1.0])

    assert session_names(int(series.active[0])) == names == session_names(live[0].active)


@pytest.mark.parametrize("time, minutes", [
    ("2025-06-02 21:00", 180),    # to asia at midnight
    ("2025-06-02 07:00", 390),    # eu opens now: the next one is us at 13:30
    ("2025-06-02 00:00", 420),
    ("2025-06-02 13:00", 30),
])
def test_minutes_to_next_open_counts_to_the_next_start(time, minutes):
    assert minutes_to_next_open(np.array([_ms(time)]))[0] == minutes


def test_sessions_running_and_previous_highs_lows():
    # hourly bars over two days; high = 100 + hour index, low = its negative mirror
    times = [_ms("2025-06-02 00:00") + h * 3_600_000 for h in range(48)]
    high = [100.0 + h for h in range(48)]
    low = [-100.0 - h for h in range(48)]

    series, live = _run(times, high, low)

    day2_0300, day2_0700, day2_0800 = 27, 31, 32
    assert series.high[day2_0300, ASIA] == 127 and series.low[day2_0300, ASIA] == -127
    assert series.prev_high[day2_0700, ASIA] == 107       # day 1 asia, 00:00-07:00 bars
    assert series.prev_high[day2_0800, ASIA] == 131       # today's asia just completed
    assert series.high[day2_0800, ASIA] == 131            # and stays as today's high
    assert np.isnan(series.high[day2_0300, US]) and series.prev_high[day2_0300, US] == 119
    assert np.isnan(series.prev_high[5, ASIA])
    assert live[day2_0800].prev_high[ASIA] == 131 and math.isnan(live[day2_0300].high[US])


def test_sessions_skip_a_missing_day_to_the_last_completed_session():
    times = ["2025-06-02 03:00", "2025-06-04 02:00", "2025-06-04 09:00"]

    series, live = _run(times, [10.0, 20, 30], [1.0, 2, 3])

    assert series.prev_high[:, ASIA].tolist() == [pytest.approx(np.nan, nan_ok=True), 10, 20]
    assert [bar.prev_high[ASIA] for bar in live][1:] == [10, 20]


@given(st.lists(st.integers(1, 300), min_size=1, max_size=120), st.integers(0, 1439))
def test_sessions_state_matches_vectorised_with_gaps(gaps_minutes, first_minute):
    times = _ms("2025-06-02 00:00") + first_minute * 60_000 + np.cumsum(gaps_minutes) * 60_000
    rng = np.random.default_rng(len(gaps_minutes))
    low = rng.uniform(90, 100, len(times))
    high = low + rng.uniform(0, 5, len(times))

    series, live = _run(times, high, low)

    assert series.active.tolist() == [bar.active for bar in live]
    expected = np.hstack([series.high, series.low, series.prev_high, series.prev_low,
                          series.minutes_to_next_open[:, None]])
    actual = [bar.high + bar.low + bar.prev_high + bar.prev_low + (bar.minutes_to_next_open,) for bar in live]
    np.testing.assert_allclose(actual, expected, equal_nan=True)


def test_sessions_day_boundary_resets_running_values():
    times = [_ms("2025-06-02 15:00"), _ms("2025-06-03 00:00") + DAY_MS // 2]  # eu, then next day's noon

    series, _ = _run(times, [50.0, 60.0], [40.0, 55.0])

    assert series.high[1, EU] == 60 and series.prev_high[1, EU] == 50


def _assert_last_is_series_last(last, series):
    # Same values and types as the series' last row: the snapshot stores whichever it reads.
    assert last.active == int(series.active[-1])
    for name in ("high", "low", "prev_high", "prev_low"):
        row = getattr(series, name)[-1]
        got = getattr(last, name)
        assert all(type(x) is np.float64 for x in got), name
        assert np.array(got).tobytes() == row.tobytes(), name
    assert last.minutes_to_next_open == float(series.minutes_to_next_open[-1])


@given(st.lists(st.integers(1, 4 * 3_600_000), min_size=1, max_size=150), st.integers(0, 10_000))
def test_sessions_last_equals_series_last_bar_for_irregular_times(steps, seed):
    rng = np.random.default_rng(seed)
    times = 1_700_000_000_000 + np.cumsum(np.array(steps, np.int64))
    high = rng.normal(100, 1, len(times))
    low = high - rng.uniform(0, 1, len(times))

    _assert_last_is_series_last(sessions_last(times, high, low), sessions(times, high, low))


def test_sessions_last_equals_series_on_every_window_of_15m_bars():
    rng = np.random.default_rng(3)
    times = _ms("2025-07-04 00:00") + np.arange(1200, dtype=np.int64) * 900_000
    high = 100 + np.cumsum(rng.normal(0, 1, 1200))
    low = high - rng.uniform(0, 1, 1200)

    for end in range(1, 1200, 5):
        cut = slice(max(0, end - 300), end)

        _assert_last_is_series_last(sessions_last(times[cut], high[cut], low[cut]),
                                    sessions(times[cut], high[cut], low[cut]))
