import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from analytics.features.momentum import MOMENTUM_STATES, MomentumState, momentum, momentum_series


def _bars(close, volume=None):
    close = np.asarray(close, float)
    volume = np.ones(len(close)) if volume is None else np.asarray(volume, float)
    return close, close + 0.5, close - 0.5, volume


@pytest.mark.parametrize("path, expected", [
    # climbing 1 a bar with ATR 1: ROC 4 ATR over 4 bars, recent half +2
    ([0, 1, 2, 3, 4], "up"),
    ([4, 3, 2, 1, 0], "down"),
    # the move is 4 ATR over the window but the recent half went nowhere
    ([0, 2, 4, 4, 4], "fading"),
    ([0, 0.2, 0.1, 0.3, 0.2], "neutral"),
])
def test_momentum_series_classifies_hand_paths(path, expected):
    close, high, low, volume = _bars(path)

    result = momentum_series(close, high, low, volume, np.ones(len(close)), period=4)

    assert result.states()[-1] == expected
    assert momentum(close, high, low, volume, 1.0, period=4).state == expected


def test_momentum_series_ratios_match_hand_computation():
    close, high, low, _ = _bars([0, 1, 2, 3, 4])
    volume = np.array([1.0, 2, 3, 2, 4])

    result = momentum_series(close, high, low, volume, np.full(5, 2.0), period=4)

    assert result.roc_atr[-1] == 2.0                 # (4 - 0) / 2
    assert result.range_expansion[-1] == 0.5         # 1 / 2
    assert result.volume_ratio[-1] == 4 / 2          # previous four average 2
    assert bool(result.volume_confirmed[-1])
    assert np.isnan(result.roc_atr[:4]).all() and result.state_code[:4].tolist() == [0] * 4


def test_momentum_series_zero_atr_is_undefined_and_neutral():
    close, high, low, volume = _bars(np.arange(20))

    result = momentum_series(close, high, low, volume, np.zeros(20), period=4)

    assert np.isnan(result.roc_atr).all() and (result.state_code == MOMENTUM_STATES.index("neutral")).all()


def test_momentum_state_undefined_bar_is_nan_and_neutral():
    state = MomentumState(period=4)

    first = state.update(1.0, 1.5, 0.5, 1.0, 1.0)

    assert first.state == "neutral" and math.isnan(first.roc_atr) and not first.volume_confirmed


def test_momentum_scalar_keeps_zeros_for_too_few_bars():
    close, high, low, volume = _bars([1, 2])

    assert momentum(close, high, low, volume, 1.0, period=4).roc_atr == 0.0


@given(st.lists(st.floats(-3, 3), min_size=20, max_size=80), st.integers(2, 12))
def test_three_paths_agree_on_random_walks(steps, period):
    close, high, low, _ = _bars(100 + np.cumsum(steps))
    volume = np.abs(np.array(steps)) + np.linspace(0, 1, len(steps))
    atr_values = np.full(len(close), 1.3)
    series, state = momentum_series(close, high, low, volume, atr_values, period), MomentumState(period)

    live = [state.update(close[i], high[i], low[i], volume[i], 1.3) for i in range(len(close))]

    assert series.states() == [m.state for m in live]
    np.testing.assert_allclose(series.volume_ratio, [m.volume_ratio for m in live], rtol=1e-9, equal_nan=True)
    for i in range(period, len(close)):
        scalar = momentum(close[:i + 1], high[:i + 1], low[:i + 1], volume[:i + 1], 1.3, period)
        assert scalar.state == live[i].state and scalar.volume_confirmed == live[i].volume_confirmed
        assert scalar.roc_atr == pytest.approx(live[i].roc_atr, rel=1e-9, abs=1e-9)
