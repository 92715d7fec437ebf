"""The technical strategies' rolling extremes: the numpy windows give what pandas' rolling gave."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decisions.engine.technical import _trailing
from decisions.engine.votes import _previous

values = st.lists(st.floats(-1e3, 1e3) | st.just(float("nan")), max_size=120).map(np.array)


@settings(max_examples=200, deadline=None)
@given(values, st.integers(1, 30))
def test_trailing_fmin_fmax_equal_pandas_rolling_with_min_periods_one(x, window):
    # Rsi: the extreme of the last `window` values, NaN skipped, NaN only while all are NaN.
    rolling = pd.Series(x, dtype=float).rolling(window, min_periods=1)

    assert np.array_equal(_trailing(x, window, np.fmin), rolling.min().to_numpy(), equal_nan=True)
    assert np.array_equal(_trailing(x, window, np.fmax), rolling.max().to_numpy(), equal_nan=True)


@settings(max_examples=200, deadline=None)
@given(values, st.integers(1, 30))
def test_trailing_maximum_minimum_equal_pandas_rolling_shifted(x, window):
    # AtrBreakout: the previous `window` bars' extreme, NaN until that many bars and around a NaN.
    series = pd.Series(x, dtype=float)

    assert np.array_equal(_previous(_trailing(x, window, np.maximum)),
                          series.rolling(window).max().shift(1).to_numpy(), equal_nan=True)
    assert np.array_equal(_previous(_trailing(x, window, np.minimum)),
                          series.rolling(window).min().shift(1).to_numpy(), equal_nan=True)


@pytest.mark.parametrize("window", [1, 14, 20])
def test_trailing_leaves_its_input_unchanged(window):
    x = np.arange(30, dtype=float)
    before = x.copy()

    out = _trailing(x, window, np.maximum)

    assert np.array_equal(x, before)
    assert out[-1] == 29.0
