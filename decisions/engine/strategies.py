"""Strategy registry: four technical strategies and the analysts' rule set behind one interface.

Pure: no Django, no I/O, no clock. Every strategy gives two views that agree: `votes(bars)` over a
whole history for backtests (value i uses bars[:i+1] only) and `vote(inp)` on the last bar, with
its reason in words, for the live path. The votes and shared helpers are in decisions.engine.votes,
the technical strategies in decisions.engine.technical; the rule set and the registry are here.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from analytics.features.momentum import DOWN as MOMENTUM_DOWN, UP as MOMENTUM_UP, momentum_series
from analytics.features.structure import TREND_DOWN, TREND_UP, structure_series
from analytics.features.volatility import atr
from analytics.snapshot import Bars, SnapshotParams, build_snapshot, min_bars
from decisions.engine.rules import decide
from decisions.engine.technical import (AtrBreakout, AtrBreakoutParams, Bollinger, BollingerParams, EmaCross,
                                        EmaCrossParams, Rsi, RsiParams)
from decisions.engine.votes import SIDE_NAMES, Signals, Strategy, StrategyInput, Vote, _require, _signals

__all__ = ["PARAMS_TYPES", "REGISTRY", "SIDE_NAMES", "AtrBreakout", "AtrBreakoutParams", "Bollinger", "BollingerParams",
           "EmaCross", "EmaCrossParams", "RuleSetParams", "RuleSetStrategy", "Rsi", "RsiParams", "Signals", "Strategy",
           "StrategyInput", "Vote", "strategies_from_names"]


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
