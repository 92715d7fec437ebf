import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from analytics.features.volatility import (
    YEAR_MS, AtrPercentileState, AtrState, RealisedVolatilityState, atr, atr_percentile, realised_volatility,
    true_range,
)

NAN = np.nan
bars = st.lists(st.tuples(st.floats(1, 1e5), st.floats(0, 1e3), st.floats(0, 1)), min_size=15, max_size=80)


def _ohlc(rows):
    low = np.array([r[0] for r in rows])
    high = low + np.array([r[1] for r in rows])
    close = low + (high - low) * np.array([r[2] for r in rows])
    return high, low, close


def _same(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-9, equal_nan=True)


def test_true_range_uses_previous_close_on_gaps():
    high = np.array([10.0, 12.0])
    low = np.array([9.0, 11.5])
    close = np.array([9.5, 12.0])

    assert true_range(high, low, close).tolist() == [1.0, 2.5]


def test_atr_matches_wilder_hand_computation():
    high = np.array([10, 11, 12, 11, 13], float)
    low = np.array([9, 10, 10, 10, 11], float)
    close = np.array([9.5, 10.5, 11.5, 10.5, 12.5], float)
    # TR: 1, 1.5, 2, 1.5, 2.5 -> seed mean(1, 1.5, 2) = 1.5, then (1.5*2+1.5)/3 = 1.5, (1.5*2+2.5)/3
    expected = [np.nan, np.nan, 1.5, 1.5, (1.5 * 2 + 2.5) / 3]

    np.testing.assert_allclose(atr(high, low, close, 3), expected)


def test_atr_period_below_one_raises():
    with pytest.raises(ValueError, match="at least 1"):
        atr(np.ones(3), np.ones(3), np.ones(3), 0)


@given(bars)
def test_atr_never_negative(rows):
    high, low, close = _ohlc(rows)

    values = atr(high, low, close, 14)

    assert np.all(values[13:] >= 0)


def test_atr_state_matches_wilder_hand_computation():
    state = AtrState(3)
    rows = zip([10, 11, 12, 11, 13], [9, 10, 10, 10, 11], [9.5, 10.5, 11.5, 10.5, 12.5])

    values = [state.update(*row) for row in rows]

    _same(values, [NAN, NAN, 1.5, 1.5, (1.5 * 2 + 2.5) / 3])


@given(bars)
def test_atr_state_matches_vectorised(rows):
    high, low, close = _ohlc(rows)
    state = AtrState(14)

    _same([state.update(*row) for row in zip(high, low, close)], atr(high, low, close, 14))


# ATR percentile: share of the previous `window` values <= the current one.

def test_atr_percentile_counts_previous_window_only():
    values = np.array([NAN, 1, 2, 3, 2, 5])

    expected = [NAN, NAN, NAN, NAN, 200 / 3, 100]  # [1, 2, 3] vs 2; [2, 3, 2] vs 5
    _same(atr_percentile(values, 3), expected)
    state = AtrPercentileState(3)
    _same([state.update(v) for v in values], expected)


@given(st.lists(st.floats(0, 1e4), min_size=1, max_size=60), st.integers(1, 10))
def test_atr_percentile_within_0_and_100_and_matches_state(values, window):
    values = np.array(values)
    state = AtrPercentileState(window)

    result = atr_percentile(values, window)

    assert np.all((result[window:] >= 0) & (result[window:] <= 100))
    _same([state.update(v) for v in values], result)


# Realised volatility: sample std of log returns, annualised over a 365-day year.

def test_realised_volatility_matches_hand_computation():
    close = np.array([100.0, 110, 99])
    returns = [math.log(1.1), math.log(0.9)]
    expected = abs(returns[0] - returns[1]) / math.sqrt(2) * math.sqrt(YEAR_MS / 60_000)

    _same(realised_volatility(close, window=2, bar_ms=60_000), [NAN, NAN, expected])
    state = RealisedVolatilityState(window=2, bar_ms=60_000)
    _same([state.update(c) for c in close], [NAN, NAN, expected])


def test_realised_volatility_constant_growth_is_zero():
    close = 100 * 1.01 ** np.arange(40)

    assert realised_volatility(close, 30, 300_000)[-1] == 0


@given(st.lists(st.floats(1, 1e5), min_size=3, max_size=80))
def test_realised_volatility_never_negative_and_matches_state(close):
    close = np.array(close)
    state = RealisedVolatilityState(5, 3_600_000)

    result = realised_volatility(close, 5, 3_600_000)

    assert np.all(result[5:] >= 0)
    _same([state.update(c) for c in close], result)


def test_realised_volatility_window_below_two_raises():
    with pytest.raises(ValueError, match="at least 2"):
        realised_volatility(np.ones(5), 1)
