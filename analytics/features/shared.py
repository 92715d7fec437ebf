"""Indicator series of one bars window, computed once and shared by the snapshot and the strategies.

Pure: no Django, no I/O, no clock. A live cycle builds the snapshot and then lets the strategies
vote on the same bars; each strategy used to recompute the EMAs, RSI, Bollinger bands and ATR the
snapshot had just computed. Here a series is computed on first use and kept in the `memo` of that
`Bars` object, keyed by the function and its parameters, so it lives exactly as long as the window:
every cycle and every backtest bar builds a new `Bars`, which starts with an empty memo.

Bars arrays are never written after construction (the selectors hand out copies), so a series
stays valid for the object's lifetime. The shared arrays are made read-only: a caller that tried
to change one would fail loudly instead of corrupting what the next reader sees.
"""
from __future__ import annotations

from dataclasses import fields, is_dataclass
from functools import cache
from typing import TYPE_CHECKING, Callable, TypeVar

import numpy as np

from analytics.features.indicators import Bollinger, bollinger, ema, rsi
from analytics.features.structure import StructureSeries, structure_series
from analytics.features.volatility import atr

if TYPE_CHECKING:
    from analytics.snapshot import Bars

T = TypeVar("T")


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _read_only(value: T) -> T:
    arrays = [getattr(value, name) for name in _field_names(type(value))] if is_dataclass(value) else [value]
    for array in arrays:
        if isinstance(array, np.ndarray):
            array.flags.writeable = False
    return value


def shared(bars: Bars, key: tuple, compute: Callable[[], T]) -> T:
    """Return `compute()` for these bars, computed on the first call with `key` and reused after."""
    memo = bars.memo
    if key not in memo:
        memo[key] = _read_only(compute())
    return memo[key]


def ema_of(bars: Bars, period: int) -> np.ndarray:
    """Return `ema(bars.close, period)`, shared within the window."""
    return shared(bars, (ema, period), lambda: ema(bars.close, period))


def rsi_of(bars: Bars, period: int) -> np.ndarray:
    """Return `rsi(bars.close, period)`, shared within the window."""
    return shared(bars, (rsi, period), lambda: rsi(bars.close, period))


def bollinger_of(bars: Bars, period: int, k: float) -> Bollinger:
    """Return `bollinger(bars.close, period, k)`, shared within the window."""
    return shared(bars, (bollinger, period, k), lambda: bollinger(bars.close, period, k))


def atr_of(bars: Bars, period: int) -> np.ndarray:
    """Return Wilder's `atr` of the bars, shared within the window."""
    return shared(bars, (atr, period), lambda: atr(bars.high, bars.low, bars.close, period))


def structure_of(bars: Bars, pivot_length: int) -> StructureSeries:
    """Return `structure_series` of the bars, shared within the window."""
    return shared(bars, (structure_series, pivot_length),
                  lambda: structure_series(bars.high, bars.low, bars.close, pivot_length))
