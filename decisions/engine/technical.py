"""The four technical strategies: EMA cross, RSI, Bollinger bands and ATR breakout.

Pure: no Django, no I/O, no clock. Each gives `votes(bars)` over a whole history (value i uses
bars[:i+1] only) and `vote(inp)` on the last bar with its reason. Indicators come from
analytics.features.shared, never recomputed here: the snapshot of the same bars has already
computed most of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from analytics.features.shared import atr_of, bollinger_of, ema_of, rsi_of
from analytics.snapshot import Bars
from decisions.engine.votes import Signals, StrategyInput, Vote, _bars_since, _last_vote, _previous, _price, _require, \
    _signals, _Technical


def _trailing(values: np.ndarray, window: int, ufunc) -> np.ndarray:
    """Return ufunc over each value and the window - 1 before it; the first windows see NaN before the start.

    Shifted slices rather than pandas' rolling: the same extremes (min and max are exact) without
    building a Series, which costs more than the work on a live window of a few hundred bars.
    """
    n = len(values)
    padded = np.concatenate((np.full(window - 1, np.nan), np.asarray(values, np.float64)))
    out = padded[:n]
    for j in range(1, window):
        out = ufunc(out, padded[j:j + n])
    return out


@dataclass(frozen=True, slots=True)
class EmaCrossParams:
    fast: int = 21
    slow: int = 55
    max_age_bars: int = 10              # an older cross is no longer a signal
    atr_period: int = 14
    full_strength_gap_atr: float = 1.0  # EMA gap, in ATRs, that earns strength 1

    def __post_init__(self) -> None:
        _require(1 <= self.fast < self.slow, f"EMA cross needs 1 <= fast < slow, got {self.fast} and {self.slow}")
        _require(self.max_age_bars >= 0, f"max_age_bars must be >= 0, got {self.max_age_bars}")
        _require(self.atr_period >= 1 and self.full_strength_gap_atr > 0,
                 "atr_period must be >= 1 and full_strength_gap_atr > 0")


@dataclass(frozen=True, slots=True)
class EmaCross(_Technical):
    """Long while the fast EMA is above the slow one after a cross at most `max_age_bars` ago."""

    params: EmaCrossParams = EmaCrossParams()
    name: ClassVar[str] = "ema_cross"

    def _series(self, bars: Bars) -> tuple[Signals, dict]:
        p = self.params
        fast, slow = ema_of(bars, p.fast), ema_of(bars, p.slow)
        gap = fast - slow
        before = _previous(gap)
        with np.errstate(invalid="ignore", divide="ignore"):
            up_age = _bars_since((gap > 0) & (before <= 0))
            down_age = _bars_since((gap < 0) & (before >= 0))
            gap_atr = gap / atr_of(bars, p.atr_period)
            long = (gap_atr > 0) & (up_age >= 0) & (up_age <= p.max_age_bars)
            short = (gap_atr < 0) & (down_age >= 0) & (down_age <= p.max_age_bars)
        signals = _signals(long, short, np.abs(gap_atr) / p.full_strength_gap_atr)
        return signals, {"fast": fast, "slow": slow, "gap_atr": gap_atr, "up_age": up_age, "down_age": down_age}

    def vote(self, inp: StrategyInput) -> Vote:
        """Return the vote on the last bar, naming the cross and its age."""
        p = self.params
        if len(inp.bars) < p.slow:
            return Vote(self.name, 0, 0.0, f"EMA {p.slow} needs {p.slow} bars, have {len(inp.bars)}")
        signals, s = self._series(inp.bars)
        fast, slow, gap_atr = s["fast"][-1], s["slow"][-1], s["gap_atr"][-1]
        above = fast > slow
        age = int((s["up_age"] if above else s["down_age"])[-1])
        relation = (f"fast {_price(fast)} {'>' if above else '<'} slow {_price(slow)}, "
                    f"gap {abs(gap_atr):.2f} ATR")
        if fast == slow:
            reason = f"EMA {p.fast} equals EMA {p.slow} ({_price(fast)})"
        elif age < 0:
            reason = (f"EMA {p.fast} {'above' if above else 'below'} EMA {p.slow} "
                      f"with no cross in the window ({relation})")
        elif signals[0][-1] == 0:
            reason = (f"no fresh cross: EMA {p.fast} crossed {'above' if above else 'below'} EMA {p.slow} "
                      f"{age} bars ago, more than {p.max_age_bars} ({relation})")
        else:
            reason = f"EMA {p.fast} crossed {'above' if above else 'below'} EMA {p.slow} {age} bars ago ({relation})"
        return _last_vote(self.name, signals, reason)


@dataclass(frozen=True, slots=True)
class RsiParams:
    period: int = 14
    oversold: float = 30.0
    overbought: float = 70.0
    full_strength_depth: float = 10.0   # RSI points the dip went past the level for strength 1

    def __post_init__(self) -> None:
        _require(self.period >= 1, f"RSI period must be >= 1, got {self.period}")
        _require(0 < self.oversold < self.overbought < 100,
                 f"RSI levels need 0 < oversold < overbought < 100, got {self.oversold} and {self.overbought}")
        _require(self.full_strength_depth > 0, "full_strength_depth must be > 0")


@dataclass(frozen=True, slots=True)
class Rsi(_Technical):
    """Mean reversion: long when RSI rises back to oversold from below, short from above overbought."""

    params: RsiParams = RsiParams()
    name: ClassVar[str] = "rsi"

    def _series(self, bars: Bars) -> tuple[Signals, dict]:
        p = self.params
        now = rsi_of(bars, p.period)
        before = _previous(now)
        # The extreme of the excursion that just ended: the deeper the dip, the stronger the turn.
        # fmin/fmax skip NaN, as pandas' rolling(period, min_periods=1) did: NaN only while all are NaN.
        trough = _trailing(before, p.period, np.fmin)
        peak = _trailing(before, p.period, np.fmax)
        with np.errstate(invalid="ignore"):
            long = (before < p.oversold) & (now >= p.oversold)
            short = (before > p.overbought) & (now <= p.overbought)
        depth = np.where(long, p.oversold - trough, peak - p.overbought)
        return _signals(long, short, depth / p.full_strength_depth), {
            "now": now, "before": before, "trough": trough, "peak": peak}

    def vote(self, inp: StrategyInput) -> Vote:
        """Return the vote on the last bar, naming the RSI turn and how deep the dip went."""
        p = self.params
        if len(inp.bars) < p.period + 2:
            return Vote(self.name, 0, 0.0, f"RSI {p.period} needs {p.period + 2} bars, have {len(inp.bars)}")
        signals, s = self._series(inp.bars)
        now, before = s["now"][-1], s["before"][-1]
        if signals[0][-1] > 0:
            reason = (f"RSI {p.period} rose back above {p.oversold:g} ({before:.1f} -> {now:.1f}; "
                      f"low {s['trough'][-1]:.1f}, {p.oversold - s['trough'][-1]:.1f} points below)")
        elif signals[0][-1] < 0:
            reason = (f"RSI {p.period} fell back below {p.overbought:g} ({before:.1f} -> {now:.1f}; "
                      f"high {s['peak'][-1]:.1f}, {s['peak'][-1] - p.overbought:.1f} points above)")
        else:
            reason = (f"RSI {p.period} at {now:.1f} (was {before:.1f}): "
                      f"no turn back across {p.oversold:g} or {p.overbought:g}")
        return _last_vote(self.name, signals, reason)


@dataclass(frozen=True, slots=True)
class BollingerParams:
    period: int = 20
    k: float = 2.0
    full_strength_sd: float = 1.0   # standard deviations the previous close sat outside the band for strength 1

    def __post_init__(self) -> None:
        _require(self.period >= 2 and self.k > 0 and self.full_strength_sd > 0,
                 f"Bollinger needs period >= 2, k > 0 and full_strength_sd > 0, got {self.period}, {self.k}")


@dataclass(frozen=True, slots=True)
class Bollinger(_Technical):
    """Long on a close back inside after a close below the lower band; short mirrored."""

    params: BollingerParams = BollingerParams()
    name: ClassVar[str] = "bollinger"

    def _series(self, bars: Bars) -> tuple[Signals, dict]:
        p = self.params
        bands = bollinger_of(bars, p.period, p.k)
        before = {"close": _previous(bars.close), "lower": _previous(bands.lower), "upper": _previous(bands.upper)}
        before_sd = (before["upper"] - before["lower"]) / (2 * p.k)
        with np.errstate(invalid="ignore", divide="ignore"):
            long = (before["close"] < before["lower"]) & (bars.close >= bands.lower)
            short = (before["close"] > before["upper"]) & (bars.close <= bands.upper)
            outside = np.where(long, before["lower"] - before["close"], before["close"] - before["upper"])
            outside_sd = outside / before_sd
        return _signals(long, short, outside_sd / p.full_strength_sd), {
            "lower": bands.lower, "upper": bands.upper, "before": before, "outside_sd": outside_sd}

    def vote(self, inp: StrategyInput) -> Vote:
        """Return the vote on the last bar, naming the band the close came back through."""
        p = self.params
        if len(inp.bars) < p.period + 1:
            return Vote(self.name, 0, 0.0, f"Bollinger {p.period} needs {p.period + 1} bars, have {len(inp.bars)}")
        signals, s = self._series(inp.bars)
        close, lower, upper = inp.bars.close[-1], s["lower"][-1], s["upper"][-1]
        side = signals[0][-1]
        if side:
            band = "lower" if side > 0 else "upper"
            reason = (f"close {_price(close)} back inside the {band} band {_price(lower if side > 0 else upper)} "
                      f"after closing {s['outside_sd'][-1]:.2f} SD {'below' if side > 0 else 'above'} it "
                      f"(previous close {_price(s['before']['close'][-1])}; Bollinger {p.period}, k {p.k:g})")
        elif close < lower or close > upper:
            reason = (f"close {_price(close)} outside the bands {_price(lower)}..{_price(upper)}: "
                      "waiting for a close back inside")
        else:
            reason = f"close {_price(close)} inside the bands {_price(lower)}..{_price(upper)} with no re-entry"
        return _last_vote(self.name, signals, reason)


@dataclass(frozen=True, slots=True)
class AtrBreakoutParams:
    atr_period: int = 14
    lookback: int = 20
    multiple: float = 0.5
    full_strength_atr: float = 1.0  # close past the breakout level, in ATRs, for strength 1

    def __post_init__(self) -> None:
        _require(self.atr_period >= 1 and self.lookback >= 1,
                 f"ATR breakout needs atr_period and lookback >= 1, got {self.atr_period} and {self.lookback}")
        _require(self.multiple >= 0 and self.full_strength_atr > 0, "multiple must be >= 0 and full_strength_atr > 0")


@dataclass(frozen=True, slots=True)
class AtrBreakout(_Technical):
    """Long when the close clears the previous `lookback` bars' high by `multiple` ATRs; short mirrored."""

    params: AtrBreakoutParams = AtrBreakoutParams()
    name: ClassVar[str] = "atr_breakout"

    def _series(self, bars: Bars) -> tuple[Signals, dict]:
        p = self.params
        # The ATR of the previous bar: the level is fixed before the bar that may break it.
        atr_before = _previous(atr_of(bars, p.atr_period))
        # maximum/minimum propagate NaN: NaN until `lookback` bars, as pandas' rolling(lookback) did.
        highest = _previous(_trailing(bars.high, p.lookback, np.maximum))
        lowest = _previous(_trailing(bars.low, p.lookback, np.minimum))
        up_level, down_level = highest + p.multiple * atr_before, lowest - p.multiple * atr_before
        with np.errstate(invalid="ignore", divide="ignore"):
            long, short = bars.close > up_level, bars.close < down_level
            beyond_atr = np.where(long, bars.close - up_level, down_level - bars.close) / atr_before
        return _signals(long, short, beyond_atr / p.full_strength_atr), {
            "atr": atr_before, "highest": highest, "lowest": lowest, "up": up_level, "down": down_level,
            "beyond_atr": beyond_atr}

    def vote(self, inp: StrategyInput) -> Vote:
        """Return the vote on the last bar, naming the level the close broke."""
        p = self.params
        need = max(p.atr_period, p.lookback) + 1
        if len(inp.bars) < need:
            return Vote(self.name, 0, 0.0, f"ATR breakout needs {need} bars, have {len(inp.bars)}")
        signals, s = self._series(inp.bars)
        close, side = inp.bars.close[-1], signals[0][-1]
        atr_text = f"{p.multiple:g} x ATR {_price(s['atr'][-1])}"
        if side > 0:
            reason = (f"close {_price(close)} broke above the {p.lookback}-bar high {_price(s['highest'][-1])} "
                      f"+ {atr_text} = {_price(s['up'][-1])} by {s['beyond_atr'][-1]:.2f} ATR")
        elif side < 0:
            reason = (f"close {_price(close)} broke below the {p.lookback}-bar low {_price(s['lowest'][-1])} "
                      f"- {atr_text} = {_price(s['down'][-1])} by {s['beyond_atr'][-1]:.2f} ATR")
        else:
            reason = (f"close {_price(close)} inside {_price(s['down'][-1])}..{_price(s['up'][-1])} "
                      f"({p.lookback}-bar range {_price(s['lowest'][-1])}..{_price(s['highest'][-1])} +/- {atr_text})")
        return _last_vote(self.name, signals, reason)
