"""Momentum: impulse or fading, from rate of change, range expansion and volume.

Pure: no Django, no I/O, no clock.
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Momentum:
    state: str                  # "up", "down", "fading" or "neutral"
    roc_atr: float              # close change over `period` bars, in ATRs
    range_expansion: float      # last bar's range / ATR
    volume_ratio: float         # last bar's volume / mean of the previous `period` bars


def momentum(close: np.ndarray, high: np.ndarray, low: np.ndarray, volume: np.ndarray,
             atr_value: float, period: int = 12, impulse_atr: float = 1.0) -> Momentum:
    """Return the momentum at the last bar; needs period + 1 bars and a positive ATR."""
    if len(close) <= period or not atr_value > 0:
        return Momentum("neutral", 0.0, 0.0, 0.0)
    roc_atr = float((close[-1] - close[-1 - period]) / atr_value)
    range_expansion = float((high[-1] - low[-1]) / atr_value)
    past_volume = float(np.mean(volume[-1 - period:-1]))
    volume_ratio = float(volume[-1] / past_volume) if past_volume > 0 else 0.0
    half = max(1, period // 2)
    recent_atr = float((close[-1] - close[-1 - half]) / atr_value)
    if abs(roc_atr) >= impulse_atr and np.sign(recent_atr) == np.sign(roc_atr) and abs(recent_atr) >= impulse_atr / 3:
        state = "up" if roc_atr > 0 else "down"
    elif abs(roc_atr) >= impulse_atr:
        # The move is there over the window but the recent half no longer pushes it.
        state = "fading"
    else:
        state = "neutral"
    return Momentum(state, roc_atr, range_expansion, volume_ratio)
