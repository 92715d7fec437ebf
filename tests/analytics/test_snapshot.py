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


def _real_bars(market_data_dir, n=2000):
    import pandas as pd

    frame = pd.read_csv(market_data_dir / "binance_usdm_BTCUSDT_15m_2025-07-04_2025-12-31.csv.gz", nrows=n)
    cols = [frame[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close", "volume")]
    return Bars(frame["open_time_ms"].to_numpy(dtype=np.int64), *cols, 900_000)


def test_build_snapshot_real_candles_carries_every_feature(market_data_dir):
    from analytics.selectors import resampled
    from analytics.snapshot import Context

    bars = _real_bars(market_data_dir)
    higher = {"15m": bars, **{tf: resampled(bars, "15m", tf) for tf in ("1h", "4h", "1d")}}
    book = np.array([[99.9, 5.0], [99.8, 1.0]]), np.array([[100.1, 1.0], [100.2, 1.0]])

    features = build_snapshot(bars.upto(300), SnapshotParams(), Context(higher, *book)).features()

    for key in ("atr_percentile", "realised_vol_annual", "rsi", "ema_fast", "ema_slow", "macd_histogram",
                "bollinger_percent_b", "volume_zscore", "sessions_active", "session_levels",
                "minutes_to_next_session", "fvg_below", "fvg_above", "last_break_of_structure",
                "mtf_trends", "mtf_score", "mtf_state", "obi"):
        assert key in features, key
    assert 0 <= features["rsi"] <= 100
    assert -1 <= features["mtf_score"] <= 1
    assert features["obi"] == pytest.approx(5 / 6)  # within 10 bps of the 100.0 mid: 5 bid vs 1 ask
    assert features["mtf_trends"]["1w"] is None  # no weekly bars given: not available, not guessed


def test_build_snapshot_features_are_json_safe(market_data_dir):
    import json

    features = build_snapshot(_real_bars(market_data_dir, 120), SnapshotParams()).features()

    assert json.loads(json.dumps(features, allow_nan=False)) == features


def _zigzag(n: int, drift: float) -> np.ndarray:
    """Return a saw-tooth close series rising (drift > 0) or falling, with clear swings every 8 bars."""
    wave = np.tile(np.r_[np.linspace(0, 6, 4), np.linspace(6, 0, 4)], n // 8 + 1)[:n]
    return 100 + wave + drift * np.arange(n)


@pytest.mark.parametrize("drift, trend", [(0.5, "up"), (-0.5, "down")])
def test_build_snapshot_structure_trends_read_each_confirming_timeframe(drift, trend):
    from analytics.snapshot import Context

    five = _bars(_zigzag(120, drift))
    context = Context(structure={"5m": five, "1m": _bars(np.ones(5))})

    features = build_snapshot(_bars(np.linspace(100, 120, 60)), SnapshotParams(), context).features()

    # 1m has too few closed bars for a confirmed swing high and low: unknown, not "range".
    assert features["structure_trends"] == {"5m": trend, "1m": None}


def test_build_snapshot_without_confirming_timeframes_has_empty_structure_trends():
    assert build_snapshot(_bars(np.linspace(100, 120, 60)), SnapshotParams()).features()["structure_trends"] == {}


def test_build_snapshot_features_equal_the_asdict_form(market_data_dir):
    import json
    from dataclasses import asdict

    from analytics.selectors import resampled
    from analytics.snapshot import Context, _json_safe

    bars = _real_bars(market_data_dir)
    higher = {"15m": bars, **{tf: resampled(bars, "15m", tf) for tf in ("1h", "4h", "1d")}}
    for end in range(300, 2000, 97):
        snapshot = build_snapshot(bars.upto(end), SnapshotParams(), Context(higher))
        reference = asdict(snapshot)
        extra = reference.pop("extra")
        reference["structure_labels"] = list(snapshot.structure_labels)

        assert json.dumps(snapshot.features()) == json.dumps(_json_safe({**reference, **extra}))
