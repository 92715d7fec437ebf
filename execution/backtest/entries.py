"""Entries: decisions.services.decision_execute -> execution.services.position_open, and for limit entries the
chase of execution.services.paper_entries_work (execution.entries, execution.paper_venue), in memory.

A market entry fills at once as taker. A limit entry (configuration `entry_order_type` "limit") rests as
a post-only order one tick on our side of the reference price; every cycle the bars closed since it
was placed fill it as maker, at most `paper_fill_participation` of each bar's volume traded through
its price (`paper_model.limit_fill`), then `execution.chase.chase_step` decides: wait, re-price,
take the rest at market, or give it up. The position opens at the first entry fill's cycle and
grows with later fills, as `entry_position_sync` builds it from the fills.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal

import numpy as np

from decisions import router
from execution.backtest.ledger import SimPosition, stored
from execution.backtest.records import DecisionRecord
from execution.backtest.state import Run, SimOrder, SymbolRun, dt
from execution.backtest.world import to_decimal
from execution.brokers.base import ExecutionReport
from execution.brokers.paper import paper_order_id
from execution.brokers.paper_model import Bar, RestingLimit, limit_fill
from execution.chase import FALLBACK_LEG, ChasePolicy, ChaseState, chase_leg, chase_step, passive_price
from execution.liquidation import liquidation_on_tick
from execution.oms import OrderIntent, OrderRejected, Precision, apply_precision, make_intent_id
from execution.trail import trail_distance_for

logger = logging.getLogger(__name__)
LIMIT_TYPES = ("limit", "limit_maker")
BOOK_STATES = ("accepted", "partially_filled", "pending_cancel")    # execution.paper_venue.BOOK_STATES
WORKING = ("accepted", "partially_filled")                          # execution.entries.WORKING
MARGIN = 1e-9


@dataclass
class EntryPlan:
    """A decision sent to execution: its record, its snapshot's ATR, its entry orders and its position."""

    record: DecisionRecord
    atr: float
    orders: list[SimOrder] = field(default_factory=list)
    position: SimPosition | None = None


def _precision(sym: SymbolRun) -> Precision:
    return Precision(sym.spec.tick_size, sym.spec.step_size, sym.spec.min_notional)


def decision_execute(run: Run, sym: SymbolRun, record: DecisionRecord, now_ms: int, atr: float,
                     reference_price: Decimal) -> DecisionRecord:
    """Send an executed decision's entry unless it expired; return the record with the outcome it ends with."""
    config, spec = run.config, sym.spec
    if router.is_expired(router.expires_at(record.as_of, config.decision_ttl_minutes), dt(now_ms)):
        when = record.as_of + timedelta(minutes=config.decision_ttl_minutes)
        return replace(record, outcome="expired", reason=f"expired at {when:%Y-%m-%d %H:%M} UTC; not executed")
    side = "buy" if record.action == "LONG" else "sell"
    limit = config.entry_order_type in LIMIT_TYPES
    price = passive_price(side, reference_price, spec.tick_size) if limit else None
    intent_id = make_intent_id(run.account_name, spec.instrument_id, config.decision_timeframe,
                               record.as_of.isoformat())
    intent = OrderIntent(intent_id, "entry", spec.symbol, side, "limit_maker" if limit else "market",
                         record.quantity, price=price)
    try:
        intent = apply_precision(intent, _precision(sym), reference_price)
    except OrderRejected as exc:
        return replace(record, outcome="skipped", reason=f"order rejected: {exc}"[:255])
    plan = EntryPlan(record, atr)
    report = run.broker.submit(intent, reference_price=reference_price, ts_ms=now_ms, tick_size=spec.tick_size)
    plan.orders.append(run.book(intent, report, now_ms, spec.exchange_symbol, decision=record))
    entry_sync(run, sym, plan, now_ms)
    if any(o.status in BOOK_STATES for o in plan.orders):
        run.plans[(spec.exchange_symbol, record.as_of)] = plan     # a resting limit: worked every cycle
    if plan.position is None and not any(o.status in WORKING for o in plan.orders):
        return replace(record, outcome="skipped")
    return record


def _entry_fills(plan: EntryPlan) -> tuple[Decimal, Decimal, Decimal]:
    """Return (quantity, average price, fees) of the plan's entry fills."""
    quantity = sum((o.filled_quantity for o in plan.orders), Decimal(0))
    notional = sum((o.notional for o in plan.orders), Decimal(0))
    fees = sum((o.fees_usdt for o in plan.orders), Decimal(0))
    return quantity, (notional / quantity if quantity else Decimal(0)), fees


def entry_sync(run: Run, sym: SymbolRun, plan: EntryPlan, now_ms: int) -> bool:
    """Open or grow the plan's position to what its entry orders filled (entry_sync); return whether it changed."""
    quantity, price, fee = _entry_fills(plan)
    if quantity <= 0:
        return False
    position = plan.position
    if position is None:
        if run.ledger.open_position(sym.spec.exchange_symbol) is not None:
            # One open position per instrument: the live books refuse a second one (IntegrityError).
            logger.warning("backtest decision %s filled %s but %s already has an open position", plan.record.as_of,
                           quantity, sym.spec.exchange_symbol)
            return False
        position = _open(run, sym, plan, quantity, price, fee, now_ms)
    elif position.status != "open" or quantity <= (position.initial_quantity or position.quantity):
        return False
    else:
        added, fee_added = quantity - (position.initial_quantity or position.quantity), fee - position.entry_fees_usdt
        position.quantity += added
        position.initial_quantity, position.entry_price = quantity, price
        position.fees_usdt += fee_added
        position.realized_pnl_usdt -= fee_added
        position.entry_fees_usdt = fee
        run.ledger.balance_add(-fee_added)
    # The live path prices the liquidation with the Account object it holds (the cycle's last refresh)
    # and the entry price it just computed; the row then stores that price to 10 places.
    liquidation = liquidation_on_tick(
        position.side, position.entry_price, position.quantity, run.account_balance_seen, run.config.max_leverage,
        run.config.maintenance_margin_fraction, sym.spec.tick_size)
    position.liquidation_price, position.margin_usdt = liquidation if liquidation else (None, None)
    position.entry_price = stored(position.entry_price)
    return True


def _open(run: Run, sym: SymbolRun, plan: EntryPlan, quantity: Decimal, price: Decimal, fee: Decimal,
          now_ms: int) -> SimPosition:
    record = plan.record
    targets = [{"price": str(p), "share": str(s)} for p, s in record.take_profits] or \
        [{"price": str(record.target_price), "share": "1"}]
    trail = trail_distance_for(plan.atr, sym.spec.tick_size, run.config.trail_atr_multiple)
    position = SimPosition(run.next_position_id, sym.spec.exchange_symbol, int(record.as_of.timestamp() * 1000),
                           record.confidence, record.action, price, quantity, quantity, record.stop_price,
                           record.target_price, [{**t, "filled": False} for t in targets], trail, now_ms, fee, -fee,
                           entry_fees_usdt=fee)
    run.next_position_id += 1
    run.ledger.balance_add(-fee)
    run.ledger.position_add(position)
    plan.position = position
    return position


def entries_work(run: Run, sym: SymbolRun, now_ms: int) -> None:
    """Fill the resting limit entries on the bars since they were placed, open their positions, chase the rest."""
    plans = [p for p in run.plans.values() if p.record.symbol == sym.spec.exchange_symbol
             and any(o.status in BOOK_STATES for o in p.orders)]
    if not plans:
        return
    for plan in plans:
        for order in plan.orders:
            if order.status in BOOK_STATES and order.type in LIMIT_TYPES and _match(run, sym, order, now_ms):
                entry_sync(run, sym, plan, now_ms)
    for plan in plans:
        for order in [o for o in plan.orders if o.status in WORKING and o.type in LIMIT_TYPES]:
            _chase(run, sym, plan, order, now_ms)
    for plan in plans:
        entry_sync(run, sym, plan, now_ms)
        if not any(o.status in BOOK_STATES for o in plan.orders):
            del run.plans[(sym.spec.exchange_symbol, plan.record.as_of)]      # nothing rests: nothing to work


def _match(run: Run, sym: SymbolRun, order: SimOrder, now_ms: int) -> bool:
    """Fill a resting limit from the bars closed since it was last matched (paper_order_match); return if it filled."""
    found = sym.market.exit_series(since_ms=order.last_checked_ms or order.created_ms, now_ms=now_ms,
                                   strictly_after=order.last_checked_ms is not None)
    if found is None:
        return False
    candles, start, end = found
    buy = order.side == "buy"
    limit = float(order.price)
    # Only a bar that trades through the price can fill it; the exact Decimal test runs on those.
    through = candles.low[start:end] < limit * (1 + MARGIN) if buy else candles.high[start:end] > limit * (1 - MARGIN)
    resting = RestingLimit(order.client_order_id, order.side, order.price, order.quantity, order.filled_quantity,
                           paper_order_id(order.client_order_id))
    fills, last = [], int(candles.open_time_ms[end - 1])
    for i in start + np.flatnonzero(through):
        bar = Bar(int(candles.open_time_ms[i]), to_decimal(candles.open[i]), to_decimal(candles.high[i]),
                  to_decimal(candles.low[i]), to_decimal(candles.volume[i]))
        fill = limit_fill(resting, bar, participation_fraction=run.config.paper_fill_participation,
                          step_size=sym.spec.step_size, maker_fee_fraction=run.config.maker_fee_fraction)
        if fill is not None:
            fills.append(fill)
            resting = replace(resting, filled=resting.filled + fill.quantity)
        if resting.remaining <= 0:
            last = int(candles.open_time_ms[i])
            break
    if fills:
        status = "filled" if resting.remaining <= 0 else "partially_filled"
        run.report_apply(order, ExecutionReport(order.client_order_id, status, tuple(fills), resting.exchange_order_id))
    order.last_checked_ms = last
    return bool(fills)


def _chase(run: Run, sym: SymbolRun, plan: EntryPlan, order: SimOrder, now_ms: int) -> None:
    """Take one chase step for a working limit entry (execution.entries.entry_chase)."""
    if plan.position is not None and plan.position.status == "closed":
        order.status = "canceled"               # never add to a trade that ended
        return
    market = sym.market.last_close(now_ms)
    if market is None:
        return
    config, record, first = run.config, plan.record, plan.orders[0]
    reprices = sum(1 for o in plan.orders if o.type in LIMIT_TYPES) - 1
    zone_low, zone_high = record.entry_zone or (None, None)
    state = ChaseState(order.side, record.entry_price, zone_low, zone_high, order.price, reprices,
                       (now_ms - order.created_ms) / 1000, (now_ms - first.created_ms) / 1000, market,
                       sym.spec.tick_size)
    policy = ChasePolicy(config.entry_chase_interval_seconds, config.entry_chase_max_reprices,
                         config.entry_chase_max_drift_bps, config.entry_market_fallback)
    step = chase_step(state, policy)
    if step.action == "wait":
        return
    order.status = "canceled"
    remaining = first.quantity - _entry_fills(plan)[0]
    if remaining <= 0 or step.action not in ("reprice", "market"):
        return
    leg = chase_leg(reprices + 1) if step.action == "reprice" else FALLBACK_LEG
    intent = OrderIntent(order.intent_id, leg, sym.spec.symbol, order.side,
                         "limit_maker" if step.action == "reprice" else "market", remaining, price=step.price)
    try:
        intent = apply_precision(intent, _precision(sym), market)
    except OrderRejected:
        return                                  # the rest is below the venue's minimum: keep what filled
    report = run.broker.submit(intent, reference_price=market, ts_ms=now_ms, tick_size=sym.spec.tick_size)
    plan.orders.append(run.book(intent, report, now_ms, sym.spec.exchange_symbol, decision=record))
