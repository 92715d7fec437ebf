import numpy as np
import pytest

from analytics.snapshot import Bars, SnapshotParams, build_snapshot, min_bars


def _bars(close: np.ndarray) -> Bars:
    n = len(close)
    return Bars(np.arange(n, dtype=np.int64) * 300_000, close, close + 1, close - 1, close, np.full(n, 10.0), 300_000)


def test_build_snapshot_as_of_is_close_time_of_last_bar():
    snap = build_snapshot(_bars(np.linspace(100, 120, 60)), SnapshotParams())

    assert snap.as_of_ms == 60 * 300_000
    assert snap.close == 120
    assert snap.atr > 0


def test_build_snapshot_too_few_bars_raises():
    with pytest.raises(ValueError, match="need at least"):
        build_snapshot(_bars(np.ones(5)), SnapshotParams())


def test_build_snapshot_strong_rise_has_up_momentum():
    snap = build_snapshot(_bars(np.linspace(100, 160, 80)), SnapshotParams())

    assert snap.momentum == "up"
    assert snap.features()["momentum"] == "up"


def test_min_bars_covers_every_feature_window():
    params = SnapshotParams(atr_period=30, pivot_length=3, momentum_period=12)

    assert min_bars(params) == 31
