"""The live engine: one cycle of exits, decisions and equity, driven by a real or simulated clock."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet

from analytics.selectors import bars_remembered
from dashboard.events import broadcast_on_commit, events_batched
from decisions.models import TradingConfig
from decisions.selectors import trading_config_get
from decisions.services import decision_run
from execution.selectors import (
    balance_refresh, balance_writes_noted, closes_remembered, last_close, positions_open, positions_remembered,
)
from execution.paper_venue import paper_funding_apply
from execution.services import account_ensure, broker_for, equity_record, paper_entries_work, positions_check_exits
from market.models import Instrument
from tradingbot.compiled_reads import models_compiled

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CycleResult:
    decisions: int
    exits: int
    equity_usdt: str


def on_tick(price: Decimal, tick: Decimal) -> Decimal:
    """Return `price` with as many decimals as the tick has (0.1 -> one), for display."""
    places = max(0, -tick.normalize().as_tuple().exponent)
    return price.quantize(Decimal(1).scaleb(-places))


def is_decision_time(now: datetime, interval_minutes: int) -> bool:
    """Return True when `now` falls on a decision boundary (minutes since epoch divisible)."""
    minutes = int(now.timestamp()) // 60
    return now.second == 0 and minutes % max(1, interval_minutes) == 0


def cycle_run(*, now: datetime, decide: bool = True, account_name: str = "paper") -> CycleResult:
    """Run exits for every active instrument, then decisions when asked, then record equity."""
    with bars_remembered(), balance_writes_noted(), positions_remembered(), events_batched():
        config = trading_config_get()
        with closes_remembered(timeframe=config.decision_timeframe):
            return _cycle(now, decide, account_name, config)


def _cycle(now: datetime, decide: bool, account_name: str, config: TradingConfig) -> CycleResult:
    account = account_ensure(name=account_name)
    broker = broker_for(account, config, now=now)
    decisions = exits = 0
    for instrument in _instruments_active():
        # A venue's resting stop and targets close positions there; only paper simulates them per bar.
        simulated = getattr(broker, "simulates_exits", False)
        if simulated:   # resting paper entries fill on the bars since they were placed, then chase
            paper_entries_work(account=account, broker=broker, instrument=instrument, now=now, config=config)
        if simulated and positions_check_exits(account=account, instrument=instrument, broker=broker, now=now,
                                               breakeven_after_tp1=config.breakeven_after_tp1,
                                               config=config) is not None:
            exits += 1
        # Exits booked PnL into the balance: the decision sizes from the equity after them, not before.
        balance_refresh(account)
        if decide and decision_run(instrument=instrument, now=now, account=account, config=config) is not None:
            decisions += 1
        price = last_close(instrument=instrument, now=now)
        if price is not None:
            broadcast_on_commit("price", {"instrument_id": instrument.pk, "instrument": str(instrument),
                                              "price": on_tick(price[0], instrument.tick_size), "ts": price[1]})
    # Once for the funding and the equity: funding changes an open position's PnL, not its size. Read
    # afresh, as the equity point reads the balance: a position another process closed during the
    # cycle (the kill switch) is in the balance now, and must not be counted again as unrealised PnL.
    positions = positions_open(account, fresh=True)
    if getattr(broker, "simulates_exits", False):
        paper_funding_apply(account=account, now=now, positions=positions)  # settlements the bars did not reach
    point = equity_record(account=account, now=now, positions=positions)
    return CycleResult(decisions, exits, str(point.equity_usdt))


def _instruments_active() -> list[Instrument]:
    """Return the active instruments in id order, made as a queryset makes them (compiled once: read every cycle)."""
    return models_compiled("active instruments", Instrument, _instruments_active_read)


def _instruments_active_read() -> QuerySet:
    return Instrument.objects.filter(is_active=True).order_by("pk")
