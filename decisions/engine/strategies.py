"""Strategy registry: four technical strategies and the analysts' rule set behind one interface.

Pure: no Django, no I/O, no clock. Every strategy gives two views that agree: `votes(bars)` over a
whole history for backtests (value i uses bars[:i+1] only) and `vote(inp)` on the last bar, with
its reason in words, for the live path. Side is +1 long, -1 short, 0 none; strength is in [0, 1]
and 0 whenever the side is 0. Indicators come from analytics.features, never recomputed here.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import numpy as np
import pandas as pd

from analytics.features.indicators import bollinger, ema, rsi
from analytics.features.momentum import DOWN as MOMENTUM_DOWN, UP as MOMENTUM_UP, momentum_series
from analytics.features.structure import TREND_DOWN, TREND_UP, structure_series
from analytics.features.volatility import atr
from analytics.snapshot import Bars, MarketSnapshot, SnapshotParams, build_snapshot, min_bars
from decisions.engine.rules import FlowView, RuleParams, decide

SIDE_NAMES = {1: "long", -1: "short", 0: "none"}
Signals = tuple[np.ndarray, np.ndarray]     # (side int8, strength float64), one value a bar


@dataclass(frozen=True, slots=True)
class Vote:
    """One strategy's opinion on the last bar."""

    strategy: str
    side: int           # +1 long, -1 short, 0 none
    strength: float     # 0..1, and 0 when side is 0
    reason: str         # a sentence with the numbers behind the vote

    def __post_init__(self) -> None:
        if self.side not in (-1, 0, 1):
            raise ValueError(f"vote side must be -1, 0 or 1, got {self.side}")
        if not 0.0 <= self.strength <= 1.0 or (self.side == 0 and self.strength != 0.0):
            raise ValueError(f"vote strength must be in [0, 1] and 0 without a side, got {self.strength}")


@dataclass(frozen=True, slots=True)
class StrategyInput:
    """What every strategy's `vote` reads; the technical strategies use the bars only."""

    bars: Bars
    snapshot: MarketSnapshot | None = None      # rule set: built from the bars when missing
    flow: FlowView | None = None                # rule set: None skips the flow filters
    rule_params: RuleParams = field(default_factory=RuleParams)


class Strategy(Protocol):
    """A named voter: `votes` over a whole history (causal), `vote` on the last bar with a reason."""

    @property
    def name(self) -> str: ...

    def votes(self, bars: Bars) -> Signals: ...

    def vote(self, inp: StrategyInput) -> Vote: ...


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _previous(values: np.ndarray) -> np.ndarray:
    out = np.full(len(values), np.nan)
    out[1:] = values[:-1]
    return out


def _bars_since(event: np.ndarray) -> np.ndarray:
    """Return the bars since the latest True at or before each bar, -1 before the first."""
    index = np.arange(len(event))
    latest = np.maximum.accumulate(np.where(event, index, -1)) if len(event) else index
    return np.where(latest >= 0, index - latest, -1)


def _signals(long: np.ndarray, short: np.ndarray, strength: np.ndarray) -> Signals:
    side = long.astype(np.int8) - short.astype(np.int8)
    # A zero ATR or spread divides to inf: the move is as clear as it gets, so it clips to 1.
    capped = np.clip(np.nan_to_num(strength, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    return side, np.where(side != 0, capped, 0.0)


def _price(value: float) -> str:
    return f"{value:.6g}"


class _Technical:
    __slots__ = ()

    def votes(self, bars: Bars) -> Signals:
        """Return side and strength at every bar."""
        return self._series(bars)[0]


def _last_vote(name: str, signals: Signals, reason: str) -> Vote:
    side, strength = signals
    return Vote(name, int(side[-1]), float(strength[-1]), reason)


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
        fast, slow = ema(bars.close, p.fast), ema(bars.close, p.slow)
        gap = fast - slow
        before = _previous(gap)
        with np.errstate(invalid="ignore", divide="ignore"):
            up_age = _bars_since((gap > 0) & (before <= 0))
            down_age = _bars_since((gap < 0) & (before >= 0))
            gap_atr = gap / atr(bars.high, bars.low, bars.close, p.atr_period)
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
        now = rsi(bars.close, p.period)
        before = pd.Series(_previous(now))
        # The extreme of the excursion that just ended: the deeper the dip, the stronger the turn.
        trough = before.rolling(p.period, min_periods=1).min().to_numpy()
        peak = before.rolling(p.period, min_periods=1).max().to_numpy()
        before = before.to_numpy()
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
        bands = bollinger(bars.close, p.period, p.k)
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
        atr_before = _previous(atr(bars.high, bars.low, bars.close, p.atr_period))
        highest = pd.Series(bars.high).rolling(p.lookback).max().shift(1).to_numpy()
        lowest = pd.Series(bars.low).rolling(p.lookback).min().shift(1).to_numpy()
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


@dataclass(frozen=True, slots=True)
class RuleSetParams:
    snapshot: SnapshotParams = field(default_factory=SnapshotParams)  # periods shared with build_snapshot
    full_strength_roc_atr: float = 3.0  # momentum ROC, in ATRs, for strength 1 (the rule fires from 1)

    def __post_init__(self) -> None:
        _require(self.full_strength_roc_atr > 0, "full_strength_roc_atr must be > 0")


@dataclass(frozen=True, slots=True)
class RuleSetStrategy:
    """The analysts' rule (decisions.engine.rules.decide): structure and momentum aligned, flow agreeing.

    `votes` has no per-bar flow history, so it applies structure and momentum only; `vote` runs
    `decide` itself and so also applies the flow filters of the input.
    """

    params: RuleSetParams = field(default_factory=RuleSetParams)
    name: ClassVar[str] = "rules"

    def votes(self, bars: Bars) -> Signals:
        """Return side and strength at every bar, as `decide` without flow would give them."""
        p = self.params.snapshot
        high, low, close = bars.high, bars.low, bars.close
        atr_values = atr(high, low, close, p.atr_period)
        trend = structure_series(high, low, close, p.pivot_length).trend
        mom = momentum_series(close, high, low, bars.volume, atr_values, p.momentum_period)
        with np.errstate(invalid="ignore"):
            # build_snapshot refuses fewer than min_bars bars, so decide never sees them.
            ready = (np.arange(len(bars)) >= min_bars(p) - 1) & (atr_values > 0)
        long = ready & (trend == TREND_UP) & (mom.state_code == MOMENTUM_UP)
        short = ready & (trend == TREND_DOWN) & (mom.state_code == MOMENTUM_DOWN)
        return _signals(long, short, np.abs(mom.roc_atr) / self.params.full_strength_roc_atr)

    def vote(self, inp: StrategyInput) -> Vote:
        """Return decide()'s verdict on the last bar; its reason and rationale become the reason."""
        p = self.params.snapshot
        snapshot = inp.snapshot
        if snapshot is None:
            if len(inp.bars) < min_bars(p):
                return Vote(self.name, 0, 0.0, f"rule set needs {min_bars(p)} bars, have {len(inp.bars)}")
            snapshot = build_snapshot(inp.bars, p)
        signal = decide(snapshot, inp.rule_params, inp.flow)
        side = {"LONG": 1, "SHORT": -1}.get(signal.action, 0)
        roc_atr = abs(snapshot.roc_atr) if math.isfinite(snapshot.roc_atr) else 0.0
        strength = min(1.0, roc_atr / self.params.full_strength_roc_atr) if side else 0.0
        return Vote(self.name, side, strength, "; ".join((signal.reason, *signal.rationale)))


REGISTRY: dict[str, Callable[..., Strategy]] = {
    "rules": RuleSetStrategy,
    "ema_cross": EmaCross,
    "rsi": Rsi,
    "bollinger": Bollinger,
    "atr_breakout": AtrBreakout,
}
# The params dataclass each strategy takes, for the admin to build from its fields.
PARAMS_TYPES: dict[str, type] = {name: type(factory().params) for name, factory in REGISTRY.items()}


def strategies_from_names(names: str, params_by_name: Mapping[str, object] | None = None) -> tuple[Strategy, ...]:
    """Return the strategies of a comma-separated list, in order; raise ValueError on a bad list.

    `params_by_name` maps a strategy name to its params dataclass (PARAMS_TYPES); a missing
    entry takes the defaults.
    """
    params_by_name = params_by_name or {}
    wanted = [n.strip().lower() for n in names.split(",") if n.strip()]
    known = ", ".join(REGISTRY)
    if not wanted:
        raise ValueError(f"no strategy named; choose from {known}")
    unknown = [n for n in wanted if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown strategy {', '.join(map(repr, unknown))}; choose from {known}")
    repeated = sorted({n for n in wanted if wanted.count(n) > 1})
    if repeated:
        raise ValueError(f"strategy {', '.join(map(repr, repeated))} listed more than once")
    out = []
    for name in wanted:
        params = params_by_name.get(name)
        if params is not None and not isinstance(params, PARAMS_TYPES[name]):
            raise ValueError(f"params for {name!r} must be {PARAMS_TYPES[name].__name__}, got {type(params).__name__}")
        out.append(REGISTRY[name]() if params is None else REGISTRY[name](params))
    return tuple(out)
