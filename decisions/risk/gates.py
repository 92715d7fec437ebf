"""Risk gates: small named rules that allow, block or shrink a new trade. Pure: no Django, no I/O, no clock.

Conventions shared by every gate:
- A loss or a count *reaches* its limit and trips at it (-2.00 % blocks, the 3rd loss in a row pauses).
- A cap or a floor on a measurement is itself allowed (spread at the cap, volume at the floor,
  correlation at the limit pass; one tick beyond does not).
- Times are epoch milliseconds; the calendar (days, weeks, trading hours) lives in `wall.py`.
"""
from datetime import time
from decimal import Decimal
from typing import NamedTuple

VERDICTS = ("allow", "block", "shrink")


class _GateFields(NamedTuple):
    name: str
    verdict: str                 # "allow", "block" or "shrink"
    reason: str
    size_factor: float = 1.0     # a "shrink" multiplies the position size by this, in (0, 1]
    until_ms: int | None = None  # a paused gate: when it lifts by itself (None: it does not, or not paused)


class GateResult(_GateFields):
    """One gate's verdict: an immutable value.

    A NamedTuple rather than a frozen dataclass: about 20 are built per bar and a frozen
    dataclass's __init__ was 30 % of the per-bar gate cost in bench/decision_gates.py.
    """

    __slots__ = ()

    def __new__(cls, name: str, verdict: str, reason: str, size_factor: float = 1.0, until_ms: int | None = None):
        if verdict != "allow" or size_factor != 1.0:
            if verdict not in VERDICTS:
                raise ValueError(f"gate {name}: unknown verdict {verdict!r}")
            if not 0 < size_factor <= 1:
                raise ValueError(f"gate {name}: size factor {size_factor} outside (0, 1]")
        return tuple.__new__(cls, (name, verdict, reason, size_factor, until_ms))

    @property
    def blocked(self) -> bool:
        return self.verdict == "block"

    def as_dict(self) -> dict:
        """Return the JSON-safe verdict; the size factor and pause end appear only when they apply."""
        out = {"name": self.name, "verdict": self.verdict, "reason": self.reason}
        if self.verdict == "shrink":
            out["size_factor"] = self.size_factor
        if self.until_ms is not None:
            out["until_ms"] = self.until_ms
        return out


def _allow(name: str, reason: str) -> GateResult:
    return GateResult(name, "allow", reason)


def _block(name: str, reason: str) -> GateResult:
    return GateResult(name, "block", reason)


def _drawdown(name: str, base: Decimal, value: Decimal, limit_fraction: Decimal, *, missing: str,
              label: str, hit: str) -> GateResult:
    """Block `name` when `value` is `limit_fraction` or more below `base` (both equity, USDT)."""
    if base <= 0:
        return _block(name, missing)
    change = (value - base) / base
    text = f"{label} {change:+.2%} vs limit -{limit_fraction:.2%}"
    return _block(name, f"{hit}: {text}") if change <= -limit_fraction else _allow(name, text)


def check_daily_loss(day_start_equity: Decimal, equity_now: Decimal, limit_fraction: Decimal) -> GateResult:
    """Block when today's loss reaches `limit_fraction` of the equity the day started with."""
    return _drawdown("daily_loss", day_start_equity, equity_now, limit_fraction,
                     missing="no starting equity for today", label="today", hit="daily loss limit hit")


def check_weekly_drawdown(week_start_equity: Decimal, equity_low: Decimal, limit_fraction: Decimal) -> GateResult:
    """Block when this week's equity has fallen `limit_fraction` below the week's starting equity."""
    return _drawdown("weekly_drawdown", week_start_equity, equity_low, limit_fraction,
                     missing="no starting equity for this week", label="this week", hit="weekly drawdown limit hit")


def check_max_drawdown(peak_equity: Decimal, equity_now: Decimal, limit_fraction: Decimal) -> GateResult:
    """Block when equity is `limit_fraction` or more below its all-time peak."""
    return _drawdown("max_drawdown", peak_equity, equity_now, limit_fraction, missing="no peak equity",
                     label=f"from peak {peak_equity:.2f}:", hit="max drawdown hit")


def check_streak(name: str, streak: int, limit: int, what: str) -> GateResult:
    """Block when `streak` consecutive `what` (losses, stop-outs) reach `limit`."""
    text = f"{streak} {what} (limit {limit})"
    return _block(name, text) if streak >= limit else _allow(name, text)


def check_profit_factor(profit_factor: float, trades: int, minimum: float, min_trades: int) -> GateResult:
    """Block when the day's profit factor is below `minimum` once `min_trades` trades have closed."""
    if trades < min_trades:
        return _allow("profit_factor", f"{trades} trades closed today; profit factor judged from {min_trades}")
    text = f"profit factor {profit_factor:.2f} over {trades} trades today"
    if profit_factor < minimum:
        return _block("profit_factor", f"{text} is below {minimum:.2f}")
    return _allow("profit_factor", text)


def check_count(name: str, count: int, limit: int, what: str) -> GateResult:
    """Block when `count` `what` (trades today, open positions, recent orders) reached `limit`."""
    text = f"{count} {what} (limit {limit})"
    return _block(name, text) if count >= limit else _allow(name, text)


def check_quiet_period(name: str, now_ms: int, since_ms: int | None, minutes: int, what: str) -> GateResult:
    """Block for `minutes` after `since_ms` (the last trade, the last hard news); None: never happened."""
    if since_ms is None:
        return _allow(name, f"no {what} yet")
    elapsed = (now_ms - since_ms) / 60_000
    text = f"{elapsed:.1f} min since the last {what} (quiet period {minutes} min)"
    return _block(name, text) if elapsed < minutes else _allow(name, text)


def in_window(clock: time, start: time, end: time) -> bool:
    """Return whether wall-clock `clock` lies in [start, end); start > end spans midnight, start == end is all day."""
    if start == end:
        return True
    if start < end:
        return start <= clock < end
    return clock >= start or clock < end


def check_trading_hours(clock: time, start: time, end: time, zone: str) -> GateResult:
    """Block outside the trading window [start, end) of local time `clock` in `zone`."""
    # Plain field formatting: time.__format__ goes through strftime, 10x slower on the per-bar path.
    text = (f"{clock.hour:02}:{clock.minute:02} {zone}, "
            f"trading {start.hour:02}:{start.minute:02}-{end.hour:02}:{end.minute:02}")
    if in_window(clock, start, end):
        return _allow("trading_hours", text)
    return _block("trading_hours", f"outside trading hours: {text}")


def check_no_open_position(has_open_position: bool) -> GateResult:
    """Block a new entry while the instrument already has an open position."""
    if has_open_position:
        return _block("one_position", "a position is already open on this instrument")
    return _allow("one_position", "no open position")


def check_correlation(side: str, others: list[tuple[str, str, float]], limit: float) -> GateResult:
    """Block a `side` entry that adds to an open (symbol, side, correlation) exposure beyond `limit`."""
    for symbol, other_side, corr in others:
        # A strongly anti-correlated symbol held the other way is the same bet too.
        same_bet = corr > limit if other_side == side else corr < -limit
        if same_bet:
            return _block("correlation", f"{other_side} {symbol} open, correlation {corr:+.2f} beyond ±{limit:.2f}")
    return _allow("correlation", f"no open position correlated beyond ±{limit:.2f} the same way")


def check_turnover(turnover_usdt: Decimal, equity: Decimal, limit_multiple: Decimal, minutes: int) -> GateResult:
    """Block when the notional traded in the last `minutes` reached `limit_multiple` x equity."""
    cap = equity * limit_multiple
    text = f"{float(turnover_usdt):.0f} USDT traded in {minutes} min (cap {float(cap):.0f} = {limit_multiple} x equity)"
    return _block("turnover", text) if turnover_usdt >= cap else _allow("turnover", text)


def check_spread(spread_bps: float | None, cap_bps: float) -> GateResult:
    """Block when the bid-ask spread is wider than `cap_bps`; no reading passes (backtests have none)."""
    if spread_bps is None:
        return _allow("spread", "no spread reading")
    text = f"spread {spread_bps:.2f} bps (cap {cap_bps:.2f})"
    return _block("spread", text) if spread_bps > cap_bps else _allow("spread", text)


def check_min_volume(volume_24h_usdt: Decimal | float | None, floor_usdt: Decimal) -> GateResult:
    """Block a symbol whose 24h quote volume is below `floor_usdt`; no reading passes."""
    if volume_24h_usdt is None:
        return _allow("min_volume", "no 24h volume reading")
    text = f"24h volume {float(volume_24h_usdt):,.0f} USDT (floor {float(floor_usdt):,.0f})"
    return _block("min_volume", text) if volume_24h_usdt < floor_usdt else _allow("min_volume", text)


def check_volatility(atr_percentile: float | None, threshold: float, size_factor: float) -> GateResult:
    """Shrink the size to `size_factor` when the ATR percentile (0..100) is above `threshold`."""
    if atr_percentile is None or atr_percentile != atr_percentile:  # None or NaN: ATR still warming up
        return _allow("volatility", "no ATR percentile yet")
    text = f"ATR percentile {atr_percentile:.0f} (throttle above {threshold:.0f})"
    if atr_percentile > threshold:
        return GateResult("volatility", "shrink", f"{text}: size x{size_factor:g}", size_factor)
    return _allow("volatility", text)


def check_costs_vs_target(entry_price: Decimal, target_price: Decimal, taker_fee_fraction: Decimal,
                          slippage_bps: Decimal, max_cost_share: Decimal) -> GateResult:
    """Block when round-trip fees and slippage would eat more than `max_cost_share` of the target move."""
    target_move = abs(target_price - entry_price) / entry_price
    round_trip = 2 * (taker_fee_fraction + slippage_bps / Decimal(10_000))
    if target_move == 0:
        return _block("costs", "target equals entry")
    share = round_trip / target_move
    text = f"round-trip costs {round_trip:.3%} are {share:.0%} of the {target_move:.3%} target move"
    if share > max_cost_share:
        return _block("costs", f"{text} (limit {max_cost_share:.0%})")
    return _allow("costs", text)


def first_block(results: list[GateResult]) -> GateResult | None:
    """Return the first blocking verdict, or None when every gate allows."""
    return next((r for r in results if r.blocked), None)


def check_rr_min(entry: Decimal, stop: Decimal, take_profits, rr_min: Decimal) -> GateResult:
    """Block when the ladder's share-weighted reward/risk is below `rr_min`."""
    risk = abs(entry - stop)
    if risk == 0 or not take_profits:
        return GateResult("rr_min", "block", "no risk distance or no target")
    rr = sum(abs(price - entry) * share for price, share in take_profits) / risk
    text = f"reward/risk {rr:.2f} (share-weighted over {len(take_profits)} targets) vs minimum {rr_min}"
    return GateResult("rr_min", "block" if rr < rr_min else "allow", text)
