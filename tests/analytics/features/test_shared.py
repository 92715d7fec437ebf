"""Series shared within one bars window: equal to a fresh computation, never carried to another window."""
import dataclasses

import numpy as np
import pytest

from analytics.features.indicators import bollinger, ema, rsi
from analytics.features.shared import atr_of, bollinger_of, ema_of, rsi_of, structure_of
from analytics.features.structure import structure_series
from analytics.features.volatility import atr
from analytics.snapshot import Bars, SnapshotParams, build_snapshot
from decisions.engine.strategies import StrategyInput
from decisions.engine.technical import AtrBreakout, Bollinger, EmaCross, Rsi


def _bars(seed: int = 1, n: int = 300) -> Bars:
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    high, low = close + rng.uniform(0, 1, n), close - rng.uniform(0, 1, n)
    return Bars(np.arange(n, dtype=np.int64) * 900_000, close, high, low, close, rng.uniform(1, 10, n), 900_000)


def _bits(value) -> list[bytes]:
    arrays = [getattr(value, f.name) for f in dataclasses.fields(value)] if dataclasses.is_dataclass(value) else [value]
    return [np.asarray(a).tobytes() for a in arrays]


# Each shared series, then the same function called on the bars' arrays.
CASES = [
    (lambda b: ema_of(b, 21), lambda b: ema(b.close, 21)),
    (lambda b: rsi_of(b, 14), lambda b: rsi(b.close, 14)),
    (lambda b: bollinger_of(b, 20, 2.0), lambda b: bollinger(b.close, 20, 2.0)),
    (lambda b: atr_of(b, 14), lambda b: atr(b.high, b.low, b.close, 14)),
    (lambda b: structure_of(b, 3), lambda b: structure_series(b.high, b.low, b.close, 3)),
]


@pytest.mark.parametrize("shared_series, fresh", CASES)
def test_shared_series_equals_fresh_computation_bit_for_bit(shared_series, fresh):
    bars = _bars()

    first, again = shared_series(bars), shared_series(bars)

    assert again is first
    assert _bits(first) == _bits(fresh(bars))


@pytest.mark.parametrize("shared_series, fresh", CASES)
def test_shared_series_of_another_window_is_computed_for_that_window(shared_series, fresh):
    bars = _bars()
    shared_series(bars)
    shifted = dataclasses.replace(bars, close=bars.close + 1.0, high=bars.high + 1.0, low=bars.low + 1.0)

    for other in (bars.upto(200), shifted):
        assert other.memo == {}
        assert _bits(shared_series(other)) == _bits(fresh(other))


def test_shared_series_keyed_by_parameters():
    bars = _bars()

    fast, slow = ema_of(bars, 21), ema_of(bars, 55)

    assert _bits(fast) == _bits(ema(bars.close, 21))
    assert _bits(slow) == _bits(ema(bars.close, 55))
    assert not np.array_equal(fast, slow, equal_nan=True)


def test_shared_series_are_read_only():
    bars = _bars()

    with pytest.raises(ValueError, match="read-only"):
        ema_of(bars, 21)[-1] = 0.0
    with pytest.raises(ValueError, match="read-only"):
        bollinger_of(bars, 20, 2.0).upper[-1] = 0.0


def test_strategies_reuse_the_snapshot_series_of_the_same_bars():
    bars = _bars()
    build_snapshot(bars, SnapshotParams())
    computed = dict(bars.memo)

    for strategy in (EmaCross(), Rsi(), Bollinger(), AtrBreakout()):
        strategy.vote(StrategyInput(bars))

    # EMA 21/55, RSI 14, Bollinger 20/2 and ATR 14 are the snapshot's: the votes added nothing.
    assert bars.memo.keys() == computed.keys()
    assert all(bars.memo[key] is value for key, value in computed.items())


def test_bars_replace_starts_an_empty_memo_and_repr_omits_it():
    bars = _bars()
    ema_of(bars, 21)

    assert "memo" not in repr(bars)
    assert dataclasses.replace(bars).memo == {}
