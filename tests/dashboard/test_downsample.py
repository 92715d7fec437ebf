import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashboard.downsample import lttb_indices


def random_walk(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = 1_700_000_000 + np.arange(n, dtype=np.float64) * 60  # one point a minute, epoch seconds
    y = 10_000 + np.cumsum(rng.normal(0, 5, n))
    return x, y


@given(n=st.integers(3, 3000), max_points=st.integers(3, 500), seed=st.integers(0, 2**16))
def test_lttb_indices_longer_series_keeps_ends_and_returns_exactly_max_points(n, max_points, seed):
    x, y = random_walk(n, seed)

    idx = lttb_indices(x, y, max_points)

    assert len(idx) == min(n, max_points)
    assert idx[0] == 0 and idx[-1] == n - 1
    assert np.all(np.diff(idx) > 0)


def test_lttb_indices_short_series_returns_every_index():
    x, y = random_walk(10, seed=1)

    assert lttb_indices(x, y, 50).tolist() == list(range(10))


def test_lttb_indices_two_points_returns_ends():
    x, y = random_walk(100, seed=1)

    assert lttb_indices(x, y, 2).tolist() == [0, 99]


@pytest.mark.parametrize("seed", range(20))
def test_lttb_indices_spiky_series_keeps_extreme_min_and_max(seed):
    x, y = random_walk(20_000, seed)
    rng = np.random.default_rng(seed + 1000)
    high, low = rng.choice(np.arange(1, 19_999), size=2, replace=False)
    # Spikes well outside the walk's range, as a liquidation wick or a fat fill would be.
    y[high] = y.max() + 500
    y[low] = y.min() - 500

    idx = lttb_indices(x, y, 300)

    assert high in idx
    assert low in idx


def test_lttb_indices_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="differ in length"):
        lttb_indices(np.arange(5), np.arange(4), 3)


def test_lttb_indices_fewer_than_two_points_requested_raise():
    with pytest.raises(ValueError, match="at least 2"):
        lttb_indices(np.arange(5), np.arange(5), 1)
