"""Market structure: confirmed swing highs/lows, HH/HL/LH/LL labels, trend and break of structure.

Pure: no Django, no I/O, no clock. A swing at bar i is confirmed only at bar i + pivot_length,
once the bars to its right exist, so nothing here looks ahead.
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Swing:
    index: int          # bar of the extreme
    confirmed_at: int   # first bar at which it is known (index + pivot_length)
    price: float
    kind: str           # "high" or "low"
    label: str          # HH / LH for highs, HL / LL for lows; "" for the first of its kind


@dataclass(frozen=True, slots=True)
class Structure:
    swings: tuple[Swing, ...]
    trend: str                      # "up", "down" or "range"
    last_high: Swing | None
    last_low: Swing | None
    break_of_structure: str         # "bullish", "bearish" or "" at the last bar


def swing_points(high: np.ndarray, low: np.ndarray, pivot_length: int) -> list[Swing]:
    """Return confirmed swings in bar order, labelled against the previous swing of their kind."""
    k = pivot_length
    n = len(high)
    swings: list[Swing] = []
    prev = {"high": None, "low": None}
    for i in range(k, n - k):
        window_h = high[i - k:i + k + 1]
        window_l = low[i - k:i + k + 1]
        # Strict on the left, non-strict on the right: a flat top is counted once, at its first bar.
        if high[i] > window_h[:k].max() and high[i] >= window_h[k + 1:].max():
            swings.append(_labelled(i, k, float(high[i]), "high", prev))
        if low[i] < window_l[:k].min() and low[i] <= window_l[k + 1:].min():
            swings.append(_labelled(i, k, float(low[i]), "low", prev))
    return swings


def _labelled(i: int, k: int, price: float, kind: str, prev: dict) -> Swing:
    before = prev[kind]
    if before is None:
        label = ""
    elif kind == "high":
        label = "HH" if price > before else "LH"
    else:
        label = "HL" if price > before else "LL"
    prev[kind] = price
    return Swing(index=i, confirmed_at=i + k, price=price, kind=kind, label=label)


def market_structure(high: np.ndarray, low: np.ndarray, close: np.ndarray, pivot_length: int = 3) -> Structure:
    """Return the structure as known at the last bar."""
    swings = swing_points(np.asarray(high, float), np.asarray(low, float), pivot_length)
    last_high = next((s for s in reversed(swings) if s.kind == "high"), None)
    last_low = next((s for s in reversed(swings) if s.kind == "low"), None)
    labels = {s.label for s in (last_high, last_low) if s is not None}
    if labels == {"HH", "HL"}:
        trend = "up"
    elif labels == {"LH", "LL"}:
        trend = "down"
    else:
        trend = "range"
    bos = ""
    if len(close) >= 2:
        if last_high is not None and close[-1] > last_high.price >= close[-2]:
            bos = "bullish"
        elif last_low is not None and close[-1] < last_low.price <= close[-2]:
            bos = "bearish"
    return Structure(tuple(swings), trend, last_high, last_low, bos)
