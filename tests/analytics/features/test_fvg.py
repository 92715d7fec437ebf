from dataclasses import fields

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.features.fvg import (
    GAP_BEARISH, GAP_BULLISH, STATE_FRESH, STATE_NONE, STATE_PARTIAL, FvgState, fvg_last, fvg_series,
)
from analytics.features.volatility import atr

# A bullish gap [101, 103] forms at bar 2, bar 4 trades into it (partial, unfilled part [101, 102])
# and bar 5 reaches its bottom (filled).
HIGH = np.array([101, 106, 108, 109, 108, 105.0])
LOW = np.array([99, 100, 103, 104, 102, 100.5])
CLOSE = np.array([100, 105, 107, 108, 104, 101.0])


def _incremental(high, low, close, **kwargs):
    state = FvgState(**kwargs)
    return [state.update(h, l, c) for h, l, c in zip(high, low, close)]


def _assert_series_equals_bars(series, bars):
    for f in fields(bars[0]):
        got = np.array([getattr(b, f.name) for b in bars], dtype=float)
        np.testing.assert_allclose(got, getattr(series, f.name), rtol=1e-9, atol=1e-9, err_msg=f.name)


def test_fvg_series_bullish_gap_forms_with_bounds_and_atr_size():
    series = fvg_series(HIGH, LOW, CLOSE, atr_period=2)

    assert series.gap.tolist() == [0, 0, GAP_BULLISH, 0, 0, 0]
    assert (series.gap_bottom[2], series.gap_top[2]) == (101, 103)
    assert series.gap_size_atr[2] == pytest.approx(2 / 4.5)   # ATR(2) at bar 2: (4 + 5) / 2


def test_fvg_series_bullish_gap_goes_fresh_partial_filled():
    series = fvg_series(HIGH, LOW, CLOSE, atr_period=2)

    assert series.below_state.tolist() == [STATE_NONE, STATE_NONE, STATE_FRESH, STATE_FRESH, STATE_PARTIAL,
                                           STATE_NONE]
    assert series.below_age.tolist() == [-1, -1, 0, 1, 2, -1]
    assert (series.below_bottom[4], series.below_top[4]) == (101, 102)
    assert series.open_below.tolist() == [0, 0, 1, 1, 1, 0]
    assert np.isnan(series.above_bottom).all()


def test_fvg_series_bearish_gap_mirrors_bullish():
    high, low, close = 200 - LOW, 200 - HIGH, 200 - CLOSE

    series = fvg_series(high, low, close, atr_period=2)

    assert series.gap[2] == GAP_BEARISH and (series.gap_bottom[2], series.gap_top[2]) == (97, 99)
    assert series.above_state.tolist()[2:] == [STATE_FRESH, STATE_FRESH, STATE_PARTIAL, STATE_NONE]
    assert (series.above_bottom[4], series.above_top[4]) == (98, 99)
    assert series.open_above.tolist() == [0, 0, 1, 1, 1, 0]


def test_fvg_state_hand_case_matches_series():
    bars = _incremental(HIGH, LOW, CLOSE, atr_period=2)

    _assert_series_equals_bars(fvg_series(HIGH, LOW, CLOSE, atr_period=2), bars)
    assert bars[4].below_state == STATE_PARTIAL and bars[5].open_below == 0


def test_fvg_series_gap_before_atr_exists_has_nan_size():
    series = fvg_series(HIGH, LOW, CLOSE, atr_period=14)

    assert series.gap[2] == GAP_BULLISH and np.isnan(series.gap_size_atr[2])


def _staircase(steps):
    """Return bars rising in jumps of 5, each jump leaving one bullish gap, then a fall to 0."""
    close = np.concatenate([np.arange(steps) * 5.0 + 100, [100.0 - 20]])
    return close + 1, close - 1, close


def test_fvg_series_cap_keeps_only_most_recent_gaps_per_side():
    high, low, close = _staircase(8)

    capped = fvg_series(high, low, close, max_open=3)
    free = fvg_series(high, low, close, max_open=50)

    assert free.open_below.max() == 6 and capped.open_below.max() == 3
    assert capped.below_bottom[7] == free.below_bottom[7]   # the nearest gap is never dropped
    _assert_series_equals_bars(capped, _incremental(high, low, close, max_open=3))


def test_fvg_state_many_open_gaps_tracks_at_most_cap():
    high, low, close = _staircase(40)

    bars = _incremental(high, low, close, max_open=5)

    assert max(b.open_below for b in bars) == 5


def _random_bars(seed, n, rounded):
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    high, low = close + rng.uniform(0, 1, n), close - rng.uniform(0, 1, n)
    if rounded:  # ties: equal lows, highs and gap edges
        high, low = np.ceil(high), np.floor(low)
        close = np.clip(np.round(close), low, high)
    return high, low, close


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 300), st.integers(1, 8), st.booleans())
def test_fvg_state_matches_series_on_random_bars(seed, n, cap, rounded):
    high, low, close = _random_bars(seed, n, rounded)

    bars = _incremental(high, low, close, atr_period=5, max_open=cap)

    _assert_series_equals_bars(fvg_series(high, low, close, atr_period=5, max_open=cap), bars)


def test_fvg_series_nearest_gaps_sit_on_their_side_of_the_close():
    high, low, close = _random_bars(5, 3000, False)

    series = fvg_series(high, low, close)

    below, above = ~np.isnan(series.below_top), ~np.isnan(series.above_bottom)
    assert (series.below_top[below] <= close[below]).all()
    assert (series.above_bottom[above] >= close[above]).all()
    assert (series.below_bottom[below] < series.below_top[below]).all()


@pytest.mark.parametrize("build", [lambda: FvgState(max_open=0), lambda: fvg_series(HIGH, LOW, CLOSE, max_open=0)])
def test_fvg_zero_cap_raises(build):
    with pytest.raises(ValueError, match="max_open must be at least 1"):
        build()


def _assert_last_is_series_last(last, series):
    # Bit for bit, NaN sign included: the snapshot must read the same numbers from either path.
    for f in fields(last):
        want, got = np.float64(getattr(series, f.name)[-1]), np.float64(getattr(last, f.name))
        assert want.tobytes() == got.tobytes() or (np.isnan(want) and np.isnan(got)
                                                   and np.signbit(want) == np.signbit(got)), f.name


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 300), st.integers(1, 8), st.booleans())
def test_fvg_last_equals_series_last_bar_on_random_bars(seed, n, cap, rounded):
    high, low, close = _random_bars(seed, n, rounded)

    last = fvg_last(high, low, close, atr_period=5, max_open=cap)

    _assert_last_is_series_last(last, fvg_series(high, low, close, atr_period=5, max_open=cap))


@pytest.mark.parametrize("cap", [2, 50])   # 2: evictions on every window; 50: the default, none
def test_fvg_last_equals_series_last_bar_on_every_window(cap):
    high, low, close = _random_bars(17, 900, False)

    for end in range(1, 900, 3):
        window = high[max(0, end - 300):end], low[max(0, end - 300):end], close[max(0, end - 300):end]

        _assert_last_is_series_last(fvg_last(*window, max_open=cap), fvg_series(*window, max_open=cap))


def test_fvg_last_given_atr_equals_computed_atr():
    high, low, close = _random_bars(3, 200, False)

    given = fvg_last(high, low, close, atr_values=atr(high, low, close, 14))
    computed = fvg_last(high, low, close)

    assert given.open_below + given.open_above > 0    # gaps exist, so sizes divide by the ATR
    assert [np.float64(getattr(given, f.name)).tobytes() for f in fields(given)] == [
        np.float64(getattr(computed, f.name)).tobytes() for f in fields(computed)]
