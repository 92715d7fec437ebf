import itertools
from dataclasses import fields

import numpy as np
import pytest

from analytics.features.aggregate import resample_arrays
from analytics.features.mtf import (
    STATE_AGREE, STATE_CONFLICT, STATE_NEITHER, TIMEFRAMES, MtfParams, MtfState, MtfWeights, mtf_score, mtf_series,
)
from analytics.features.structure import structure_series

MINUTE = 60_000
MONDAY = 1_717_372_800_000  # 2024-06-03 00:00 UTC


def _zigzag(days, sign=1, up_minutes=600, down_minutes=360):
    """Return (open_time_ms, price) rising 10 over `up_minutes`, falling 6 over `down_minutes`, repeated.

    With the default 10 h / 6 h legs every timeframe up to 4h swings and trends.
    """
    t = np.arange(days * 1440)
    period = up_minutes + down_minutes
    phase, cycle = t % period, t // period
    path = np.where(phase < up_minutes, phase * 10 / up_minutes, 10 - (phase - up_minutes) * 6 / down_minutes)
    return MONDAY + t.astype(np.int64) * MINUTE, 100 + sign * (path + cycle * 4)


def _view(open_time_ms, price, params=MtfParams(pivot_length=2)):
    return mtf_series(open_time_ms, price, price + 0.01, price - 0.01, price, params=params)


def test_mtf_weights_default_sum_to_one():
    assert sum((MtfWeights().m15, MtfWeights().h1, MtfWeights().h4, MtfWeights().d1, MtfWeights().w1)) == 1.0


def test_mtf_weights_not_summing_to_one_raise_with_the_sum():
    with pytest.raises(ValueError, match=r"must sum to 1, got sum 1\.1"):
        MtfWeights(m15=0.5)


def test_mtf_weights_negative_raise():
    with pytest.raises(ValueError, match="must not be negative"):
        MtfWeights(m15=0.5, h1=-0.1, h4=0.35, d1=0.2, w1=0.05)


U, D, R = 1, -1, 0
ALL = (True,) * 5


@pytest.mark.parametrize("trend, available, raw, score, state", [
    # every timeframe up: 1 + bonus, clipped
    ((U, U, U, U, U), ALL, 1.0, 1.0, STATE_AGREE),
    # 1d and 1w cannot tell yet: the bonus still applies to those that can
    ((U, U, U, R, R), (True, True, True, False, False), 0.85, 0.90, STATE_AGREE),
    ((D, D, D, D, R), (True, True, True, True, False), -0.95, -1.0, STATE_AGREE),
    # an available timeframe in range: no bonus, no penalty
    ((U, U, R, R, R), ALL, 0.65, 0.65, STATE_NEITHER),
    # conflict: shrink towards 0 by 0.10, never past it
    ((U, D, R, R, R), ALL, 0.15, 0.05, STATE_CONFLICT),
    ((D, U, U, R, R), ALL, 0.05, 0.0, STATE_CONFLICT),
    ((D, D, U, R, U), ALL, -0.40, -0.30, STATE_CONFLICT),
    # nothing known yet
    ((R, R, R, R, R), (False,) * 5, 0.0, 0.0, STATE_NEITHER),
])
def test_mtf_score_weights_bonus_and_penalty(trend, available, raw, score, state):
    got_raw, got_score, got_state = mtf_score(np.array([trend]), np.array([available]))

    assert got_raw[0] == pytest.approx(raw) and got_score[0] == pytest.approx(score)
    assert got_state[0] == state


def test_mtf_series_rising_zigzag_agrees_up_on_available_timeframes():
    open_time_ms, price = _zigzag(3)

    view = _view(open_time_ms, price)

    assert view.trend[-1].tolist() == [U, U, U, R, R]
    assert view.available[-1].tolist() == [True, True, True, False, False]
    assert view.state[-1] == STATE_AGREE and view.score[-1] == pytest.approx(0.90)


def test_mtf_series_falling_zigzag_agrees_down():
    open_time_ms, price = _zigzag(3, sign=-1)

    view = _view(open_time_ms, price)

    assert view.trend[-1].tolist() == [D, D, D, R, R] and view.score[-1] == pytest.approx(-0.90)


def test_mtf_series_weekly_zigzag_makes_every_timeframe_available():
    # Legs of 3 and 2 weeks: the weekly bars swing too; 15 weeks give two labelled swings of each kind.
    open_time_ms, price = _zigzag(15 * 7, up_minutes=3 * 7 * 1440, down_minutes=2 * 7 * 1440)

    view = _view(open_time_ms, price, MtfParams(pivot_length=1))

    assert view.available[-1, 4] and view.trend[-1, 4] == U


def test_mtf_series_timeframe_trend_changes_only_when_its_bar_closes():
    open_time_ms, price = _zigzag(3)

    view = _view(open_time_ms, price)

    for column, minutes in enumerate((15, 60, 240)):
        changed = np.flatnonzero(np.diff(view.trend[:, column])) + 1
        assert len(changed) > 0
        assert ((open_time_ms[changed] + MINUTE) % (minutes * MINUTE) == 0).all()


def test_mtf_series_uses_structure_of_closed_resampled_bars():
    open_time_ms, price = _zigzag(2)
    view = _view(open_time_ms, price)

    bars = resample_arrays(open_time_ms, price, price + 0.01, price - 0.01, price, np.zeros(len(price)), "1h")
    hourly = structure_series(bars.high, bars.low, bars.close, 2).trend

    assert view.trend[bars.closed_at, 1].tolist() == hourly.tolist()
    assert (view.trend[: bars.closed_at[0], 1] == 0).all()


def test_mtf_series_prefix_equals_full_history_no_lookahead():
    open_time_ms, price = _zigzag(3)
    price = price + np.sin(np.arange(len(price)) / 7.0)
    full = _view(open_time_ms, price)

    for cut in (1, 899, 900, 2000, 4000):
        part = _view(open_time_ms[:cut], price[:cut])
        for f in fields(full):
            np.testing.assert_array_equal(getattr(part, f.name), getattr(full, f.name)[:cut], err_msg=f.name)


@pytest.mark.parametrize("pivot_length", [1, 2])
def test_mtf_state_matches_series_with_missing_minutes(pivot_length):
    open_time_ms, price = _zigzag(4)
    rng = np.random.default_rng(pivot_length)
    keep = np.ones(len(price), bool)
    keep[rng.choice(len(price), 30, replace=False)] = False   # incomplete buckets are skipped by both
    open_time_ms, price = open_time_ms[keep], price[keep] + rng.normal(0, 0.5, keep.sum())
    params = MtfParams(pivot_length=pivot_length)
    state = MtfState(params)

    bars = [state.update(t, p, p + 0.3, p - 0.3, p, 1.0) for t, p in zip(open_time_ms.tolist(), price.tolist())]

    view = mtf_series(open_time_ms, price, price + 0.3, price - 0.3, price, np.ones(len(price)), params)
    assert np.array([b.trend for b in bars]).tolist() == view.trend.tolist()
    assert np.array([b.available for b in bars]).tolist() == view.available.tolist()
    np.testing.assert_allclose([b.score for b in bars], view.score, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose([b.raw for b in bars], view.raw, rtol=1e-9, atol=1e-9)
    assert [b.state for b in bars] == view.state.tolist()


def test_mtf_timeframes_are_fifteen_minutes_to_one_week():
    assert TIMEFRAMES == ("15m", "1h", "4h", "1d", "1w")


def test_mtf_state_scalar_score_matches_mtf_score_for_every_combination():
    # MtfState scores five values in plain Python (numpy's call overhead dominates there): check all 7,776 inputs.
    state = MtfState()
    trends, flags, scored = [], [], []
    for trend in itertools.product((D, R, U), repeat=5):
        for available in itertools.product((False, True), repeat=5):
            state._trend, state._available = list(trend), list(available)
            bar = state._score()
            trends.append(trend)
            flags.append(available)
            scored.append((bar.raw, bar.score, bar.state))

    raw, score, states = mtf_score(np.array(trends), np.array(flags))

    scored = np.array(scored)
    np.testing.assert_allclose(scored[:, 0], raw, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(scored[:, 1], score, rtol=1e-9, atol=1e-9)
    assert scored[:, 2].tolist() == states.tolist()
