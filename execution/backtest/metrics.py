"""Metrics of a run (backtest or live) from its trades and equity curve. Pure: no Django, no I/O, no clock.

Definitions, stated once:
- Times are epoch ms (UTC) and the run spans [start_ms, end_ms]. Money is Decimal in and out; ratios are float.
- The equity curve is the starting equity at start_ms followed by the given points, in time order.
- Daily returns: one per UTC day of the run, from the day of start_ms to the day of its last instant. A day's
  close is the last curve value stamped at or before the next midnight (so a midnight stamp closes the day that
  ends there, and the last day closes at the final equity); the first day is measured from the starting equity.
- Sharpe = mean / sample standard deviation (ddof 1) of the daily returns * sqrt(365), risk-free rate 0.
  Sortino = mean / downside deviation * sqrt(365), where downside deviation = sqrt(mean(min(r, 0) ** 2)) over
  every day (a day that gains counts as 0). Both need two days. Sharpe is None when the returns do not vary (a
  flat curve); without a losing day Sortino is inf if the mean is positive, else None.
- CAGR compounds the starting into the final equity over the run's calendar span in 365.25-day years, so a short
  run extrapolates; Calmar = CAGR / max drawdown fraction, None without a drawdown.
- Max drawdown duration is the longest time under water: from a peak to the first point that regains it (equal
  counts), or to end_ms if none does.
- Sessions by the UTC hour of the entry: asia [00, 08), europe [08, 16), us [16, 24).
- Trade figures come from the trades' net PnL (fees and funding included); the return, CAGR and ratios from the
  equity curve. A win is PnL > 0, a loss PnL < 0; profit factor is inf without a loss, None without either.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, is_dataclass
from decimal import Decimal
from enum import StrEnum

import numpy as np

ZERO = Decimal(0)
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
YEAR_MS = 365.25 * DAY_MS
TRADING_DAYS_PER_YEAR = 365          # crypto trades every day
FLAT_STD = 1e-12                     # below this the daily returns count as constant: float noise, not risk
SESSIONS = (("asia", 0), ("europe", 8), ("us", 16))   # name and first UTC hour of each 8-hour session


class Side(StrEnum):
    LONG = "LONG"
    SHORT = "SHORT"


class ExitReason(StrEnum):
    """Exit reasons counted on their own; a trade may carry any other reason too."""

    STOP = "stop"
    TARGET = "target"
    LIQUIDATION = "liquidation"
    EXIT = "exit"


@dataclass(frozen=True, slots=True)
class Trade:
    """One closed trade; `pnl_usdt` is net of `fees_usdt` (paid, >= 0) and `funding_usdt` (signed, < 0 paid).

    `risk_usdt` is the initial risk |entry - stop| * quantity: 0 or None when the trade had no stop.
    """

    symbol: str
    side: str                    # "LONG" or "SHORT"
    entry_ms: int
    exit_ms: int
    entry_price: Decimal
    exit_price: Decimal
    quantity: Decimal
    fees_usdt: Decimal
    funding_usdt: Decimal
    pnl_usdt: Decimal
    risk_usdt: Decimal | None
    exit_reason: str

    def __post_init__(self) -> None:
        if self.side not in tuple(Side):
            raise ValueError(f"{self.symbol} trade side {self.side!r} is neither LONG nor SHORT")
        if self.exit_ms < self.entry_ms:
            raise ValueError(f"{self.symbol} trade exit at {self.exit_ms} before entry at {self.entry_ms}")
        if self.quantity <= 0 or self.entry_price <= 0 or self.exit_price <= 0:
            raise ValueError(f"{self.symbol} trade quantity and prices must be positive")

    @property
    def r_multiple(self) -> float | None:
        """Return the net PnL in units of the initial risk, None without a risk."""
        if not self.risk_usdt or self.risk_usdt <= 0:
            return None
        return float(self.pnl_usdt / self.risk_usdt)


@dataclass(frozen=True, slots=True)
class Breakdown:
    """Trades of one symbol or session: count, net PnL and win rate (None without trades)."""

    count: int
    net_pnl_usdt: Decimal
    win_rate: float | None


@dataclass(frozen=True, slots=True)
class Metrics:
    """Every figure of one run; see the module docstring for the definitions."""

    start_ms: int
    end_ms: int
    starting_equity_usdt: Decimal
    final_equity_usdt: Decimal
    net_pnl_usdt: Decimal            # sum of the trades' net PnL
    fees_usdt: Decimal
    funding_usdt: Decimal
    return_fraction: float           # final / starting equity - 1
    cagr: float | None
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    max_drawdown_fraction: float
    max_drawdown_usdt: Decimal
    max_drawdown_duration_ms: int
    exposure_fraction: float | None
    trade_count: int
    win_count: int
    loss_count: int
    win_rate: float | None
    gross_profit_usdt: Decimal
    gross_loss_usdt: Decimal         # positive: the sum of the losing trades' losses
    profit_factor: float | None
    average_r: float | None          # mean R multiple of the trades with a risk
    expectancy_usdt: Decimal | None  # mean net PnL per trade
    expectancy_r: float | None       # their net PnL / their summed risk
    trades_per_day: float | None
    stop_hits: int
    target_hits: int
    liquidation_hits: int
    exit_reasons: dict[str, int]
    by_symbol: dict[str, Breakdown]
    by_session: dict[str, Breakdown]
    buy_and_hold_return_fraction: float | None
    excess_return_fraction: float | None   # strategy minus buy and hold

    def as_dict(self) -> dict:
        """Return the figures as JSON-safe values: Decimal as str, inf as "inf", None kept."""
        return _json_safe(self)


def _json_safe(value):
    if is_dataclass(value):
        return {field.name: _json_safe(getattr(value, field.name)) for field in fields(value)}
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def drawdown_series(equity: Sequence[Decimal] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return per point the drawdown fraction below the running peak (0 at a peak) and that peak."""
    values = np.asarray(equity, dtype=float)
    peak = np.maximum.accumulate(values) if values.size else values
    drawdown = np.divide(peak - values, peak, out=np.zeros_like(values), where=peak > 0)
    return drawdown, peak


def drawdown_points(starting_equity: Decimal, equity: Sequence[Sequence]) -> list[list]:
    """Return a stored equity curve's drawdown: [[ts_ms, fraction below the running peak as text], ...].

    `equity` is `BacktestRun.equity` ([[ts_ms, "equity"], ...]); the starting equity is the first
    peak. Exact in Decimal, to 1e-8 (0 at a peak), the series the report draws in floats.
    """
    points, peak = [], Decimal(starting_equity)
    for ts, value in equity:
        value = Decimal(str(value))
        peak = max(peak, value)
        fraction = (peak - value) / peak if peak > 0 else ZERO
        points.append([int(ts), format(fraction.quantize(Decimal("0.00000001")), "f")])
    return points


def max_drawdown_usdt(equity: Sequence[Decimal]) -> Decimal:
    """Return the largest fall from a running peak, exact in USDT."""
    peak, deepest = None, ZERO
    for value in equity:
        peak = value if peak is None or value > peak else peak
        deepest = max(deepest, peak - value)
    return deepest


def max_drawdown_duration_ms(ts_ms: Sequence[int], equity: Sequence[Decimal], end_ms: int) -> int:
    """Return the longest time from a peak to regaining it, counting a drawdown still open at end_ms."""
    longest, peak, peak_ms, under = 0, None, 0, False
    for ts, value in zip(ts_ms, equity, strict=True):
        if peak is None or value >= peak:
            if under:
                longest = max(longest, ts - peak_ms)
            peak, peak_ms, under = value, ts, False
        else:
            under = True
    return max(longest, end_ms - peak_ms) if under else longest


def daily_returns(ts_ms: Sequence[int], equity: Sequence[Decimal], *, end_ms: int) -> np.ndarray:
    """Return one simple return per UTC day from the first point's day to end_ms; the first point opens the run.

    Precondition: at least one point, timestamps in order, none after end_ms.
    """
    times = np.asarray(ts_ms, dtype=np.int64)
    values = np.asarray(equity, dtype=float)
    first_day = int(times[0]) // DAY_MS
    last_day = max(first_day, (end_ms - 1) // DAY_MS)
    next_midnights = (np.arange(first_day, last_day + 1, dtype=np.int64) + 1) * DAY_MS
    closes = values[np.searchsorted(times, next_midnights, side="right") - 1]
    previous = np.concatenate(([values[0]], closes[:-1]))
    # An account wiped out to 0 stays there: count its later days as 0, not 0 / 0.
    return np.divide(closes - previous, previous, out=np.zeros_like(closes), where=previous > 0)


def sharpe(returns: np.ndarray) -> float | None:
    """Return the annualised Sharpe ratio of daily returns, None under two days or when they do not vary."""
    if len(returns) < 2:
        return None
    deviation = float(np.std(returns, ddof=1))
    if deviation < FLAT_STD:
        return None
    return float(np.mean(returns)) / deviation * math.sqrt(TRADING_DAYS_PER_YEAR)


def sortino(returns: np.ndarray) -> float | None:
    """Return the annualised Sortino ratio of daily returns (downside deviation over every day)."""
    if len(returns) < 2:
        return None
    mean = float(np.mean(returns))
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    if downside < FLAT_STD:
        return math.inf if mean > 0 else None
    return mean / downside * math.sqrt(TRADING_DAYS_PER_YEAR)


def cagr(starting_equity: Decimal, final_equity: Decimal, span_ms: int) -> float | None:
    """Return the compound annual growth rate over span_ms, None for an empty span."""
    if span_ms <= 0:
        return None
    if final_equity <= 0:
        return -1.0
    years = span_ms / YEAR_MS
    try:
        return math.exp(math.log(final_equity / starting_equity) / years) - 1
    except OverflowError:    # a large gain over minutes extrapolates past float range
        return math.inf


def exposure_fraction(trades: Sequence[Trade], start_ms: int, end_ms: int) -> float | None:
    """Return the fraction of the run with at least one trade open; overlapping trades count once."""
    if end_ms <= start_ms:
        return None
    covered, reach = 0, start_ms
    for entry, exit_ in sorted((max(t.entry_ms, start_ms), min(t.exit_ms, end_ms)) for t in trades):
        if exit_ > reach:
            covered += exit_ - max(entry, reach)
            reach = exit_
    return covered / (end_ms - start_ms)


def session_of(ts_ms: int) -> str:
    """Return the session of a UTC instant: asia from 00:00, europe from 08:00, us from 16:00."""
    hour = ts_ms // HOUR_MS % 24
    return next(name for name, first_hour in reversed(SESSIONS) if hour >= first_hour)


def _win_rate(trades: Sequence[Trade]) -> float | None:
    return sum(1 for t in trades if t.pnl_usdt > 0) / len(trades) if trades else None


def breakdown(trades: Sequence[Trade], key: Callable[[Trade], str]) -> dict[str, Breakdown]:
    """Return count, net PnL and win rate of the trades grouped by key(trade), keys sorted."""
    groups: dict[str, list[Trade]] = {}
    for trade in trades:
        groups.setdefault(key(trade), []).append(trade)
    return {
        name: Breakdown(len(group), sum((t.pnl_usdt for t in group), ZERO), _win_rate(group))
        for name, group in sorted(groups.items())
    }


def session_breakdown(trades: Sequence[Trade]) -> dict[str, Breakdown]:
    """Return the breakdown by entry session, every session present (count 0 when it had no trade)."""
    found = breakdown(trades, lambda t: session_of(t.entry_ms))
    return {name: found.get(name, Breakdown(0, ZERO, None)) for name, _ in SESSIONS}


def profit_factor(gross_profit_usdt: Decimal, gross_loss_usdt: Decimal) -> float | None:
    """Return gross profit / gross loss: inf without a loss, None with neither profit nor loss."""
    if gross_loss_usdt == 0:
        return math.inf if gross_profit_usdt > 0 else None
    return float(gross_profit_usdt / gross_loss_usdt)


def buy_and_hold_return(prices: Sequence[Decimal] | None) -> float | None:
    """Return last / first close - 1 of a benchmark's closes, None with fewer than two."""
    if prices is None or len(prices) < 2:
        return None
    if any(price <= 0 for price in prices):
        raise ValueError("benchmark prices must be positive")
    return float(prices[-1] / prices[0] - 1)


def _pnl_per_risk(trades: Sequence[Trade]) -> float | None:
    if not trades:
        return None
    return float(sum((t.pnl_usdt for t in trades), ZERO) / sum((t.risk_usdt for t in trades), ZERO))


def _trade_figures(trades: Sequence[Trade], span_ms: int) -> dict:
    pnls = [t.pnl_usdt for t in trades]
    gross_profit = sum((p for p in pnls if p > 0), ZERO)
    gross_loss = -sum((p for p in pnls if p < 0), ZERO)
    with_risk = [t for t in trades if t.r_multiple is not None]
    reasons = Counter(t.exit_reason for t in trades)
    return dict(
        net_pnl_usdt=sum(pnls, ZERO),
        fees_usdt=sum((t.fees_usdt for t in trades), ZERO),
        funding_usdt=sum((t.funding_usdt for t in trades), ZERO),
        trade_count=len(trades),
        win_count=sum(1 for p in pnls if p > 0),
        loss_count=sum(1 for p in pnls if p < 0),
        win_rate=_win_rate(trades),
        gross_profit_usdt=gross_profit,
        gross_loss_usdt=gross_loss,
        profit_factor=profit_factor(gross_profit, gross_loss) if trades else None,
        average_r=float(np.mean([t.r_multiple for t in with_risk])) if with_risk else None,
        expectancy_usdt=sum(pnls, ZERO) / len(trades) if trades else None,
        expectancy_r=_pnl_per_risk(with_risk),
        trades_per_day=len(trades) / (span_ms / DAY_MS) if span_ms > 0 else None,
        stop_hits=reasons[ExitReason.STOP],
        target_hits=reasons[ExitReason.TARGET],
        liquidation_hits=reasons[ExitReason.LIQUIDATION],
        exit_reasons=dict(sorted(reasons.items())),
        by_symbol=breakdown(trades, lambda t: t.symbol),
        by_session=session_breakdown(trades),
    )


def _curve(equity_ts_ms, equity_usdt, start_ms, end_ms, starting_equity) -> tuple[list[int], list[Decimal]]:
    if len(equity_ts_ms) != len(equity_usdt):
        raise ValueError(f"equity_ts_ms has {len(equity_ts_ms)} points but equity_usdt has {len(equity_usdt)}")
    ts_ms, equity = [start_ms, *equity_ts_ms], [starting_equity, *equity_usdt]
    if any(later < earlier for earlier, later in zip(ts_ms, ts_ms[1:])):
        raise ValueError("equity timestamps must not decrease nor precede start_ms")
    if ts_ms[-1] > end_ms:
        raise ValueError(f"equity point at {ts_ms[-1]} after end_ms {end_ms}")
    if any(value < 0 for value in equity):
        raise ValueError("equity must not be negative")
    return ts_ms, equity


def summarize(
    trades: Sequence[Trade],
    equity_ts_ms: Sequence[int],
    equity_usdt: Sequence[Decimal],
    *,
    start_ms: int,
    end_ms: int,
    starting_equity: Decimal,
    benchmark_prices: Sequence[Decimal] | None = None,
) -> Metrics:
    """Return every metric of a run from its closed trades, its equity points and, optionally, benchmark closes.

    Preconditions: start_ms <= end_ms, starting_equity > 0, every trade within the run, equity points in time
    order within the run; `benchmark_prices` are the closes of the symbol to hold, first to last.
    """
    if end_ms < start_ms:
        raise ValueError(f"end_ms {end_ms} before start_ms {start_ms}")
    if starting_equity <= 0:
        raise ValueError("starting_equity must be positive")
    outside = [t for t in trades if t.entry_ms < start_ms or t.exit_ms > end_ms]
    if outside:
        raise ValueError(f"{len(outside)} trade(s) outside the run [{start_ms}, {end_ms}]")
    ts_ms, equity = _curve(equity_ts_ms, equity_usdt, start_ms, end_ms, starting_equity)
    span_ms = end_ms - start_ms
    drawdown, _ = drawdown_series(equity)
    deepest = float(drawdown.max())
    returns = daily_returns(ts_ms, equity, end_ms=end_ms)
    growth = cagr(starting_equity, equity[-1], span_ms)
    return_fraction = float(equity[-1] / starting_equity - 1)
    held = buy_and_hold_return(benchmark_prices)
    return Metrics(
        start_ms=start_ms,
        end_ms=end_ms,
        starting_equity_usdt=starting_equity,
        final_equity_usdt=equity[-1],
        return_fraction=return_fraction,
        cagr=growth,
        sharpe=sharpe(returns),
        sortino=sortino(returns),
        calmar=growth / deepest if growth is not None and deepest > 0 else None,
        max_drawdown_fraction=deepest,
        max_drawdown_usdt=max_drawdown_usdt(equity),
        max_drawdown_duration_ms=max_drawdown_duration_ms(ts_ms, equity, end_ms),
        exposure_fraction=exposure_fraction(trades, start_ms, end_ms),
        buy_and_hold_return_fraction=held,
        excess_return_fraction=return_fraction - held if held is not None else None,
        **_trade_figures(trades, span_ms),
    )
