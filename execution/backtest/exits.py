"""Exits and funding of open positions: execution.services.positions_check_exits, position_reduce and the
paper venue's funding (paper_funding_settle, paper_funding_apply), over the run's bars.

Exits walk the finest stored bars since the last check through `ladder_step`. Under MARK_PRICE the
stop and the liquidation price trigger on the bar's mark range when mark klines are stored
(`Market.exit_triggers`, as paper_exit_bars gives it); otherwise, and under CONTRACT_PRICE, on the
bar's own range. Until the first target has filled, a bar that reaches no level leaves the position
as it was (no breakeven, no trail yet), so the bars up to the first one that may reach the stop, the
liquidation price or the next target, or that opens on a funding time, are skipped after one
vectorised search; the exact Decimal step then runs on that bar. Once the trail is live every bar
moves the best price, so each one runs.
"""
from __future__ import annotations

import logging
from decimal import Decimal

import numpy as np

from execution.backtest.ledger import SimPosition, stored
from execution.backtest.records import FundingRecord
from execution.backtest.state import Run, SymbolRun, dt
from execution.backtest.world import Candles, MarkTriggers, to_decimal
from execution.brokers.paper import LadderPosition, Target, ladder_step, position_pnl
from execution.brokers.paper_model import FUNDING_INTERVAL_MS, funding_payment, funding_times, liquidation_clearance_fee
from execution.liquidation import margin_released
from execution.oms import OrderIntent, make_intent_id

logger = logging.getLogger(__name__)
MARGIN = 1e-9           # relative: a float level this close to a bar's range counts as reached, then Decimals decide
MARK_PRICE = "MARK_PRICE"   # TradingConfig.stop_working_type choice that triggers stops on the mark


def _ladder(p: SimPosition) -> LadderPosition:
    targets = tuple(Target(Decimal(str(t["price"])), Decimal(str(t["share"])), bool(t.get("filled")))
                    for t in p.take_profits) or (Target(p.target_price, Decimal(1)),)
    return LadderPosition(p.side, p.entry_price, p.initial_quantity or p.quantity, p.quantity, p.stop_price, targets,
                          p.trail_distance or None, p.best_price)


def _next_bar(candles: Candles, start: int, end: int, ladder: LadderPosition, position: SimPosition,
              triggers: MarkTriggers | None = None) -> int:
    """Return the first bar in [start, end) that may change the position before its first target has filled."""
    if ladder.targets and ladder.targets[0].filled:
        return start                    # breakeven and trail move the stop on every bar
    target = next((t.price for t in ladder.targets if not t.filled), None)
    long = ladder.side == "LONG"
    levels = [float(ladder.stop_price)] + ([float(position.liquidation_price)] if position.liquidation_price else [])
    low, high = candles.low[start:end], candles.high[start:end]
    # The stop and the liquidation price trigger on the working price's range; targets on the last price.
    trigger_low, trigger_high = (triggers.low[start:end], triggers.high[start:end]) if triggers else (low, high)
    if long:
        reach = trigger_low <= max(levels) * (1 + MARGIN) + MARGIN
        if target is not None:
            reach |= high >= float(target) * (1 - MARGIN) - MARGIN
    else:
        reach = trigger_high >= min(levels) * (1 - MARGIN) - MARGIN
        if target is not None:
            reach |= low <= float(target) * (1 + MARGIN) + MARGIN
    times = candles.open_time_ms[start:end]
    reach |= (times % FUNDING_INTERVAL_MS == 0) & (times > position.opened_ms)
    hits = np.flatnonzero(reach)
    return start + int(hits[0]) if len(hits) else end


def exits_check(run: Run, sym: SymbolRun, now_ms: int) -> None:
    """Fill the stop or each take-profit the closed bars since the last check reached (positions_check_exits)."""
    position = run.ledger.open_position(sym.spec.exchange_symbol)
    if position is None:
        return
    since = position.exits_checked_until_ms or position.opened_ms
    found = sym.market.exit_series(since_ms=since, now_ms=now_ms,
                                   strictly_after=position.exits_checked_until_ms is not None)
    if found is None:
        return
    candles, i, end = found
    triggers = sym.market.exit_triggers(candles, i, end) if run.config.stop_working_type == MARK_PRICE else None
    ladder = _ladder(position)
    while True:
        i = _next_bar(candles, i, end, ladder, position, triggers)
        if i >= end:
            break
        open_ms = int(candles.open_time_ms[i])
        if open_ms > position.opened_ms and open_ms % FUNDING_INTERVAL_MS == 0:
            # Funding settles at the bar's open, before anything the bar does (the position held then).
            funding_settle(run, sym, position, open_ms)
        trigger_high, trigger_low = (triggers.range_at(i) if triggers else None) or (None, None)
        exits, ladder = ladder_step(ladder, to_decimal(candles.open[i]), to_decimal(candles.high[i]),
                                    to_decimal(candles.low[i]), sym.spec.step_size,
                                    breakeven_after_first=run.config.breakeven_after_tp1,
                                    tick_size=sym.spec.tick_size, trigger_high=trigger_high, trigger_low=trigger_low,
                                    liquidation_price=position.liquidation_price)
        for exit_ in exits:
            _reduce(run, sym, position, exit_, max(open_ms, position.opened_ms))
        if position.status == "closed":
            return
        position.stop_price, position.best_price = ladder.stop_price, ladder.best_price
        position.take_profits = [{"price": str(t.price), "share": str(t.share), "filled": t.filled}
                                 for t in ladder.targets]
        i += 1
    position.exits_checked_until_ms = int(candles.open_time_ms[end - 1])


def _reduce(run: Run, sym: SymbolRun, position: SimPosition, exit_, when_ms: int) -> None:
    """Close `exit_.quantity` reduce-only and book its PnL; close the position when none is left (position_reduce)."""
    side = "sell" if position.side == "LONG" else "buy"
    intent = OrderIntent(make_intent_id("exit", position.id), exit_.leg, sym.spec.symbol, side, "market",
                         exit_.quantity, reduce_only=True)
    if intent.client_order_id in run.orders_by_id:
        return                          # the leg was sent already: the live path does not send it twice
    # A stop is a market order and slips; a take-profit is a resting limit and fills at its price.
    report = run.broker.fill_at(intent, exit_.price, when_ms, slip=exit_.reason == "stop",
                                tick_size=sym.spec.tick_size)
    order = run.book(intent, report, when_ms, sym.spec.exchange_symbol)
    filled, average = order.filled_quantity, order.average_price
    exit_fee = sum((f.fee_usdt for f in report.fills), Decimal(0))
    gross = position_pnl(position.side, filled, position.entry_price, average)
    released = margin_released(position.margin_usdt, filled, position.quantity) \
        if position.margin_usdt is not None else None
    position.quantity -= filled
    position.fees_usdt += exit_fee
    position.realized_pnl_usdt += gross - exit_fee
    if exit_.reason == "liquidation":
        # The venue keeps the rest of the isolated margin as its clearance fee: the loss is all of it.
        clearance = liquidation_clearance_fee(position.side, filled, position.entry_price, average, released)
        exit_fee += clearance
        position.fees_usdt += clearance
        position.realized_pnl_usdt -= clearance
    if released is not None:
        position.margin_usdt = stored(position.margin_usdt - released)
    # The row stores its money and prices to 10 places.
    position.realized_pnl_usdt, position.fees_usdt = stored(position.realized_pnl_usdt), stored(position.fees_usdt)
    position.exit_price, position.exit_reason = stored(average), exit_.leg
    run.ledger.balance_add(gross - exit_fee)
    if position.quantity <= 0:
        position.status, position.closed_ms = "closed", when_ms
        position.exit_reason = {"stop": "stop", "liquidation": "liquidation"}.get(exit_.reason, "target")
        run.ledger.position_closed(position)


def funding_settle(run: Run, sym: SymbolRun, position: SimPosition, at_ms: int) -> FundingRecord | None:
    """Book one funding settlement of an open position at `at_ms` (paper_funding_settle); None if none is due.

    Uses the position's current quantity. No stored rate (or no price to mark with): nothing is
    booked and the gap is logged once; rates are never invented.
    """
    key = (sym.spec.exchange_symbol, at_ms)
    if position.quantity <= 0 or key in sym.funding_booked:
        return None
    found = sym.market.funding_mark(at_ms)
    if found is None and sym.market.funding is None:
        if not sym.funding_missing:     # no rates at all: say so once, not at every settlement
            sym.funding_missing.add(at_ms)
            logger.warning("backtest funding of %s not booked: no stored funding rates", sym.spec.exchange_symbol)
        return None
    if found is None:
        if at_ms not in sym.funding_missing:
            sym.funding_missing.add(at_ms)
            logger.warning("backtest funding of %s at %s not booked: no stored funding rate or price",
                           sym.spec.exchange_symbol, dt(at_ms).isoformat())
        return None
    rate, mark = found
    amount = funding_payment(position.side, position.quantity, mark, rate)
    position.funding_usdt += amount
    position.realized_pnl_usdt += amount
    run.ledger.balance_add(amount)
    sym.funding_booked.add(key)
    record = FundingRecord(sym.spec.exchange_symbol, position.id, dt(at_ms), rate, mark, amount)
    run.funding.append(record)
    return record


def funding_apply(run: Run, now_ms: int) -> None:
    """Book the funding every open position owes or earns up to `now_ms` (paper_funding_apply)."""
    by_symbol = {s.spec.exchange_symbol: s for s in run.symbols}
    for position in sorted(run.ledger.open_positions(), key=lambda p: p.opened_ms, reverse=True):
        sym = by_symbol[position.symbol]
        for at_ms in funding_times(position.opened_ms, now_ms):
            funding_settle(run, sym, position, at_ms)
