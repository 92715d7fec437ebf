"""Writes for the execution stage: positions, exits and equity; orders go through execution.orders."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F

from dashboard.events import broadcast_on_commit
from decisions.models import Decision, TradingConfig
from decisions.selectors import trading_config_get
from execution.brokers.base import Broker
from execution.brokers.paper import LadderExit, LadderPosition, PaperBroker, Target, ladder_step, position_pnl
from execution.models import Account, EquityPoint, Order, Position
from execution.orders import audit_order as _audit_order
from execution.orders import order_apply_report, order_create_pending, order_send  # noqa: F401  (re-exported)
from execution.oms import OrderIntent, Precision, apply_precision, make_intent_id
from execution.protective import protection_place
from execution.selectors import equity_now, position_get_open, unrealized_pnl
from market.models import Candle, Instrument
from market.timeframes import timeframe_ms

logger = logging.getLogger(__name__)


def account_ensure(*, name: str = "paper") -> Account:
    """Return the paper account, creating it with the configured starting balance."""
    start = Decimal(settings.PAPER_STARTING_EQUITY_USDT)
    account, _ = Account.objects.get_or_create(
        name=name, defaults={"broker": Account.Broker.PAPER, "starting_balance_usdt": start, "balance_usdt": start}
    )
    return account


def broker_for(account: Account, config: TradingConfig) -> Broker:
    """Return the broker that executes for `account`."""
    if account.broker != Account.Broker.PAPER:
        from execution.venues import venue_broker  # ccxt and the keys load only for venue accounts

        return venue_broker(account)
    return PaperBroker(taker_fee_fraction=config.taker_fee_fraction, slippage_bps=config.slippage_bps)


def _precision(instrument: Instrument) -> Precision:
    return Precision(instrument.tick_size, instrument.step_size, instrument.min_notional)


def _trail_distance(decision: Decision, multiple: Decimal | None) -> Decimal | None:
    """Return the trailing distance in price units: `multiple` ATR of the decision's snapshot."""
    if not multiple or decision.snapshot is None or not decision.snapshot.atr > 0:
        return None
    return (multiple * Decimal(repr(decision.snapshot.atr))).quantize(decision.instrument.tick_size)


def position_open(*, decision: Decision, account: Account, broker: Broker, now: datetime,
                  reference_price: Decimal | None = None, trail_atr_multiple: Decimal | None = None) -> Position | None:
    """Enter the decision's trade at market and open the position with its stop, ladder and trail.

    `reference_price` is the market price to fill against (an approval comes later than the
    decision's close); it defaults to the decision's entry price.
    """
    instrument = decision.instrument
    side = "buy" if decision.action == "LONG" else "sell"
    intent = OrderIntent(make_intent_id(account.name, instrument.pk, decision.timeframe, decision.as_of.isoformat()),
                         "entry", instrument.symbol, side, "market", decision.quantity)
    intent = apply_precision(intent, _precision(instrument), decision.entry_price)
    order, created = order_create_pending(account=account, instrument=instrument, intent=intent,
                                          decision=decision, now=now)
    if not created:
        logger.info("intent %s already sent; not sending again", intent.client_order_id)
        return Position.objects.filter(decision=decision).first()
    order = order_send(order=order, broker=broker, reference_price=reference_price or decision.entry_price, now=now)
    with transaction.atomic():
        if order.status != Order.Status.FILLED:
            return None
        fee = sum((f.fee_usdt for f in order.fills.all()), Decimal(0))
        targets = decision.take_profits or [{"price": str(decision.target_price), "share": "1"}]
        position = Position.objects.create(
            account=account, instrument=instrument, decision=decision, side=decision.action,
            open_key=instrument.pk, quantity=order.filled_quantity, initial_quantity=order.filled_quantity,
            entry_price=order.average_price, stop_price=decision.stop_price, target_price=decision.target_price,
            take_profits=[{**t, "filled": False} for t in targets], opened_at=now, fees_usdt=fee,
            trail_distance=_trail_distance(decision, trail_atr_multiple),
            realized_pnl_usdt=-fee,
        )
        # F(): another cycle may have booked a close since `account` was read.
        Account.objects.filter(pk=account.pk).update(balance_usdt=F("balance_usdt") - fee)
        account.refresh_from_db()
        broadcast_on_commit("position", position_payload(position))
    if not getattr(broker, "simulates_exits", False):
        # On a venue the stop and targets are resting orders: place them now; the execution loop
        # verifies the stop within seconds and flattens the position if it is missing.
        protection_place(position=position, broker=broker, now=now,
                         tp_order_style=trading_config_get().tp_order_style)
    return position


def position_payload(position: Position) -> dict:
    """Return the JSON shape the dashboard shows for a position."""
    return {"id": position.pk, "instrument": str(position.instrument), "side": position.side,
            "status": position.status, "quantity": position.quantity, "entry_price": position.entry_price,
            "stop_price": position.stop_price, "target_price": position.target_price,
            "opened_at": position.opened_at, "exit_price": position.exit_price,
            "exit_reason": position.exit_reason, "realized_pnl_usdt": position.realized_pnl_usdt}


def _exit_bars(position: Position, since: datetime, now: datetime):
    """Return the finest stored bars opened at or after `since` (after, once checked) and closed by `now`."""
    strictly_after = position.exits_checked_until is not None
    for timeframe in ("1m", "3m", "5m", "15m", "30m", "1h"):
        step = timedelta(milliseconds=timeframe_ms(timeframe))
        start = {"open_time__gt": since} if strictly_after else {"open_time__gte": since}
        bars = Candle.objects.filter(instrument=position.instrument, timeframe=timeframe,
                                     open_time__lte=now - step, **start)
        if bars.exists():
            return list(bars.order_by("open_time").values_list("open_time", "open", "high", "low"))
    return []


def _ladder(position: Position) -> LadderPosition:
    targets = tuple(Target(Decimal(str(t["price"])), Decimal(str(t["share"])), bool(t.get("filled")))
                    for t in position.take_profits) or (Target(position.target_price, Decimal(1)),)
    return LadderPosition(position.side, position.entry_price, position.initial_quantity or position.quantity,
                          position.quantity, position.stop_price, targets, position.trail_distance or None,
                          position.best_price)


def positions_check_exits(*, account: Account, instrument: Instrument, broker: PaperBroker,
                          now: datetime, breakeven_after_tp1: bool = True) -> Position | None:
    """Walk the closed bars since entry: fill the stop or each take-profit the bars reached."""
    position = position_get_open(account=account, instrument=instrument)
    if position is None:
        return None
    ladder = _ladder(position)
    since = position.exits_checked_until or position.opened_at
    for open_time, bar_open, bar_high, bar_low in _exit_bars(position, since, now):
        exits, ladder = ladder_step(ladder, bar_open, bar_high, bar_low, instrument.step_size,
                                    breakeven_after_first=breakeven_after_tp1, tick_size=instrument.tick_size)
        when = max(open_time, position.opened_at)
        for exit_ in exits:
            position = position_reduce(position=position, broker=broker, exit_=exit_, now=when)
        if position.status == Position.Status.CLOSED:
            return position
        position.stop_price, position.best_price = ladder.stop_price, ladder.best_price
        position.take_profits = [{"price": str(t.price), "share": str(t.share), "filled": t.filled}
                                 for t in ladder.targets]
        position.exits_checked_until = open_time
    if position.exits_checked_until is not None:
        position.save(update_fields=["stop_price", "best_price", "take_profits", "exits_checked_until"])
    return position if position.status == Position.Status.CLOSED else None


def position_reduce(*, position: Position, broker: PaperBroker, exit_: LadderExit, now: datetime) -> Position:
    """Close `exit_.quantity` of the position reduce-only and book its PnL; close it when nothing is left."""
    side = "sell" if position.side == "LONG" else "buy"
    intent = OrderIntent(make_intent_id("exit", position.pk), exit_.leg, position.instrument.symbol, side,
                         "market", exit_.quantity, reduce_only=True)
    order, created = order_create_pending(account=position.account, instrument=position.instrument,
                                          intent=intent, decision=position.decision, now=now)
    if not created:
        return position
    # A stop is a market order and slips; a take-profit is a resting limit and fills at its price.
    report = broker.fill_at(intent, exit_.price, int(now.timestamp() * 1000), slip=exit_.reason == "stop",
                            tick_size=position.instrument.tick_size)
    with transaction.atomic():
        order = order_apply_report(order=order, report=report, now=now)
        exit_fee = sum((f.fee_usdt for f in report.fills), Decimal(0))
        gross = position_pnl(position.side, order.filled_quantity, position.entry_price, order.average_price)
        position.quantity -= order.filled_quantity
        position.fees_usdt += exit_fee
        position.realized_pnl_usdt += gross - exit_fee
        position.exit_price, position.exit_reason = order.average_price, exit_.leg
        if position.quantity <= 0:
            position.status, position.open_key, position.closed_at = Position.Status.CLOSED, None, now
            position.exit_reason = "stop" if exit_.reason == "stop" else "target"
        position.save()
        Account.objects.filter(pk=position.account_id).update(balance_usdt=F("balance_usdt") + gross - exit_fee)
        _audit_order(order, now, {"action": "position_closed" if position.status == Position.Status.CLOSED
                                  else "position_reduced", "position": position.pk, "leg": exit_.leg,
                                  "quantity": order.filled_quantity, "exit_price": order.average_price,
                                  "realized_pnl_usdt": position.realized_pnl_usdt})
        broadcast_on_commit("position", position_payload(position))
    return position


def equity_record(*, account: Account, now: datetime) -> EquityPoint:
    """Store the account's equity at `now` and publish it."""
    account.refresh_from_db()
    unrealized = unrealized_pnl(account=account, now=now).quantize(Decimal("0.00000001"))
    point, _ = EquityPoint.objects.update_or_create(
        account=account, ts=now,
        defaults={"balance_usdt": account.balance_usdt, "unrealized_pnl_usdt": unrealized,
                  "equity_usdt": account.balance_usdt + unrealized},
    )
    broadcast_on_commit("equity", {"account_id": account.pk, "account": account.name, "ts": point.ts, "equity_usdt": point.equity_usdt,
                                   "balance_usdt": point.balance_usdt, "unrealized_pnl_usdt": unrealized})
    return point


__all__ = ["account_ensure", "broker_for", "position_open", "positions_check_exits", "position_reduce",
           "equity_record", "equity_now"]
