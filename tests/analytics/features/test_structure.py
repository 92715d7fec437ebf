import numpy as np

from analytics.features.structure import market_structure, swing_points


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
