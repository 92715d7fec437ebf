"""One bar's decision after the packet: tick grid, risk gates, circuit breaker, sizing and routing. Pure.

The live cycle (decisions.services.decision_run) loads these inputs from the database and stores
what comes out; a backtest builds them in memory and calls the same function, so both take the
same decision from the same facts. No Django, no I/O, no clock: `now` is passed in.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from decisions import router
from decisions.engine.packet import Packet
from decisions.engine.rules import Signal
from decisions.risk.gates import GateResult, check_costs_vs_target, check_rr_min
from decisions.risk.limits import RiskLimits, RiskState
from decisions.risk.sizing import SizeResult, SizingInput, round_stop, round_to_tick, size_detail
from decisions.risk.wall import combine, evaluate_gates

SAFE = "SAFE"


@dataclass(frozen=True, slots=True)
class MarketRules:
    symbol: str                     # venue symbol, e.g. BTCUSDT
    tick_size: Decimal
    step_size: Decimal
    min_notional: Decimal


@dataclass(frozen=True, slots=True)
class TradeLimits:
    """The configuration the steps after the packet read (admin > Trading configuration)."""

    rr_min: Decimal
    taker_fee_fraction: Decimal
    slippage_bps: Decimal
    max_cost_to_target_fraction: Decimal
    risk_per_trade_fraction: Decimal
    max_leverage: Decimal
    max_margin_fraction: Decimal
    max_open_positions: int
    configured_mode: str            # SAFE, HYBRID or ON as set
    paused: bool
    auto_approve_confidence: float
    safe_until_ms: int | None = None   # the circuit breaker's hold, if any


@dataclass(frozen=True, slots=True)
class AccountFacts:
    """What sizing needs from the account at the bar's close."""

    equity_usdt: Decimal
    margin_in_use_usdt: Decimal     # notional of the open positions / max leverage
    open_positions: int


@dataclass(frozen=True, slots=True)
class BarDecision:
    signal: Signal                  # on the tick grid, with the flow line in its rationale
    gates: tuple[GateResult, ...]
    sizing: SizeResult | None       # None for FLAT
    mode: str                       # the mode in force after the breaker
    route: router.Route
    reason: str
    breaker_until_ms: int | None    # the daily-loss pause that holds the bot in SAFE, when newly due


def signal_on_tick_grid(signal: Signal, tick: Decimal) -> Signal:
    """Return the signal's prices on the venue's tick grid; the stop rounds away from the entry."""
    if signal.entry_price is None:
        return signal
    entry = round_to_tick(signal.entry_price, tick)
    # The stop rounds away from the entry, as sizing assumes: never a tighter stop than analysed.
    return replace(signal, entry_price=entry, stop_price=round_stop(signal.stop_price, entry, tick),
                   target_price=round_to_tick(signal.target_price, tick),
                   take_profits=tuple((round_to_tick(p, tick), share) for p, share in signal.take_profits))


def gates_for(signal: Signal, state: RiskState, limits: RiskLimits, trade: TradeLimits, market: MarketRules,
              now: datetime, overridden: dict[str, str]) -> list[GateResult]:
    """Return every gate's verdict; a FLAT signal is judged as a long so the journal shows pauses."""
    side = "SHORT" if signal.action == "SHORT" else "LONG"
    gates = evaluate_gates(state, limits, now, side, market.symbol, overridden=overridden)
    if signal.action != "FLAT":
        gates.append(check_rr_min(signal.entry_price, signal.stop_price, signal.take_profits, trade.rr_min))
        gates.append(check_costs_vs_target(signal.entry_price, signal.target_price, trade.taker_fee_fraction,
                                           trade.slippage_bps, trade.max_cost_to_target_fraction))
    return gates


def sizing_for(signal: Signal, trade: TradeLimits, market: MarketRules, account: AccountFacts,
               size_factor: float = 1.0) -> SizeResult | None:
    """Return the size of a LONG/SHORT signal under every cap, or None for FLAT."""
    if signal.action == "FLAT":
        return None
    # A shrink verdict (e.g. high volatility -> half size) scales the risk taken, before the caps.
    risk = trade.risk_per_trade_fraction * Decimal(repr(size_factor)) if size_factor < 1 else \
        trade.risk_per_trade_fraction
    return size_detail(SizingInput(
        account.equity_usdt, risk, signal.entry_price, signal.stop_price, market.step_size, market.min_notional,
        trade.max_leverage, tick_size=market.tick_size, margin_in_use_usdt=account.margin_in_use_usdt,
        max_margin_fraction=trade.max_margin_fraction, open_positions=account.open_positions,
        max_positions=trade.max_open_positions))


def breaker_until_ms(gates: list[GateResult], safe_until_ms: int | None) -> int | None:
    """Return when a newly blocking daily-loss pause ends (the bot holds SAFE until then), else None."""
    daily = next((g for g in gates if g.name == "daily_loss" and g.blocked and g.until_ms), None)
    if daily is None or (safe_until_ms is not None and safe_until_ms >= daily.until_ms):
        return None
    return daily.until_ms


def decide_bar(packet: Packet, *, flow_line: str | None, state: RiskState, limits: RiskLimits,
               trade: TradeLimits, market: MarketRules, account: AccountFacts, now: datetime,
               overridden: dict[str, str]) -> BarDecision:
    """Return the bar's decision from its packet and the account's facts at `now`."""
    signal = signal_on_tick_grid(packet.signal, market.tick_size)
    if flow_line is not None:
        signal = replace(signal, rationale=signal.rationale + (flow_line,))
    gates = gates_for(signal, state, limits, trade, market, now, overridden)
    sizing = sizing_for(signal, trade, market, account, combine(gates).size_factor)
    breaker = breaker_until_ms(gates, trade.safe_until_ms)
    safe_until = max(filter(None, (breaker, trade.safe_until_ms)), default=None)
    now_ms = int(now.timestamp() * 1000)
    mode = SAFE if safe_until is not None and now_ms < safe_until else trade.configured_mode
    route = router.route(router.RouteInput(
        signal.action, signal.reason, tuple(gates), trade.paused, bool(sizing and sizing.quantity), mode,
        trade.configured_mode, packet.confidence, trade.auto_approve_confidence))
    reason = route.reason if sizing is None or sizing.quantity or signal.action == "FLAT" or \
        route.outcome != "skipped" else f"{signal.reason}; {sizing.reason}"
    return BarDecision(signal, tuple(gates), sizing, mode, route, reason, breaker)
