import numpy as np
import pytest
from hypothesis import given, strategies as st

from analytics.features.volatility import atr, true_range


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


@given(st.lists(st.tuples(st.floats(1, 1e5), st.floats(0, 1e3), st.floats(0, 1)), min_size=15, max_size=80))
def test_atr_never_negative(rows):
    low = np.array([r[0] for r in rows])
    high = low + np.array([r[1] for r in rows])
    close = low + (high - low) * np.array([r[2] for r in rows])

    values = atr(high, low, close, 14)

    assert np.all(values[13:] >= 0)
