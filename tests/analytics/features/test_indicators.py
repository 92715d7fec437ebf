import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from analytics.features.indicators import (
    SHORT_SERIES, BollingerState, EmaState, MacdState, RsiState, VolumeZScoreState, bollinger, ema, macd,
    rolling_mean_std, rsi, smooth, volume_zscore,
)

NAN = np.nan
prices = st.lists(st.floats(1.0, 1e5), min_size=30, max_size=120).map(np.array)


def _same(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-9, equal_nan=True)


# EMA: alpha = 2 / (n + 1), seeded with the SMA of the first n values.

def test_ema_seeds_with_sma_then_recurses():
    # n = 3 -> alpha 0.5; seed mean(1, 2, 3) = 2; then 0.5*2 + 0.5*4 = 3, 0.5*3 + 0.5*5 = 4
    _same(ema(np.array([1.0, 2, 3, 4, 5]), 3), [NAN, NAN, 2, 3, 4])


def test_ema_leading_nan_shifts_the_seed():
    _same(ema(np.array([NAN, 1.0, 2, 3, 4]), 3), [NAN, NAN, NAN, 2, 3])


def test_ema_shorter_than_period_is_all_nan():
    assert np.isnan(ema(np.array([1.0, 2.0]), 3)).all()


def test_ema_state_matches_hand_values():
    state = EmaState(3)

    assert [state.update(x) for x in (NAN, 1.0, 2, 3, 4)][3:] == [2, 3]
    assert state.value == 3


def test_ema_period_below_one_raises():
    with pytest.raises(ValueError, match="at least 1"):
        ema(np.ones(3), 0)


# RSI: Wilder smoothing (alpha = 1 / n), seeded with the mean gain and loss of the first n changes.

def test_rsi_matches_wilder_hand_computation():
    # changes +1 +1 -1 +1; n = 2: seed gain 1, loss 0 -> 100; gain 0.5, loss 0.5 -> 50;
    # gain 0.75, loss 0.25 -> 75
    _same(rsi(np.array([1.0, 2, 3, 2, 3]), 2), [NAN, NAN, 100, 50, 75])


def test_rsi_flat_prices_is_50():
    assert rsi(np.full(20, 7.0), 14)[-1] == 50


def test_rsi_state_matches_hand_values():
    state = RsiState(2)

    assert [state.update(x) for x in (1.0, 2, 3, 2, 3)][2:] == [100, 50, 75]


@given(prices)
def test_rsi_stays_within_0_and_100(close):
    values = rsi(close, 14)[14:]

    assert np.all((values >= 0) & (values <= 100))


# MACD: on a straight line each SMA-seeded EMA lags by (n - 1) / 2 bars exactly.

def test_macd_on_a_ramp_is_half_the_period_gap():
    close = np.arange(100, dtype=float)

    result = macd(close)

    assert np.isnan(result.line[24]) and np.isnan(result.signal[32])
    _same(result.line[25:], 7.0)      # (26 - 12) / 2 bars of slope 1
    _same(result.signal[33:], 7.0)
    _same(result.histogram[33:], 0.0)


def test_macd_state_matches_vectorised():
    close = 100 + np.cumsum(np.random.default_rng(3).normal(0, 1, 200))
    state = MacdState()

    values = [state.update(x) for x in close]

    result = macd(close)
    _same([(v.line, v.signal, v.histogram) for v in values], np.column_stack([result.line, result.signal,
                                                                                result.histogram]))


# Bollinger: population (ddof = 0) standard deviation.

def test_bollinger_matches_hand_computation():
    # mean 2.5, population variance 1.25
    bands = bollinger(np.array([1.0, 2, 3, 4]), period=4, k=2)
    std = math.sqrt(1.25)

    _same([bands.mid[3], bands.upper[3], bands.lower[3]], [2.5, 2.5 + 2 * std, 2.5 - 2 * std])
    _same(bands.percent_b[3], (4 - (2.5 - 2 * std)) / (4 * std))
    _same(bands.bandwidth[3], 4 * std / 2.5)
    assert np.isnan(bands.mid[2])


def test_bollinger_flat_window_has_no_percent_b():
    bands = bollinger(np.full(25, 3.3))

    assert np.isnan(bands.percent_b[-1]) and bands.bandwidth[-1] == 0
    assert math.isnan(_last(BollingerState(), np.full(25, 3.3)).percent_b)


def _last(state, values):
    for x in values:
        result = state.update(x)
    return result


@given(prices)
def test_bollinger_lower_mid_upper_are_ordered(close):
    bands = bollinger(close)

    assert np.all(bands.lower[19:] <= bands.mid[19:]) and np.all(bands.mid[19:] <= bands.upper[19:])


def test_rolling_mean_std_keeps_precision_at_large_prices():
    close = 1e5 + np.tile([0.1, 0.2, 0.3, 0.4], 5)

    _, std = rolling_mean_std(close, 4)

    _same(std[3:], np.std([0.1, 0.2, 0.3, 0.4]))


# Volume z-score against the previous `window` bars, population std.

def test_volume_zscore_excludes_the_bar_itself():
    # previous three: mean 2, population std sqrt(2/3)
    _same(volume_zscore(np.array([1.0, 2, 3, 10]), 3), [NAN, NAN, NAN, 8 / math.sqrt(2 / 3)])


def test_volume_zscore_flat_baseline_is_nan():
    assert np.isnan(volume_zscore(np.array([5.0, 5, 5, 9]), 3)[3])
    assert math.isnan(_last(VolumeZScoreState(3), [5.0, 5, 5, 9]))


# Both paths: the State equals the vectorised value at every bar.

@given(prices)
def test_states_match_vectorised_on_random_prices(close):
    volume = close[::-1].copy()

    for state, vector in ((EmaState(10), ema(close, 10)), (RsiState(14), rsi(close, 14))):
        _same([state.update(x) for x in close], vector)
    bands, state = bollinger(close), BollingerState()
    _same([state.update(x).upper for x in close], bands.upper)
    state = VolumeZScoreState()
    _same([state.update(x) for x in volume], volume_zscore(volume))


# smooth: the short-series loop must give pandas' ewm bit for bit.

def _pandas_smooth(values, period, alpha):
    import pandas as pd

    out = np.full(len(values), np.nan)
    seeded = values[period - 1:].copy()
    seeded[0] = sum(values[:period].tolist()) / period
    out[period - 1:] = pd.Series(seeded).ewm(alpha=alpha, adjust=False).mean().to_numpy()
    return out


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=SHORT_SERIES + 40), st.integers(1, 60),
       st.booleans(), st.booleans())
def test_smooth_short_series_equals_pandas_ewm_bit_for_bit(values, period, wilder, repeat):
    values = np.array(values)
    if repeat:  # runs of equal values: pandas skips the update when the mean already equals the value
        values = np.repeat(values, 3)[:len(values)]
    alpha = 1.0 / period if wilder else 2.0 / (period + 1)

    got = smooth(values, period, alpha)

    if len(values) >= period:
        assert got.tobytes() == _pandas_smooth(values, period, alpha).tobytes()
    else:
        assert np.isnan(got).all()


def test_smooth_real_closes_equal_pandas_ewm_at_both_lengths(market_data_dir):
    import pandas as pd

    close = pd.read_csv(market_data_dir / "binance_usdm_BTCUSDT_15m_2025-07-04_2025-12-31.csv.gz",
                        nrows=3000)["close"].to_numpy(float)

    for n in (300, SHORT_SERIES, SHORT_SERIES + 1, 3000):   # the Python loop, its limit, pandas
        for period, alpha in ((21, 2 / 22), (14, 1 / 14), (55, 2 / 56)):
            assert smooth(close[:n], period, alpha).tobytes() == _pandas_smooth(close[:n], period, alpha).tobytes()


def test_smooth_non_finite_values_take_pandas_path():
    values = np.array([1.0, 2.0, 3.0, np.inf, 4.0, 5.0])

    assert smooth(values, 2, 0.5).tobytes() == _pandas_smooth(values, 2, 0.5).tobytes()
