import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from decisions.engine.calibration import Calibrator


def _pairs(rows: list[tuple[float, int, int]]) -> list[tuple[float, bool]]:
    """Expand (confidence, wins, losses) rows into closed-trade pairs."""
    return [(c, True) for c, wins, _ in rows for _ in range(wins)] + [
        (c, False) for c, _, losses in rows for _ in range(losses)]


# --- fallback below min_trades

@pytest.mark.parametrize(("trades", "min_trades", "calibrated"), [
    (0, 30, False),
    (12, 30, False),
    (29, 30, False),    # just below
    (30, 30, True),     # at the minimum
    (31, 30, True),
    (5, 5, True),       # a custom minimum
])
def test_calibrator_fit_needs_min_trades(trades, min_trades, calibrated):
    calibrator = Calibrator.fit([(0.7, i % 2 == 0) for i in range(trades)], min_trades=min_trades)

    assert calibrator.calibrated is calibrated
    assert calibrator.probability(0.7)[1].startswith("calibrated" if calibrated else "uncalibrated")


@pytest.mark.parametrize(("confidence", "expected"), [
    (0.0, 0.0), (0.42, 0.42), (1.0, 1.0),
    (1.3, 1.0), (-0.2, 0.0),            # clipped to a probability
])
def test_calibrator_uncalibrated_returns_the_confidence_and_says_why(confidence, expected):
    calibrator = Calibrator.fit([(0.6, True)] * 12)

    assert calibrator.probability(confidence) == (expected, "uncalibrated: 12 closed trades, need 30")


# --- the fit

def test_calibrator_bins_are_laplace_smoothed_rates_at_bin_means():
    # Two bins of 20: 4 wins at 0.3, 16 wins at 0.8.
    pairs = _pairs([(0.3, 4, 16), (0.8, 16, 4)])

    calibrator = Calibrator.fit(pairs, min_trades=30, bins=2)

    assert [p for k in calibrator.knots for p in k] == pytest.approx([0.3, 5 / 22, 0.8, 17 / 22])
    assert calibrator.probability(0.8) == (pytest.approx(17 / 22), "calibrated (40 trades)")
    assert calibrator.probability(0.55)[0] == pytest.approx((5 / 22 + 17 / 22) / 2)   # linear between centres
    assert calibrator.probability(0.1)[0] == pytest.approx(5 / 22)                     # flat beyond the ends
    assert calibrator.probability(0.95)[0] == pytest.approx(17 / 22)


def test_calibrator_pools_adjacent_violators():
    # The higher-confidence bin wins less: the two are pooled into one rate at the weighted centre.
    pairs = _pairs([(0.4, 15, 5), (0.6, 5, 15)])

    calibrator = Calibrator.fit(pairs, min_trades=30, bins=2)

    assert [p for k in calibrator.knots for p in k] == pytest.approx([0.5, (20 + 2) / (40 + 4)])
    assert calibrator.probability(0.2)[0] == calibrator.probability(0.9)[0]


def test_calibrator_tied_confidences_merge_into_one_bin():
    calibrator = Calibrator.fit([(0.5, i < 21) for i in range(30)], bins=5)

    assert [p for k in calibrator.knots for p in k] == pytest.approx([0.5, 22 / 32])


@pytest.mark.parametrize(("trades", "floor"), [(50, 0.9), (200, 0.97), (1000, 0.99)])
def test_calibrator_all_wins_tends_to_one(trades, floor):
    calibrator = Calibrator.fit([(i / trades, True) for i in range(trades)])

    p, _ = calibrator.probability(0.5)

    assert floor < p < 1.0


@pytest.mark.parametrize(("kwargs", "pairs", "message"), [
    ({"min_trades": 0}, [], "min_trades and bins must be at least 1"),
    ({"bins": 0}, [], "min_trades and bins must be at least 1"),
    ({}, [(0.5, True), (1.5, False)], r"pair 1: confidence must be within \[0, 1\], got 1\.5"),
    ({}, [(math.nan, True)], r"pair 0: confidence must be within \[0, 1\]"),
])
def test_calibrator_fit_invalid_input_raises(kwargs, pairs, message):
    with pytest.raises(ValueError, match=message):
        Calibrator.fit(pairs, **kwargs)


def test_calibrator_probability_nan_raises():
    with pytest.raises(ValueError, match="confidence must be a number"):
        Calibrator.fit([]).probability(math.nan)


# --- invariants

_pairs_strategy = st.lists(st.tuples(st.floats(0, 1), st.booleans()), max_size=150)


@given(_pairs_strategy, st.integers(1, 40), st.integers(1, 12), st.floats(0, 1), st.floats(0, 1))
def test_calibrator_probability_is_monotone_and_a_probability(pairs, min_trades, bins, a, b):
    calibrator = Calibrator.fit(pairs, min_trades=min_trades, bins=bins)
    low, high = sorted((a, b))

    p_low, _ = calibrator.probability(low)
    p_high, _ = calibrator.probability(high)

    assert 0.0 <= p_low <= p_high <= 1.0


@given(_pairs_strategy, st.integers(1, 12))
def test_calibrator_knots_rise_strictly_in_confidence_and_weakly_in_probability(pairs, bins):
    calibrator = Calibrator.fit(pairs, min_trades=1, bins=bins)

    xs = [x for x, _ in calibrator.knots]
    ps = [p for _, p in calibrator.knots]

    assert xs == sorted(set(xs))
    assert ps == sorted(ps)
    assert all(0.0 < p < 1.0 for p in ps)      # Laplace smoothing never claims certainty
