from dataclasses import fields

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.features.structure import (
    BOS_BEARISH, BOS_BULLISH, BOS_NAMES, TREND_DOWN, TREND_NAMES, TREND_UP, StructureState, market_structure,
    structure_series, swing_points, trend_at_last,
)


def _zigzag(points, steps=4):
    """Return a piecewise-linear path through `points` as (high, low, close)."""
    path = np.concatenate([np.linspace(a, b, steps, endpoint=False) for a, b in zip(points, points[1:])])
    path = np.append(path, points[-1])
    return path + 0.1, path - 0.1, path


def test_market_structure_rising_zigzag_is_up():
    high, low, close = _zigzag([100, 110, 105, 115, 108, 120, 112, 118])

    structure = market_structure(high, low, close, pivot_length=2)

    assert structure.trend == "up"
    assert structure.last_high.label == "HH" and structure.last_low.label == "HL"


def test_market_structure_falling_zigzag_is_down():
    high, low, close = _zigzag([120, 110, 115, 104, 109, 98, 103, 99])

    structure = market_structure(high, low, close, pivot_length=2)

    assert structure.trend == "down"
    assert [s.label for s in structure.swings[-2:]] in (["LH", "LL"], ["LL", "LH"])


def test_swing_points_confirmed_only_after_pivot_length_bars():
    high, low, close = _zigzag([100, 110, 100], steps=5)
    peak = int(np.argmax(high))

    assert swing_points(high[:peak + 2], low[:peak + 2], 3) == []
    assert swing_points(high[:peak + 4], low[:peak + 4], 3)[0].index == peak


def test_market_structure_truncation_does_not_change_past_swings():
    rng = np.random.default_rng(7)
    close = 100 + np.cumsum(rng.normal(0, 1, 400))
    high, low = close + rng.uniform(0, 1, 400), close - rng.uniform(0, 1, 400)
    full = swing_points(high, low, 3)

    for cut in (50, 123, 399):
        known = [s for s in full if s.confirmed_at < cut]
        assert swing_points(high[:cut], low[:cut], 3) == known


# Per-bar series and the incremental state.


def _incremental(high, low, close, pivot_length):
    state = StructureState(pivot_length)
    return [state.update(h, l, c) for h, l, c in zip(high, low, close)]


def _assert_series_equals_bars(series, bars):
    for f in fields(bars[0]):
        expected = getattr(series, f.name)
        got = np.array([getattr(b, f.name) for b in bars])
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9, err_msg=f.name)


def test_structure_series_rising_zigzag_turns_up_once_both_labels_are_higher():
    high, low, close = _zigzag([100, 110, 105, 115, 108, 120, 112, 118])

    series = structure_series(high, low, close, pivot_length=2)

    assert series.trend[-1] == TREND_UP
    assert series.high_label[-1] == 1 and series.low_label[-1] == 1
    assert series.trend[0] == 0


def test_structure_series_falling_zigzag_is_down_with_lower_swings():
    high, low, close = _zigzag([120, 110, 115, 104, 109, 98, 103, 99])

    series = structure_series(high, low, close, pivot_length=2)

    assert series.trend[-1] == TREND_DOWN
    assert series.last_low[-1] == pytest.approx(98 - 0.1)


def test_structure_series_swing_high_appears_only_pivot_length_bars_later():
    high, low, close = _zigzag([100, 110, 100], steps=5)
    peak = int(np.argmax(high))

    series = structure_series(high, low, close, pivot_length=3)

    assert np.isnan(series.last_high[peak + 2])
    assert series.last_high[peak + 3] == high[peak]


def test_structure_series_close_above_swing_high_is_bullish_break_with_level():
    # A swing high at 110 (bar 4), a pullback, then a close through it at bar 11.
    close = np.array([100, 102, 104, 106, 110, 107, 105, 104, 106, 108, 109, 112, 113.0])
    high, low = close + 0.5, close - 0.5

    series = structure_series(high, low, close, pivot_length=2)

    assert series.bos[11] == BOS_BULLISH and series.bos.tolist().count(BOS_BULLISH) == 1
    assert series.last_bos[12] == BOS_BULLISH
    assert series.last_bos_index[12] == 11 and series.last_bos_level[12] == 110.5
    assert series.last_bos_index[10] == -1 and np.isnan(series.last_bos_level[10])


def test_structure_series_close_below_swing_low_is_bearish_break():
    close = np.array([110, 108, 106, 104, 100, 103, 105, 106, 104, 102, 101, 98, 97.0])
    high, low = close + 0.5, close - 0.5

    series = structure_series(high, low, close, pivot_length=2)

    assert series.bos[11] == BOS_BEARISH and series.last_bos_level[12] == 99.5


@pytest.mark.parametrize("pivot_length", [1, 2, 3, 5])
def test_structure_state_matches_series_on_random_walk(pivot_length):
    rng = np.random.default_rng(pivot_length)
    close = 100 + np.cumsum(rng.normal(0, 1, 600))
    high, low = close + rng.uniform(0, 1, 600), close - rng.uniform(0, 1, 600)

    bars = _incremental(high, low, close, pivot_length)

    _assert_series_equals_bars(structure_series(high, low, close, pivot_length), bars)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(90, 110), min_size=1, max_size=80), st.integers(1, 4))
def test_structure_state_matches_series_with_flat_tops_and_ties(prices, pivot_length):
    close = np.array(prices, float)
    high, low = close + 1, close - 1   # integer prices: many equal highs and lows

    bars = _incremental(high, low, close, pivot_length)

    _assert_series_equals_bars(structure_series(high, low, close, pivot_length), bars)


def test_structure_series_last_bar_agrees_with_market_structure():
    rng = np.random.default_rng(11)
    close = 100 + np.cumsum(rng.normal(0, 1, 300))
    high, low = close + rng.uniform(0, 1, 300), close - rng.uniform(0, 1, 300)
    series = structure_series(high, low, close, 3)

    for cut in range(20, 300, 7):
        structure = market_structure(high[:cut], low[:cut], close[:cut], 3)

        assert TREND_NAMES[int(series.trend[cut - 1])] == structure.trend
        assert BOS_NAMES[int(series.bos[cut - 1])] == structure.break_of_structure
        np.testing.assert_equal(series.last_high[cut - 1],
                                structure.last_high.price if structure.last_high else np.nan)


def test_structure_state_keeps_only_recent_swings():
    rng = np.random.default_rng(3)
    close = 100 + np.cumsum(rng.normal(0, 1, 2000))
    state = StructureState(2, keep_swings=8)

    for c in close:
        state.update(c + 0.5, c - 0.5, c)

    assert len(state.swings) == 8
    assert state.swings[-1].confirmed_at <= len(close) - 1


def test_structure_series_empty_input_gives_empty_arrays():
    series = structure_series(np.array([]), np.array([]), np.array([]), 3)

    assert len(series.trend) == 0 and len(series.last_bos_index) == 0


@pytest.mark.parametrize("build", [lambda: StructureState(0), lambda: structure_series([1.0], [1.0], [1.0], 0)])
def test_structure_zero_pivot_length_raises(build):
    with pytest.raises(ValueError, match="pivot_length must be at least 1"):
        build()


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(90, 110), min_size=1, max_size=80), st.integers(1, 4))
def test_trend_at_last_equals_series_last_bar_with_ties(prices, pivot_length):
    close = np.array(prices, float)
    high, low = close + 1, close - 1   # integer prices: many equal highs and lows
    series = structure_series(high, low, close, pivot_length)

    trend, known = trend_at_last(high, low, pivot_length)

    assert trend == series.trend[-1]
    assert known == (series.high_label[-1] != 0 and series.low_label[-1] != 0)


def test_trend_at_last_equals_series_on_every_window_of_a_random_walk():
    rng = np.random.default_rng(5)
    close = 100 + np.cumsum(rng.normal(0, 1, 400))
    high, low = close + rng.uniform(0, 1, 400), close - rng.uniform(0, 1, 400)

    for end in range(1, 400):
        series = structure_series(high[:end], low[:end], close[:end], 3)

        assert trend_at_last(high[:end], low[:end], 3) == (
            series.trend[-1], bool(series.high_label[-1] != 0 and series.low_label[-1] != 0))
