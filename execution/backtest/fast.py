"""Event-driven backtest of a target-position signal on numpy arrays. Pure: no Django, no I/O, no clock.

A signal strategy states its target position at each bar's close: +1 long, -1 short, 0 flat.
Every change of target is filled at the next bar's open, and every fill pays `fee_fraction` of its
notional. Only the bars where the target changes are visited: `np.flatnonzero` on the diff finds
them all at once (the vectorised search for the next trigger), and one Python loop walks those
events, closing and opening trades. A bar without a change cannot trade, so skipping it is exact.

Conventions:
- Bar indexes are positions in the arrays. A trade's `entry_bar` and `exit_bar` are its fill bars
  (the bar after the decision), as backtesting.py reports EntryBar and ExitBar.
- A flip (+1 to -1) is two fills at the same open: the exit of the old trade, then the entry of the new.
- A change decided on the last bar is dropped: there is no next open to fill it. A position still
  held after the last bar is returned as `open_trade` and is not closed.
- fees_usdt = quantity * entry_price * fee + quantity * exit_price * fee;
  pnl_usdt = side * quantity * (exit_price - entry_price) - fees_usdt. The equity after a trade is
  the initial equity plus the pnl of every closed trade (realised: the open trade's entry fee
  counts when it closes).
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np
import pandas as pd


@dataclass(frozen=True, slots=True)
class FastConfig:
    """Costs and sizing of a run: a fixed `quantity`, or, with None, a fraction of the realised equity."""

    fee_fraction: float = 0.0004          # of each fill's notional: 0.0004 = 0.04 %
    initial_equity_usdt: float = 10_000.0
    quantity: float | None = None         # base units per trade, the same for every trade
    equity_fraction: float = 1.0          # with quantity None: entry notional / realised equity at the entry

    def __post_init__(self) -> None:
        if not 0 <= self.fee_fraction < 1:
            raise ValueError(f"fee_fraction {self.fee_fraction} must be in [0, 1)")
        if self.quantity is not None and not self.quantity > 0:
            raise ValueError(f"quantity {self.quantity} must be positive")
        if not self.equity_fraction > 0 or not self.initial_equity_usdt > 0:
            raise ValueError("initial_equity_usdt and equity_fraction must be positive")


@dataclass(frozen=True, slots=True)
class BarTrade:
    """One closed trade; bars are array indexes, `pnl_usdt` is net of `fees_usdt`."""

    entry_bar: int
    exit_bar: int
    side: int                # +1 long, -1 short
    entry_price: float
    exit_price: float
    quantity: float          # base units
    fees_usdt: float
    pnl_usdt: float


@dataclass(frozen=True, slots=True)
class OpenTrade:
    """The position still held after the last bar."""

    entry_bar: int
    side: int
    entry_price: float
    quantity: float
    entry_fee_usdt: float


@dataclass(frozen=True, slots=True, eq=False)
class FastResult:
    """Closed trades as columns, one row a trade in exit order, and the realised equity after each."""

    entry_bar: np.ndarray        # int64
    exit_bar: np.ndarray         # int64
    side: np.ndarray             # int8, +1 long, -1 short
    entry_price: np.ndarray
    exit_price: np.ndarray
    quantity: np.ndarray
    fees_usdt: np.ndarray
    pnl_usdt: np.ndarray
    equity_usdt: np.ndarray      # after each trade closes
    open_trade: OpenTrade | None
    fills: int                   # fills made, including the open trade's entry

    def __len__(self) -> int:
        return len(self.entry_bar)

    def trades(self) -> list[BarTrade]:
        """Return the closed trades as rows."""
        columns = (self.entry_bar, self.exit_bar, self.side, self.entry_price, self.exit_price,
                   self.quantity, self.fees_usdt, self.pnl_usdt)
        return [BarTrade(*row) for row in zip(*(c.tolist() for c in columns))]


def ema_from_first(values: np.ndarray, period: int) -> np.ndarray:
    """Return the EMA with alpha = 2 / (period + 1) seeded with the first value.

    ema[0] = values[0], ema[t] = (1 - alpha) * ema[t-1] + alpha * values[t]: pandas'
    ewm(span=period, adjust=False).mean(), which computes it. Values must be finite.
    """
    if period < 1:
        raise ValueError(f"period {period} must be at least 1")
    values = np.asarray(values, dtype=float)
    return pd.Series(values).ewm(span=period, adjust=False).mean().to_numpy()


def ema_cross_positions(close: np.ndarray, fast: int = 12, slow: int = 26) -> np.ndarray:
    """Return the target per bar (int8): +1 while EMA(fast) > EMA(slow) at the close, -1 while below.

    Both EMAs are `ema_from_first`. A tie keeps the previous target; the leading ties are 0 (bar 0
    is always one: both EMAs start at the first close), so the series is always in the market
    after the first difference. Closes must be finite.
    """
    if not 1 <= fast < slow:
        raise ValueError(f"need 1 <= fast < slow, got fast {fast}, slow {slow}")
    close = np.asarray(close, dtype=float)
    if not np.isfinite(close).all():
        raise ValueError("close must be finite")
    sign = np.sign(ema_from_first(close, fast) - ema_from_first(close, slow)).astype(np.int8)
    # Index of the latest bar with a strict inequality, carried forward over ties.
    latest = np.where(sign != 0, np.arange(len(sign)), 0)
    np.maximum.accumulate(latest, out=latest)
    return sign[latest]


def backtest_signal(open_price: np.ndarray, position: np.ndarray, config: FastConfig = FastConfig()) -> FastResult:
    """Return the trades of `position` (+1/-1/0 per bar, decided at the close) filled at the next opens.

    `open_price` and `position` have one value per bar. Only the fill bars' opens are read; they
    must be positive.
    """
    open_price = np.asarray(open_price, dtype=float)
    targets = _targets(position, len(open_price))
    decided = np.flatnonzero(np.diff(targets, prepend=np.int8(0)))
    # A change decided on the last bar has no next open to fill at.
    fill_bar = decided[decided < len(targets) - 1] + 1
    fill_price = open_price[fill_bar]
    if not (fill_price > 0).all():      # also false for NaN
        bad = int(fill_bar[~(fill_price > 0)][0])
        raise ValueError(f"open at fill bar {bad} is {open_price[bad]}, not a positive price")
    rows, open_trade = _walk(fill_bar.tolist(), fill_price.tolist(), targets[fill_bar - 1].tolist(), config)
    return _result(rows, open_trade)


def _targets(position: np.ndarray, bars: int) -> np.ndarray:
    position = np.asarray(position)
    if position.ndim != 1 or len(position) != bars:
        raise ValueError(f"position has shape {position.shape}; expected ({bars},) like open_price")
    if not np.isin(position, (-1, 0, 1)).all():
        raise ValueError("position may hold only -1, 0 and 1")
    return position.astype(np.int8)


def _walk(bars: list[int], prices: list[float], targets: list[int], config: FastConfig):
    """Fill each change of target in order; return the closed-trade rows and the open trade."""
    fee, fixed, fraction = config.fee_fraction, config.quantity, config.equity_fraction
    equity = config.initial_equity_usdt
    rows = []
    side = entry_bar = 0
    entry_price = quantity = entry_fee = 0.0
    for bar, price, target in zip(bars, prices, targets):
        if side:
            # Same operation order as backtesting.py, so both give the same floats.
            fees = entry_fee + quantity * price * fee
            pnl = side * quantity * (price - entry_price) - fees
            equity += pnl
            rows.append((entry_bar, bar, side, entry_price, price, quantity, fees, pnl, equity))
        side = target
        if side:
            quantity = float(fixed) if fixed is not None else fraction * equity / price
            if quantity <= 0:           # the equity is gone: nothing left to size a trade with
                side = 0
            entry_bar, entry_price, entry_fee = bar, price, quantity * price * fee
    open_trade = OpenTrade(entry_bar, side, entry_price, quantity, entry_fee) if side else None
    return rows, open_trade


def _result(rows: list[tuple], open_trade: OpenTrade | None) -> FastResult:
    # Bar indexes pass through float64 exactly: they stay far below 2 ** 53. fromiter over the
    # flattened rows is about twice as fast as np.array(rows).
    flat = np.fromiter(chain.from_iterable(rows), dtype=float, count=9 * len(rows))
    columns = flat.reshape(len(rows), 9).T.copy()
    return FastResult(
        entry_bar=columns[0].astype(np.int64), exit_bar=columns[1].astype(np.int64),
        side=columns[2].astype(np.int8), entry_price=columns[3], exit_price=columns[4],
        quantity=columns[5], fees_usdt=columns[6], pnl_usdt=columns[7], equity_usdt=columns[8],
        open_trade=open_trade, fills=2 * len(rows) + (open_trade is not None),
    )
