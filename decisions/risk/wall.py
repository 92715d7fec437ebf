"""The risk wall: every gate over a `RiskState`, in a fixed order, and their combined verdict.

Pure: no Django, no I/O, no clock (`now` is passed in). Days start at local midnight and weeks at
local Monday 00:00 in the limits' timezone, so a breaker lifts at the same wall-clock moment in a
backtest and live, DST days (23 or 25 hours long) included.

Gate order (GATE_ORDER): account breakers first, so the first block names the deepest cause
("blocked by daily_loss"), then the calendar, the exposure, the order-rate caps and the market.
"""
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from decimal import Decimal
from typing import NamedTuple
from zoneinfo import ZoneInfo

from decisions.risk import gates as g
from decisions.risk.gates import GateResult
from decisions.risk.limits import STOP_EXIT, ClosedTrade, RiskLimits, RiskState

GATE_ORDER = (
    "daily_loss", "weekly_drawdown", "max_drawdown", "loss_streak", "sl_streak", "profit_factor",
    "trades_per_day", "trading_hours", "news_mute", "cooldown", "one_position", "max_positions",
    "correlation", "order_rate", "turnover", "spread", "min_volume", "volatility",
)
SIDES = ("LONG", "SHORT")
MINUTE_MS = 60_000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class Verdict(NamedTuple):
    allowed: bool
    size_factor: float                  # multiply the sized quantity by this; in (0, 1]
    first_block: GateResult | None


class _Calendar(NamedTuple):
    now_ms: int
    local: datetime
    day_start_ms: int
    day_end_ms: int
    week_end_ms: int


def to_ms(moment: datetime | int) -> int:
    """Return epoch milliseconds of an aware datetime (ints pass through); raise ValueError on naive ones."""
    if isinstance(moment, int):
        return moment
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: pass an aware one")
    return (moment - EPOCH) // timedelta(milliseconds=1)


@lru_cache(maxsize=256)
def _midnight_ms(day: date, zone: str) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone)).timestamp()) * 1000


@lru_cache(maxsize=256)
def _day_week(day: date, zone: str) -> tuple[int, int, int, int]:
    """Return (day start, day end, week start, week end) epoch ms of the local `day`."""
    monday = day - timedelta(days=day.weekday())
    return (_midnight_ms(day, zone), _midnight_ms(day + timedelta(days=1), zone), _midnight_ms(monday, zone),
            _midnight_ms(monday + timedelta(days=7), zone))


def day_bounds(now: datetime | int, limits: RiskLimits) -> tuple[int, int]:
    """Return (start, end) epoch ms of the local day holding `now`: its midnight and the next one."""
    start, end, _, _ = _day_week(datetime.fromtimestamp(to_ms(now) / 1000, limits.tz).date(), limits.timezone)
    return start, end


def week_bounds(now: datetime | int, limits: RiskLimits) -> tuple[int, int]:
    """Return (start, end) epoch ms of the local week holding `now`: Monday 00:00 and the next Monday's."""
    _, _, start, end = _day_week(datetime.fromtimestamp(to_ms(now) / 1000, limits.tz).date(), limits.timezone)
    return start, end


def format_local(epoch_ms: int, limits: RiskLimits) -> str:
    """Return `epoch_ms` as local wall time, e.g. "2026-11-26 00:00 Europe/Warsaw"."""
    return _format_local(epoch_ms, limits.timezone)


@lru_cache(maxsize=1024)  # a pause end repeats on every bar until it passes
def _format_local(epoch_ms: int, zone: str) -> str:
    return f"{datetime.fromtimestamp(epoch_ms / 1000, ZoneInfo(zone)):%Y-%m-%d %H:%M} {zone}"


def _calendar(now_ms: int, limits: RiskLimits) -> _Calendar:
    local = datetime.fromtimestamp(now_ms / 1000, limits.tz)
    day_start, day_end, _, week_end = _day_week(local.date(), limits.timezone)
    return _Calendar(now_ms, local, day_start, day_end, week_end)


def _pause(result: GateResult, until_ms: int | None, limits: RiskLimits) -> GateResult:
    """Say until when a blocking gate holds; None: until an operator overrides it."""
    if not result.blocked:
        return result
    when = "an operator overrides it" if until_ms is None else format_local(until_ms, limits)
    return GateResult(result.name, "block", f"paused until {when} by {result.name}: {result.reason}", 1.0, until_ms)


def _streak(trades: list[ClosedTrade], hit) -> int:
    count = 0
    for trade in reversed(trades):
        if not hit(trade):
            break
        count += 1
    return count


def _profit_factor(trades: list[ClosedTrade]) -> float:
    profit = sum((t.pnl_usdt for t in trades if t.pnl_usdt > 0), Decimal(0))
    loss = -sum((t.pnl_usdt for t in trades if t.pnl_usdt < 0), Decimal(0))
    # No losing trade: nothing to judge the wins against, so the factor is unbounded.
    return float(profit / loss) if loss else float("inf")


def _account_gates(state: RiskState, limits: RiskLimits, cal: _Calendar) -> list[GateResult]:
    day_low = state.equity_now if state.day_low_equity is None else min(state.day_low_equity, state.equity_now)
    week_low = state.equity_now if state.week_low_equity is None else min(state.week_low_equity, state.equity_now)
    today = sorted((t for t in state.closed_trades if t.closed_ms >= cal.day_start_ms), key=lambda t: t.closed_ms)
    entries = (sum(t.opened_ms >= cal.day_start_ms for t in today)
               + sum(p.opened_ms >= cal.day_start_ms for p in state.open_positions))
    next_day = cal.day_end_ms
    return [
        _pause(g.check_daily_loss(state.day_start_equity, day_low, limits.daily_loss_fraction), next_day, limits),
        _pause(g.check_weekly_drawdown(state.week_start_equity, week_low, limits.weekly_drawdown_fraction),
               cal.week_end_ms, limits),
        _pause(g.check_max_drawdown(state.peak_equity, state.equity_now, limits.max_drawdown_fraction), None, limits),
        _pause(g.check_streak("loss_streak", _streak(today, lambda t: t.pnl_usdt < 0), limits.loss_streak,
                              "losses in a row today"), next_day, limits),
        _pause(g.check_streak("sl_streak", _streak(today, lambda t: t.exit_reason == STOP_EXIT), limits.sl_streak,
                              "stop-loss exits in a row today"), next_day, limits),
        _pause(g.check_profit_factor(_profit_factor(today), len(today), limits.min_profit_factor,
                                     limits.profit_factor_min_trades), next_day, limits),
        _pause(g.check_count("trades_per_day", entries, limits.max_trades_per_day, "entries today"),
               next_day, limits),
    ]


def _next_open_ms(cal: _Calendar, limits: RiskLimits) -> int:
    for days in (0, 1):
        day = cal.local.date() + timedelta(days=days)
        start = int(datetime.combine(day, limits.trading_start, tzinfo=limits.tz).timestamp() * 1000)
        if start > cal.now_ms:
            return start
    raise AssertionError("a trading start lies within the next two local days")


def _calendar_gates(state: RiskState, limits: RiskLimits, cal: _Calendar) -> list[GateResult]:
    hours = g.check_trading_hours(cal.local.time(), limits.trading_start, limits.trading_end, limits.timezone)
    if hours.blocked:
        hours = _pause(hours, _next_open_ms(cal, limits), limits)
    news = g.check_quiet_period("news_mute", cal.now_ms, state.last_hard_news_ms, limits.news_mute_minutes,
                                "hard news")
    if news.blocked:
        news = _pause(news, state.last_hard_news_ms + limits.news_mute_minutes * MINUTE_MS, limits)
    cooldown = g.check_quiet_period("cooldown", cal.now_ms, state.last_trade_ms, limits.cooldown_minutes, "trade")
    if cooldown.blocked:
        cooldown = _pause(cooldown, state.last_trade_ms + limits.cooldown_minutes * MINUTE_MS, limits)
    return [hours, news, cooldown]


def _exposure_gates(state: RiskState, side: str, symbol: str, limits: RiskLimits) -> list[GateResult]:
    others = [(p.symbol, p.side, state.correlations[p.symbol]) for p in state.open_positions
              if p.symbol != symbol and p.symbol in state.correlations]
    return [
        g.check_no_open_position(any(p.symbol == symbol for p in state.open_positions)),
        g.check_count("max_positions", len(state.open_positions), limits.max_open_positions, "open positions"),
        g.check_correlation(side, others, limits.max_correlation),
    ]


def _rate_gates(state: RiskState, limits: RiskLimits, cal: _Calendar) -> list[GateResult]:
    window_ms = limits.rate_window_minutes * MINUTE_MS
    # The window is (now - 5 min, now]: an order exactly 5 minutes old has left it.
    recent = sorted((o for o in state.recent_orders if cal.now_ms - window_ms < o.created_ms <= cal.now_ms),
                    key=lambda o: o.created_ms)
    rate = g.check_count("order_rate", len(recent), limits.max_orders_per_window,
                         f"orders in {limits.rate_window_minutes} min")
    if rate.blocked:  # lifts once enough of the oldest orders have left the window
        rate = _pause(rate, recent[len(recent) - limits.max_orders_per_window].created_ms + window_ms, limits)
    turnover_usdt = sum((o.notional_usdt for o in recent), Decimal(0))
    turnover = g.check_turnover(turnover_usdt, state.equity_now, limits.max_turnover_equity_multiple,
                                limits.rate_window_minutes)
    if turnover.blocked:
        turnover = _pause(turnover, _turnover_clear_ms(recent, turnover_usdt, state, limits) + window_ms, limits)
    return [rate, turnover]


def _turnover_clear_ms(recent, total: Decimal, state: RiskState, limits: RiskLimits) -> int:
    cap = state.equity_now * limits.max_turnover_equity_multiple
    for order in recent:
        total -= order.notional_usdt
        if total < cap:
            return order.created_ms
    return recent[-1].created_ms


def _market_gates(state: RiskState, limits: RiskLimits) -> list[GateResult]:
    return [
        g.check_spread(state.spread_bps, limits.max_spread_bps),
        g.check_min_volume(state.volume_24h_usdt, limits.min_volume_24h_usdt),
        g.check_volatility(state.atr_percentile, limits.volatility_percentile, limits.volatility_size_factor),
    ]


def _override(result: GateResult, note: str) -> GateResult:
    if result.verdict == "allow":
        return result
    return GateResult(result.name, "allow", f"{note}: {result.reason}")


def evaluate_gates(state: RiskState, limits: RiskLimits, now: datetime | int, side: str, symbol: str, *,
                   overridden: Iterable[str] | Mapping[str, str] = ()) -> list[GateResult]:
    """Return every gate's verdict on a new `side` entry in `symbol`, in GATE_ORDER.

    `now` is an aware datetime or epoch ms. Gates named in `overridden` (an operator's audited
    override; a mapping gives each its note, e.g. "overridden by alice until 15:00") allow,
    keeping the overridden reason.
    """
    if side not in SIDES:
        raise ValueError(f"side must be LONG or SHORT, got {side!r}")
    cal = _calendar(to_ms(now), limits)
    results = (_account_gates(state, limits, cal) + _calendar_gates(state, limits, cal)
               + _exposure_gates(state, side, symbol, limits) + _rate_gates(state, limits, cal)
               + _market_gates(state, limits))
    if not overridden:
        return results
    notes = overridden if isinstance(overridden, Mapping) else dict.fromkeys(overridden, "overridden by an operator")
    return [_override(r, notes[r.name]) if r.name in notes else r for r in results]


def combine(results: Iterable[GateResult]) -> Verdict:
    """Return whether the entry may go, its size factor and the first block.

    Any block forbids the entry. The size factor is the smallest shrink factor (1.0 without
    shrinks): throttles do not compound, the strictest one wins. It is reported even when blocked.
    """
    factor, first = 1.0, None
    for result in results:
        if result.verdict == "shrink":
            factor = min(factor, result.size_factor)
        elif first is None and result.blocked:
            first = result
    return Verdict(first is None, factor, first)
