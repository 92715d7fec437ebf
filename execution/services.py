"""Writes for the execution stage: positions, exits and equity; orders go through execution.orders."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q

from dashboard.events import broadcast_on_commit
from decisions.audit_services import AuditBatch, audit_batched
from decisions.models import Decision, TradingConfig
from decisions.selectors import trading_config_get
from execution.brokers.base import Broker
from execution.brokers.paper import LadderExit, LadderPosition, Target, ladder_step, position_pnl
from execution.brokers.paper_model import liquidation_clearance_fee, margin_at_liquidation
from execution.models import Account, EquityPoint, Order, Position
from execution.orders import audit_order as _audit_order
from execution.orders import order_apply_report, order_create_pending, order_send  # noqa: F401  (re-exported)
from execution.entries import (LIMIT_TYPES, entries_to_sync, entries_work, entry_position_sync, entry_submit,
                               entry_working, reprice_horizon_s)
from execution.liquidation import Liquidation, margin_released, position_liquidation
from execution.paper_venue import BOOK_STATES, PaperVenue, paper_exit_bars, paper_funding_settle, paper_orders_match
from execution.oms import OrderIntent, OrderRejected, make_intent_id
from execution.order_states import OrderState
from execution.protective import protection_place
from execution.selectors import (
    balance_stored, balance_written, equity_now, last_close, position_get_open, unrealized_pnl,
)
from market.models import Instrument
from tradingbot.compiled_reads import models_compiled, rows_compiled
from tradingbot.upsert import row_upsert

logger = logging.getLogger(__name__)
FUNDING_PERIOD_MS = 8 * 3_600_000      # Binance settles funding at 00:00, 08:00 and 16:00 UTC


def account_ensure(*, name: str = "paper") -> Account:
    """Return the account named `name`, creating a paper one with the configured starting balance.

    Read at the start of every engine cycle: compiled once (tradingbot.compiled_reads).
    """
    found = models_compiled("account by name", Account, _account_read, name=name)
    if found:
        return found[0]
    start = Decimal(settings.PAPER_STARTING_EQUITY_USDT)
    account, _ = Account.objects.get_or_create(
        name=name, defaults={"broker": Account.Broker.PAPER, "starting_balance_usdt": start, "balance_usdt": start}
    )
    return account


def _account_read(*, name: str):
    return Account.objects.filter(name=name)


def broker_for(account: Account, config: TradingConfig, *, now: datetime | None = None) -> Broker:
    """Return the broker that executes for `account`.

    `now` is the cycle's time: the paper venue matches resting orders against the stored bars up to
    its clock, so a replay on a simulated clock must not let it read bars after the cycle (the
    wall clock would). Venue brokers ask the exchange, whose clock is the real one.
    """
    if account.broker != Account.Broker.PAPER:
        from execution.venues import venue_broker  # ccxt and the keys load only for venue accounts

        return venue_broker(account)
    if now is None:
        return PaperVenue(account, config)
    return PaperVenue(account, config, clock=lambda: now)


def position_open(*, decision: Decision, account: Account, broker: Broker, now: datetime,
                  reference_price: Decimal | None = None, trail_atr_multiple: Decimal | None = None,
                  order_type: str = "market", config: TradingConfig | None = None,
                  audit: AuditBatch | None = None) -> Position | None:
    """Enter the decision's trade and open the position with its stop, ladder and trail.

    `reference_price` is the market price to fill against (an approval comes later than the
    decision's close); it defaults to the decision's entry price. A market entry opens the position
    from its fills at once; a limit entry ("limit") rests and returns None: the execution loop
    chases it and opens the position at its first fill (`execution.entries`). `config` is the
    caller's configuration of this cycle (read here when not given). `audit`: the batch of the
    decision's transaction that takes a paper entry in (`decisions.services.decision_run`).
    """
    reference_price = reference_price or decision.entry_price
    if getattr(broker, "simulates_exits", False):
        order, position, change = _paper_entry(decision=decision, account=account, broker=broker, now=now,
                                               reference_price=reference_price, order_type=order_type,
                                               trail_atr_multiple=trail_atr_multiple, config=config, join=audit)
    else:
        if audit is not None:
            raise transaction.TransactionManagementError("a venue entry is sent only after its decision commits")
        order = entry_submit(decision=decision, account=account, broker=broker, now=now,
                             reference_price=reference_price, order_type=order_type, config=config)
        position, change = entry_sync(decision=decision, account=account, broker=broker, now=now,
                                      trail_atr_multiple=trail_atr_multiple, config=config)
    if position is None:
        return None
    if change and not getattr(broker, "simulates_exits", False):
        # On a venue the stop and targets are resting orders: place them now; the execution loop
        # verifies the stop within seconds and flattens the position if it is missing.
        protection_place(position=position, broker=broker, now=now,
                         tp_order_style=(config or trading_config_get()).tp_order_style)
    elif not change:
        logger.info("entry %s of decision %s already booked as position %s", order.client_order_id, decision.pk,
                    position.pk)
    return position


def _paper_entry(*, decision: Decision, account: Account, broker: Broker, now: datetime, reference_price: Decimal,
                 order_type: str, trail_atr_multiple: Decimal | None,
                 config: TradingConfig | None, join: AuditBatch | None = None) -> tuple[Order, Position | None, str]:
    """Enter on the paper venue in one transaction: the order, its answer, its fills, the position, the audit.

    The paper venue's answer is a computation on this database, not a network call, so nothing has
    to be committed before it (a venue order is, for reconciliation to find): a crash leaves no
    order, fill or position at all rather than an order without its position. The records go in
    with one head lock. A refused order is kept, with its records, and the refusal raised after.
    `join`: the batch of the decision's transaction, which this entry joins; that caller holds the
    savepoint that undoes the entry alone should it fail.
    """
    refused = None
    with transaction.atomic(savepoint=join is None), audit_batched(join) as audit:
        try:
            order = entry_submit(decision=decision, account=account, broker=broker, now=now,
                                 reference_price=reference_price, order_type=order_type, config=config, audit=audit)
        except OrderRejected as exc:
            refused = exc   # the rejected order and its records commit with this block
        else:
            position, change = entry_sync(decision=decision, account=account, broker=broker, now=now,
                                          trail_atr_multiple=trail_atr_multiple, config=config, audit=audit)
    if refused is not None:
        raise refused
    return order, position, change


def entry_sync(*, decision: Decision, account: Account, broker: Broker, now: datetime,
               trail_atr_multiple: Decimal | None = None,
               config: TradingConfig | None = None, audit: AuditBatch | None = None) -> tuple[Position | None, str]:
    """Open or grow the decision's position from its entry fills; a paper one gets its liquidation price.

    With `audit` the position's record is queued there (the caller's transaction appends it).
    """
    def liquidation_of(position: Position) -> Liquidation | None:
        return position_liquidation(position, account, config or trading_config_get())

    # Set in the position's own write: no second update, and never a paper position without it.
    simulated = getattr(broker, "simulates_exits", False)
    return entry_position_sync(decision=decision, account=account, now=now, trail_atr_multiple=trail_atr_multiple,
                               liquidation_of=liquidation_of if simulated else None, audit=audit)


def _limit_work_waiting(account: Account, instrument: Instrument, now: datetime, config: TradingConfig) -> bool:
    """Return False when `account` has no resting limit order in `instrument` and no refused re-price to
    take up: neither the paper matching nor the chase would find anything (one query instead of three)."""
    since = now - timedelta(seconds=reprice_horizon_s(config))
    return bool(rows_compiled("limit work waiting", Order, _limit_work_read, account_id=account.pk,
                              instrument_id=instrument.pk, since=since))


def _limit_work_read(*, account_id: int, instrument_id: int, since: datetime):
    # Read every engine cycle, compiled once (tradingbot.compiled_reads).
    return Order.objects.filter(account_id=account_id, type__in=LIMIT_TYPES).filter(
        Q(instrument_id=instrument_id, status__in=BOOK_STATES)
        | Q(status=OrderState.REJECTED, leg__startswith="entry", decision__isnull=False, created_at__gte=since)
    ).values_list("pk")[:1]


def paper_entries_work(*, account: Account, broker: Broker, instrument: Instrument, now: datetime,
                       config: TradingConfig) -> None:
    """Fill resting paper entries on the bars since they were placed, open their positions, chase the rest."""
    if _limit_work_waiting(account, instrument, now, config):
        _paper_limits_work(account=account, broker=broker, instrument=instrument, now=now, config=config)
    for decision in entries_to_sync(account):
        if decision.instrument_id == instrument.pk:
            entry_sync(decision=decision, account=account, broker=broker, now=now,
                       trail_atr_multiple=config.trail_atr_multiple, config=config)


def _paper_limits_work(*, account: Account, broker: Broker, instrument: Instrument, now: datetime,
                       config: TradingConfig) -> None:
    for order in paper_orders_match(account=account, instrument=instrument, now=now,
                                    participation=config.paper_fill_participation,
                                    maker_fee_fraction=config.maker_fee_fraction):
        if order.decision is not None and order.leg.startswith("entry"):
            entry_sync(decision=order.decision, account=account, broker=broker, now=now,
                       trail_atr_multiple=config.trail_atr_multiple, config=config)
    def price_of(instr: Instrument) -> Decimal | None:
        close = last_close(instrument=instr, now=now)
        return close[0] if close else None
    entries_work(account=account, broker=broker, now=now, price_of=price_of, config=config, instrument=instrument)


def position_payload(position: Position) -> dict:
    """Return the JSON shape the dashboard shows for a position."""
    return {"id": position.pk, "instrument": str(position.instrument), "side": position.side,
            "status": position.status, "quantity": position.quantity, "entry_price": position.entry_price,
            "stop_price": position.stop_price, "target_price": position.target_price,
            "opened_at": position.opened_at, "exit_price": position.exit_price,
            "exit_reason": position.exit_reason, "realized_pnl_usdt": position.realized_pnl_usdt}


def _ladder(position: Position) -> LadderPosition:
    targets = tuple(Target(Decimal(str(t["price"])), Decimal(str(t["share"])), bool(t.get("filled")))
                    for t in position.take_profits) or (Target(position.target_price, Decimal(1)),)
    return LadderPosition(position.side, position.entry_price, position.initial_quantity or position.quantity,
                          position.quantity, position.stop_price, targets, position.trail_distance or None,
                          position.best_price)


def positions_check_exits(*, account: Account, instrument: Instrument, broker: PaperVenue,
                          now: datetime, breakeven_after_tp1: bool = True,
                          config: TradingConfig | None = None) -> Position | None:
    """Walk the closed bars since entry: fill the stop or each take-profit the bars reached.

    `config` is the caller's configuration of this cycle (read here when not given).
    """
    position = position_get_open(account=account, instrument=instrument)
    if position is None:
        return None
    # The rows the query matched on: the bars, the orders and the audit need them, read once.
    position.account, position.instrument = account, instrument
    config = config or trading_config_get()
    ladder = _ladder(position)
    since = position.exits_checked_until or position.opened_at
    working_type = config.stop_working_type
    for open_time, bar_open, bar_high, bar_low, trigger_high, trigger_low in paper_exit_bars(
            position=position, since=since, now=now, working_type=working_type):
        if open_time > position.opened_at and int(open_time.timestamp() * 1000) % FUNDING_PERIOD_MS == 0:
            # Funding settles at the bar's open, before anything the bar does (the position held then).
            paper_funding_settle(position=position, at=open_time)
        exits, ladder = ladder_step(ladder, bar_open, bar_high, bar_low, instrument.step_size,
                                    breakeven_after_first=breakeven_after_tp1, tick_size=instrument.tick_size,
                                    trigger_high=trigger_high, trigger_low=trigger_low,
                                    liquidation_price=position.liquidation_price)
        when = max(open_time, position.opened_at)
        for exit_ in exits:
            position = position_reduce(position=position, broker=broker, exit_=exit_, now=when, config=config)
        if position.status == Position.Status.CLOSED:
            return position
        position.stop_price, position.best_price = ladder.stop_price, ladder.best_price
        position.take_profits = [{"price": str(t.price), "share": str(t.share), "filled": t.filled}
                                 for t in ladder.targets]
        position.exits_checked_until = open_time
    if position.exits_checked_until is not None:
        position.save(update_fields=["stop_price", "best_price", "take_profits", "exits_checked_until"])
    return position if position.status == Position.Status.CLOSED else None


def position_reduce(*, position: Position, broker: PaperVenue, exit_: LadderExit, now: datetime,
                    config: TradingConfig | None = None) -> Position:
    """Close `exit_.quantity` of the position reduce-only and book its PnL; close it when nothing is left."""
    side = "sell" if position.side == "LONG" else "buy"
    intent = OrderIntent(make_intent_id("exit", position.pk), exit_.leg, position.instrument.symbol, side,
                         "market", exit_.quantity, reduce_only=True)
    config = config or trading_config_get()
    # One transaction from the order to the booked PnL: the paper fill is a computation, not a venue
    # call, so nothing needs committing before it, and a crash leaves the exit to the next check
    # (never an order without its position change). Its three audit records go in together.
    with transaction.atomic(), audit_batched() as audit:
        order, created = order_create_pending(account=position.account, instrument=position.instrument,
                                              intent=intent, decision=None, decision_id=position.decision_id,
                                              now=now, config=config, audit=audit)
        if not created:
            return position
        # A stop is a market order and slips; a take-profit is a resting limit and fills at its price.
        report = broker.fill_at(intent, exit_.price, int(now.timestamp() * 1000), slip=exit_.reason == "stop",
                                tick_size=position.instrument.tick_size)
        order = order_apply_report(order=order, report=report, now=now, audit=audit, created_here=True)
        exit_fee = sum((f.fee_usdt for f in report.fills), Decimal(0))
        gross = position_pnl(position.side, order.filled_quantity, position.entry_price, order.average_price)
        if position.margin_usdt is None and exit_.reason == "liquidation":
            # A liquidation price that came without its margin (set by hand): the margin that price implies.
            position.margin_usdt = margin_at_liquidation(position.side, position.entry_price, position.quantity,
                                                         exit_.price, config.maintenance_margin_fraction)
        released = margin_released(position.margin_usdt, order.filled_quantity, position.quantity) \
            if position.margin_usdt is not None else None
        position.quantity -= order.filled_quantity
        position.fees_usdt += exit_fee
        position.realized_pnl_usdt += gross - exit_fee
        if exit_.reason == "liquidation":
            # The venue keeps the rest of the isolated margin as its clearance fee: the loss is all of it.
            clearance = liquidation_clearance_fee(position.side, order.filled_quantity, position.entry_price,
                                                  order.average_price, released)
            exit_fee += clearance
            position.fees_usdt += clearance
            position.realized_pnl_usdt -= clearance
        if released is not None:
            position.margin_usdt -= released
        position.exit_price, position.exit_reason = order.average_price, exit_.leg
        if position.quantity <= 0:
            position.status, position.open_key, position.closed_at = Position.Status.CLOSED, None, now
            position.exit_reason = {"stop": "stop", "liquidation": "liquidation"}.get(exit_.reason, "target")
        position.save()
        Account.objects.filter(pk=position.account_id).update(balance_usdt=F("balance_usdt") + gross - exit_fee)
        balance_written(position.account_id)
        _audit_order(order, now, {"action": "position_closed" if position.status == Position.Status.CLOSED
                                  else "position_reduced", "position": position.pk, "leg": exit_.leg,
                                  "quantity": order.filled_quantity, "exit_price": order.average_price,
                                  "realized_pnl_usdt": position.realized_pnl_usdt}, audit)
        broadcast_on_commit("position", position_payload(position))
    return position


def equity_record(*, account: Account, now: datetime, positions: list[Position] | None = None) -> EquityPoint:
    """Store the account's equity at `now` and publish it.

    `positions` are the account's open positions (with instruments) when the caller has read them. The
    balance is always read again: a web process may have written it during the cycle (an approved
    entry's fee, the kill switch closing a position), and a point without a close's realised PnL
    would be a false drawdown that the drawdown gates read.
    """
    account.balance_usdt = balance_stored(account.pk)
    unrealized = unrealized_pnl(account=account, now=now, positions=positions).quantize(Decimal("0.00000001"))
    point = row_upsert(EquityPoint, keys={"account": account, "ts": now},
                       values={"balance_usdt": account.balance_usdt, "unrealized_pnl_usdt": unrealized,
                               "equity_usdt": account.balance_usdt + unrealized})
    broadcast_on_commit("equity", {"account_id": account.pk, "account": account.name, "ts": point.ts, "equity_usdt": point.equity_usdt,
                                   "balance_usdt": point.balance_usdt, "unrealized_pnl_usdt": unrealized})
    return point


__all__ = ["account_ensure", "broker_for", "entry_working", "position_open", "positions_check_exits", "position_reduce",
           "equity_record", "equity_now"]
