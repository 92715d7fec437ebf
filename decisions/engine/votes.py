"""Votes: what every strategy returns, the input it reads, and the helpers the strategies share.

Pure: no Django, no I/O, no clock. Side is +1 long, -1 short, 0 none; strength is in [0, 1] and 0
whenever the side is 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from analytics.snapshot import Bars, MarketSnapshot
from decisions.engine.rules import FlowView, RuleParams

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
