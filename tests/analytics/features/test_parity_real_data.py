"""Both paths of every feature on real candles: the State equals the vectorised value at every bar,
and a value never changes when later bars are added (no lookahead)."""
from dataclasses import astuple, fields, is_dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.conf import settings

from analytics.features import indicators, momentum, sessions, volatility
from analytics.snapshot import Bars

FILES = {
    "1m": ("binance_usdm_BTCUSDT_1m_2025-06-06_2025-06-16.csv.gz", 60_000),
    "5m": ("binance_usdm_BTCUSDT_5m_2025-07-04_2025-12-31.csv.gz", 300_000),
}
ROWS = 3_000                    # past the 514-bar warm-up of the ATR percentile, fast enough for CI
CUTS = 6


def _atr(b: Bars) -> np.ndarray:
    return volatility.atr(b.high, b.low, b.close, 14)


def _after_atr(state, *fields_):
    atr_state = volatility.AtrState(14)
    return lambda b: state.update(*(getattr(b, f) for f in fields_), atr_state.update(b.high, b.low, b.close))


def _on(state, *fields_):
    return lambda b: state.update(*(getattr(b, f) for f in fields_))


# name -> (vectorised over Bars, factory of a per-bar step for a bar length in ms)
FEATURES = {
    "ema": (lambda b: indicators.ema(b.close, 20), lambda ms: _on(indicators.EmaState(20), "close")),
    "rsi": (lambda b: indicators.rsi(b.close), lambda ms: _on(indicators.RsiState(), "close")),
    "macd": (lambda b: indicators.macd(b.close), lambda ms: _on(indicators.MacdState(), "close")),
    "bollinger": (lambda b: indicators.bollinger(b.close), lambda ms: _on(indicators.BollingerState(), "close")),
    "volume_zscore": (lambda b: indicators.volume_zscore(b.volume),
                      lambda ms: _on(indicators.VolumeZScoreState(), "volume")),
    "atr": (_atr, lambda ms: _on(volatility.AtrState(14), "high", "low", "close")),
    "atr_percentile": (lambda b: volatility.atr_percentile(_atr(b), 500),
                       lambda ms: _after_atr(volatility.AtrPercentileState(500))),
    "realised_volatility": (lambda b: volatility.realised_volatility(b.close, 30, b.timeframe_ms),
                            lambda ms: _on(volatility.RealisedVolatilityState(30, ms), "close")),
    "momentum": (lambda b: momentum.momentum_series(b.close, b.high, b.low, b.volume, _atr(b)),
                 lambda ms: _after_atr(momentum.MomentumState(), "close", "high", "low", "volume")),
    "sessions": (lambda b: sessions.sessions(b.open_time_ms, b.high, b.low),
                 lambda ms: _on(sessions.SessionsState(), "open_time_ms", "high", "low")),
}


def _matrix(result) -> np.ndarray:
    """Return a vectorised result as an (n, columns) float array, columns in field order."""
    if not is_dataclass(result):
        return np.asarray(result, float).reshape(len(result), -1)
    columns = [np.asarray(getattr(result, f.name), float) for f in fields(result)]
    return np.hstack([c.reshape(len(c), -1) for c in columns])


def _row(value) -> list[float]:
    """Return one State result as a flat row, in the same column order as `_matrix`."""
    if not is_dataclass(value):
        return [float(value)]
    row = []
    for item in astuple(value):
        if isinstance(item, str):
            item = momentum.MOMENTUM_STATES.index(item)
        row.extend(float(x) for x in (item if isinstance(item, tuple) else (item,)))
    return row


@pytest.fixture(scope="module", params=sorted(FILES))
def bars(request) -> Bars:
    name, bar_ms = FILES[request.param]
    path = Path(settings.MARKET_DATA_DIR) / name
    frame = pd.read_csv(path, nrows=ROWS)
    return Bars(frame["open_time_ms"].to_numpy(np.int64), *(frame[c].to_numpy(float) for c in
                ("open", "high", "low", "close", "volume")), bar_ms)


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_feature_state_equals_vectorised_at_every_bar(bars, feature):
    vectorised, live = FEATURES[feature]
    step = live(bars.timeframe_ms)

    rows = [_row(step(bar)) for bar in _bar_rows(bars)]

    expected = _matrix(vectorised(bars))
    assert np.isfinite(expected[-1]).all(), "the sample is too short to define every column"
    np.testing.assert_allclose(np.array(rows), expected, rtol=1e-9, atol=1e-9, equal_nan=True)


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_feature_value_ignores_later_bars(bars, feature):
    vectorised, _ = FEATURES[feature]
    full = _matrix(vectorised(bars))
    cuts = np.random.default_rng(20250606).integers(0, len(bars), CUTS).tolist() + [0, 600]

    for t in cuts:
        truncated = _matrix(vectorised(bars.upto(t + 1)))
        np.testing.assert_allclose(truncated[t], full[t], rtol=1e-9, atol=1e-9, equal_nan=True,
                                   err_msg=f"{feature} at bar {t}")


class _Bar:
    __slots__ = ("open_time_ms", "open", "high", "low", "close", "volume")


def _bar_rows(bars: Bars):
    columns = (bars.open_time_ms.tolist(), bars.open.tolist(), bars.high.tolist(), bars.low.tolist(),
               bars.close.tolist(), bars.volume.tolist())
    for values in zip(*columns):
        bar = _Bar()
        bar.open_time_ms, bar.open, bar.high, bar.low, bar.close, bar.volume = values
        yield bar
