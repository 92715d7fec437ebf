"""Volatility features. Pure: no Django, no I/O, no clock."""
import numpy as np


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """Return the true range per bar; the first bar has no previous close, so it is high - low."""
    prev_close = np.concatenate(([close[0]], close[:-1])) if len(close) else close
    return np.maximum.reduce([high - low, np.abs(high - prev_close), np.abs(low - prev_close)])


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 14) -> np.ndarray:
    """Return Wilder's average true range; NaN until `period` bars exist.

    Seeded with the simple mean of the first `period` true ranges, then
    atr[i] = (atr[i-1] * (period - 1) + tr[i]) / period, as Wilder defined it.
    """
    if period < 1:
        raise ValueError("ATR period must be at least 1")
    tr = true_range(np.asarray(high, float), np.asarray(low, float), np.asarray(close, float))
    out = np.full(len(tr), np.nan)
    if len(tr) < period:
        return out
    value = float(tr[:period].mean())
    out[period - 1] = value
    # A plain loop: the recursion is sequential and Python floats beat numpy scalars here.
    for i, tr_i in enumerate(tr[period:].tolist(), start=period):
        value = (value * (period - 1) + tr_i) / period
        out[i] = value
    return out
