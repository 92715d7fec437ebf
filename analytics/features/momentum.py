"""Momentum: impulse or fading, from rate of change, range expansion and volume.

Pure: no Django, no I/O, no clock. `momentum` gives the last bar (the snapshot uses it);
`momentum_series` the whole history and `MomentumState` the live path, bar by bar. All three
classify the same way, so a backtest and the live loop see the same state on the same bar.
"""
from collections import deque
from itertools import islice
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# Codes of `MomentumSeries.state_code`: the index in this tuple.
MOMENTUM_STATES = ("neutral", "up", "down", "fading")
NEUTRAL, UP, DOWN, FADING = range(4)
NAN = float("nan")


@dataclass(frozen=True, slots=True)
class Momentum:
    state: str                  # "up", "down", "fading" or "neutral"
    roc_atr: float              # close change over `period` bars, in ATRs
    range_expansion: float      # last bar's range / ATR
    volume_ratio: float         # last bar's volume / mean of the previous `period` bars
    volume_confirmed: bool = False  # volume_ratio >= volume_confirm: participation backs the move


def momentum(close: np.ndarray, high: np.ndarray, low: np.ndarray, volume: np.ndarray,
             atr_value: float, period: int = 12, impulse_atr: float = 1.0,
             volume_confirm: float = 1.2) -> Momentum:
    """Return the momentum at the last bar; needs period + 1 bars and a positive ATR."""
    if len(close) <= period or not atr_value > 0:
        return Momentum("neutral", 0.0, 0.0, 0.0)
    roc_atr = float((close[-1] - close[-1 - period]) / atr_value)
    range_expansion = float((high[-1] - low[-1]) / atr_value)
    past_volume = float(np.mean(volume[-1 - period:-1]))
    volume_ratio = float(volume[-1] / past_volume) if past_volume > 0 else 0.0
    half = max(1, period // 2)
    recent_atr = float((close[-1] - close[-1 - half]) / atr_value)
    state = MOMENTUM_STATES[_classify_one(roc_atr, recent_atr, impulse_atr)]
    return Momentum(state, roc_atr, range_expansion, volume_ratio, volume_ratio >= volume_confirm)


def _sign(x: float) -> int:
    return int(x > 0) - int(x < 0)


def _classify_one(roc_atr: float, recent_atr: float, impulse_atr: float) -> int:
    if abs(roc_atr) < impulse_atr:
        return NEUTRAL
    if _sign(recent_atr) == _sign(roc_atr) and abs(recent_atr) >= impulse_atr / 3:
        return UP if roc_atr > 0 else DOWN
    # The move is there over the window but the recent half no longer pushes it.
    return FADING


@dataclass(frozen=True, slots=True)
class MomentumSeries:
    """Per-bar momentum; floats are NaN (and the state neutral) until period + 1 bars and ATR > 0."""

    state_code: np.ndarray      # int8, index into MOMENTUM_STATES
    roc_atr: np.ndarray
    range_expansion: np.ndarray
    volume_ratio: np.ndarray
    volume_confirmed: np.ndarray  # bool

    def states(self) -> list[str]:
        """Return the state names, one a bar."""
        return [MOMENTUM_STATES[code] for code in self.state_code.tolist()]


def _classify(roc_atr: np.ndarray, recent_atr: np.ndarray, impulse_atr: float) -> np.ndarray:
    impulse = np.abs(roc_atr) >= impulse_atr
    pushing = (np.sign(recent_atr) == np.sign(roc_atr)) & (np.abs(recent_atr) >= impulse_atr / 3)
    code = np.where(impulse, FADING, NEUTRAL)
    code = np.where(impulse & pushing, np.where(roc_atr > 0, UP, DOWN), code)
    return code.astype(np.int8)


def _lagged_change(close: np.ndarray, lag: int) -> np.ndarray:
    out = np.full(len(close), np.nan)
    out[lag:] = close[lag:] - close[:-lag]
    return out


def momentum_series(close: np.ndarray, high: np.ndarray, low: np.ndarray, volume: np.ndarray,
                    atr_values: np.ndarray, period: int = 12, impulse_atr: float = 1.0,
                    volume_confirm: float = 1.2) -> MomentumSeries:
    """Return `momentum` at every bar, given the ATR series (e.g. volatility.atr)."""
    close, high, low, volume, atr_values = (np.asarray(a, float) for a in (close, high, low, volume, atr_values))
    n = len(close)
    with np.errstate(invalid="ignore"):
        defined = (np.arange(n) >= period) & (atr_values > 0)
    scale = np.where(defined, atr_values, np.nan)
    roc_atr = _lagged_change(close, period) / scale
    recent_atr = _lagged_change(close, max(1, period // 2)) / scale
    past_volume = np.full(n, np.nan)
    if n > period:
        past_volume[period:] = sliding_window_view(volume, period)[:-1].mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        volume_ratio = np.where(past_volume > 0, volume / np.where(past_volume > 0, past_volume, 1.0), 0.0)
        volume_ratio[~defined] = np.nan
        code = np.where(defined, _classify(roc_atr, recent_atr, impulse_atr), NEUTRAL).astype(np.int8)
        confirmed = volume_ratio >= volume_confirm
    return MomentumSeries(code, roc_atr, (high - low) / scale, volume_ratio, confirmed)


class MomentumState:
    """Latest momentum, as `momentum_series`; O(period) per bar.

    Unlike `momentum`, which reports zeros, an undefined bar gives NaN floats and "neutral".
    """

    __slots__ = ("period", "impulse_atr", "volume_confirm", "_closes", "_volumes")

    def __init__(self, period: int = 12, impulse_atr: float = 1.0, volume_confirm: float = 1.2):
        self.period, self.impulse_atr, self.volume_confirm = period, impulse_atr, volume_confirm
        self._closes, self._volumes = deque(maxlen=period + 1), deque(maxlen=period + 1)

    def update(self, close: float, high: float, low: float, volume: float, atr_value: float) -> Momentum:
        """Fold in one bar and its ATR and return the momentum of that bar."""
        self._closes.append(close)
        self._volumes.append(volume)
        if len(self._closes) <= self.period or not atr_value > 0:
            return Momentum("neutral", NAN, NAN, NAN, False)
        roc_atr = (close - self._closes[0]) / atr_value
        recent_atr = (close - self._closes[-1 - max(1, self.period // 2)]) / atr_value
        past_volume = sum(islice(self._volumes, self.period)) / self.period
        volume_ratio = volume / past_volume if past_volume > 0 else 0.0
        state = MOMENTUM_STATES[_classify_one(roc_atr, recent_atr, self.impulse_atr)]
        return Momentum(state, roc_atr, (high - low) / atr_value, volume_ratio,
                        volume_ratio >= self.volume_confirm)
