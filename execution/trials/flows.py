"""The execution process of a trial: one scenario through the engine's own functions, until its crash point.

Each flow takes the engine lease first, as the engine does before its first order, under a holder
name that stays the same across restarts (`HOLDER`), or with `per_process_holder` under a name of
its own process, as run_execution takes it (execution.locks.holder_id). The crash
point is armed (TRADINGBOT_CRASH_AT set) when the flow reaches the part the trial is about; the
exit flow arms it only once its position is protected. A flow that finishes without being killed
means its crash point was never passed: the trial reports that as an error.

Steps the engine has no function for are written here as the engine would write them: the limit
entry's fill is learned by querying the order (order_resolve), and `position_from_entry` books its
position the way services.position_open books a market one. ccxt's client-side throttle is off
(`trial_broker`): the venue is on this machine, and the engine's clock in the restart is simulated.
"""
from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from decisions.models import Decision, Mode
from decisions.risk.sizing import round_to_tick
from execution.brokers.ccxt import CcxtBroker
from execution.crashpoints import CRASH_AT_ENV
from execution.locks import holder_id
from execution.loop import ExecutionLoop
from execution.models import Account, Order, Position
from execution.oms import OrderIntent, make_intent_id
from execution.orders import order_place, order_resolve
from execution.protective import position_flatten, protection_place
from execution.reconciliation import reconciliation_run
from execution.services import position_open
from execution.trials.matrix import TrialSpec
from execution.trials.transport import transport_crash_points
from execution.trials.venue import SYMBOL, VenueControl
from execution.venues import venue_broker
from market.models import Instrument
from market.services import instrument_ensure

ACCOUNT_NAME = "crash"
HOLDER = "engine:crash-trials"
TIMEOUT_MS = 5_000
LADDER = (("1", "0.4"), ("2", "0.4"), ("3", "0.2"))   # take-profits at 1, 2 and 3 R: share of the position


class TrialError(RuntimeError):
    """The scenario went somewhere no crash trial expects (an entry that did not fill, a refused order)."""


@dataclass
class Run:
    spec: TrialSpec
    account: Account
    instrument: Instrument
    broker: CcxtBroker
    venue: VenueControl

    @property
    def now(self) -> datetime:
        return timezone.now()

    def arm(self) -> None:
        """Let the trial's crash point fire from here on."""
        os.environ[CRASH_AT_ENV] = self.spec.crash_at


def engine_holder(spec: TrialSpec) -> str:
    """Return the engine-lease holder name this process uses."""
    return holder_id() if spec.per_process_holder else HOLDER


def trial_broker(account: Account) -> CcxtBroker:
    """Return the account's venue broker without ccxt's client-side throttle (the venue is local)."""
    broker = venue_broker(account, timeout_ms=TIMEOUT_MS)
    broker.exchange.enableRateLimit = False
    return broker


def _decision(run: Run) -> Decision:
    spec, price = run.spec, Decimal(run.spec.price)
    sign = 1 if spec.side == "LONG" else -1
    entry = spec.limit_price() if spec.flow == "limit" else price
    risk = round_to_tick(entry * Decimal(spec.stop_fraction), run.instrument.tick_size)
    targets = [{"price": str(entry + sign * Decimal(r) * risk), "share": share} for r, share in LADDER]
    return Decision.objects.create(
        instrument=run.instrument, timeframe="5m", as_of=run.now.replace(microsecond=0), action=spec.side,
        mode=Mode.ON, outcome=Decision.Outcome.EXECUTED, entry_price=entry, stop_price=entry - sign * risk,
        target_price=Decimal(targets[-1]["price"]), quantity=Decimal(spec.quantity), take_profits=targets,
        reason=f"crash trial {spec.name}")


def position_from_entry(run: Run, decision: Decision, order: Order) -> Position:
    """Book the position of a filled entry with its stop and ladder, as services.position_open does."""
    fee = sum((f.fee_usdt for f in order.fills.all()), Decimal(0))
    with transaction.atomic():
        position = Position.objects.create(
            account=run.account, instrument=run.instrument, decision=decision, side=decision.action,
            open_key=run.instrument.pk, quantity=order.filled_quantity, initial_quantity=order.filled_quantity,
            entry_price=order.average_price, stop_price=decision.stop_price, target_price=decision.target_price,
            take_profits=[{**t, "filled": False} for t in decision.take_profits], opened_at=run.now, fees_usdt=fee,
            realized_pnl_usdt=-fee)
        # Marked as execution.entries books them: the engine's read of entries to book skips marked orders.
        Order.objects.filter(decision=decision, account=run.account, leg__startswith="entry",
                             position__isnull=True).update(position=position)
        Account.objects.filter(pk=run.account.pk).update(balance_usdt=F("balance_usdt") - fee)
    return position


def _market_entry(run: Run) -> Position:
    if run.spec.point == "mid_partial_fill" and run.spec.flow == "market":
        run.venue.partial_fills(run.spec.partial_fraction)
    position = position_open(decision=_decision(run), account=run.account, broker=run.broker, now=run.now,
                             reference_price=Decimal(run.spec.price))
    if position is None:
        raise TrialError("the market entry did not fill")
    return position


def _limit_entry(run: Run) -> Position:
    decision, limit = _decision(run), run.spec.limit_price()
    side = "buy" if run.spec.side == "LONG" else "sell"
    intent = OrderIntent(make_intent_id(run.account.name, run.instrument.pk, decision.timeframe,
                                        decision.as_of.isoformat()), "entry", run.instrument.symbol, side, "limit",
                         decision.quantity, price=limit)
    order, _ = order_place(account=run.account, instrument=run.instrument, intent=intent, broker=run.broker,
                           reference_price=limit, now=run.now, decision=decision)
    if run.spec.point == "mid_partial_fill":
        run.venue.partial_fills(run.spec.partial_fraction)
    for _ in range(3):   # the market comes to the limit (again): the venue fills it, the engine asks about it
        run.venue.set_price(limit)
        order = order_resolve(order=order, broker=run.broker, now=run.now, force=True)
        if order.status == Order.Status.FILLED:
            break
    else:
        raise TrialError(f"the limit entry is {order.status}, filled {order.filled_quantity}")
    position = position_from_entry(run, decision, order)
    protection_place(position=position, broker=run.broker, now=run.now)
    return position


def _take_profit_and_resize(run: Run, position: Position) -> None:
    """Let the venue fill the first take-profit; the reconciliation run books it and resizes the stop."""
    run.venue.set_price(Decimal(position.take_profits[0]["price"]))
    reconciliation_run(account=run.account, broker=run.broker, now=run.now, trigger="periodic")


def market_flow(run: Run) -> None:
    run.arm()
    _take_profit_and_resize(run, _market_entry(run))


def limit_flow(run: Run) -> None:
    run.arm()
    _take_profit_and_resize(run, _limit_entry(run))


def exit_flow(run: Run) -> None:
    position = _market_entry(run)
    run.arm()
    _take_profit_and_resize(run, position)
    position.refresh_from_db()
    if run.spec.point == "mid_partial_fill":
        run.venue.partial_fills(run.spec.partial_fraction)
    position_flatten(position=position, broker=run.broker, now=run.now, reason=f"crash trial {run.spec.name} exit")


FLOW_RUNNERS = {"market": market_flow, "limit": limit_flow, "exit": exit_flow}


def flow_main(spec: TrialSpec, control: VenueControl, error_file: Path) -> None:
    """Run the trial's flow in this (forked) process; exit 0 if no crash point fired, 1 on an error."""
    os.environ.pop(CRASH_AT_ENV, None)
    try:
        account = Account.objects.get(name=ACCOUNT_NAME)
        instrument = instrument_ensure(exchange=account.exchange_id, exchange_symbol=SYMBOL, market_type="swap")
        broker = trial_broker(account)
        transport_crash_points(broker.exchange)
        run = Run(spec, account, instrument, broker, control)
        ExecutionLoop(account, broker, engine_holder(spec)).start(run.now)   # the engine lease; no reconciliation
        FLOW_RUNNERS[spec.flow](run)
    except BaseException:   # noqa: BLE001  any way out but the kill is the trial's error
        error_file.write_text(traceback.format_exc())
        os._exit(1)
    os._exit(0)
