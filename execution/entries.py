"""Entries: a decision's trade enters at market, or as a post-only limit that chases the price.

Every entry order of a decision shares its intent id; its legs are `entry` (the first), `entry1`,
`entry2` ... (each re-price) and `entrymkt` (the market fallback), so the unique (intent, leg) and
client ids make every step idempotent. The position is built from what the entry orders filled,
not from the reply to one send: `entry_position_sync` opens it at the first fill and grows it with
later ones, so an entry whose reply was lost, or that filled in part and then expired, still gets
its position with the decision's stop and targets. On a venue the protection follows at once.
Booking marks the decision's entry orders with their position (`Order.position`), so the engine's
per-cycle read of entries to book (`entries_to_sync`) reads only unmarked orders and open
positions' ones, never the account's history of closed trades.
The chase itself is decided in `execution.chase`; this module sends, cancels and books.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Callable

from django.db import IntegrityError, transaction
from django.db.models import F, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce, NullIf

from dashboard.events import broadcast_on_commit
from decisions.audit_services import AuditBatch
from decisions.models import Decision, TradingConfig
from execution.brokers.base import Broker, BrokerError, OrderNotFound
from execution.chase import FALLBACK_LEG, ChasePolicy, ChaseState, chase_leg, chase_step, passive_price
from execution.liquidation import Liquidation
from execution.models import Account, Fill, Order, Position
from execution.oms import OrderIntent, OrderRejected, Precision, apply_precision, make_intent_id
from execution.order_states import OrderState
from execution.trail import trail_distance  # noqa: F401  (moved to the core; callers import it here)
from execution.orders import audit_order, audit_order_id, order_apply_venue, order_create_pending, order_place, order_send
from execution.selectors import balance_written
from market.models import Instrument
from tradingbot.compiled_reads import models_compiled, rows_compiled

logger = logging.getLogger(__name__)
WORKING = (OrderState.ACCEPTED, OrderState.PARTIALLY_FILLED)
LIMIT_TYPES = ("limit", "limit_maker")     # limit_maker: post-only (Binance GTX), what the chase sends
PriceOf = Callable[[Instrument], "Decimal | None"]
LiquidationOf = Callable[[Position], "Liquidation | None"]


def precision_of(instrument: Instrument) -> Precision:
    """Return the venue filters stored for `instrument`."""
    return Precision(instrument.tick_size, instrument.step_size, instrument.min_notional)


def entry_intent_id(decision: Decision, account: Account) -> str:
    """Return the intent id every entry order of `decision` on `account` shares."""
    return make_intent_id(account.name, decision.instrument_id, decision.timeframe, decision.as_of.isoformat())


def _side(decision: Decision) -> str:
    return "buy" if decision.action == "LONG" else "sell"


def chase_policy(config: TradingConfig) -> ChasePolicy:
    """Return the chase limits configured in the admin."""
    return ChasePolicy(config.entry_chase_interval_seconds, config.entry_chase_max_reprices,
                       config.entry_chase_max_drift_bps, config.entry_market_fallback)


def entry_submit(*, decision: Decision, account: Account, broker: Broker, now: datetime,
                 reference_price: Decimal, order_type: str = "market", config: TradingConfig | None = None,
                 audit: AuditBatch | None = None) -> Order:
    """Persist and send the decision's first entry order; an existing one is returned, not re-sent.

    `order_type` "limit" rests a post-only limit ("limit_maker", Binance GTX) one tick on our side
    of `reference_price`. `config` is the caller's configuration of this cycle (read when not given).
    With `audit` (the paper venue's one-transaction entry) the order's records are queued there.
    """
    instrument, side = decision.instrument, _side(decision)
    limit = order_type in LIMIT_TYPES
    price = passive_price(side, reference_price, instrument.tick_size) if limit else None
    intent = OrderIntent(entry_intent_id(decision, account), "entry", instrument.symbol, side,
                         "limit_maker" if limit else order_type, decision.quantity, price=price)
    intent = apply_precision(intent, precision_of(instrument), reference_price)
    order, created = order_create_pending(account=account, instrument=instrument, intent=intent,
                                          decision=decision, now=now, config=config, audit=audit)
    if not created:
        logger.info("intent %s already sent; not sending again", intent.client_order_id)
        return order
    # Created inside a transaction (the paper entry's): uncommitted, so no fill of it can be booked yet.
    return order_send(order=order, broker=broker, reference_price=reference_price, now=now, audit=audit,
                      created_here=transaction.get_connection().in_atomic_block)


def entry_orders(decision: Decision, account: Account):
    """Return the decision's entry orders on `account`, oldest first."""
    return Order.objects.filter(decision=decision, account=account, leg__startswith="entry").order_by("created_at", "pk")


def entry_working(decision: Decision, account: Account) -> bool:
    """Return whether an entry order of the decision still rests (or awaits its outcome) at the venue."""
    live = WORKING + (OrderState.SUBMITTED, OrderState.UNKNOWN)
    return entry_orders(decision, account).filter(status__in=live).exists()


def _entry_fills(decision: Decision, account: Account):
    return Fill.objects.filter(order__decision=decision, order__account=account, order__leg__startswith="entry")


def _entry_orders_filled(decision: Decision, account: Account) -> tuple[str | None, list[tuple], set[int]]:
    """Return (the client id of the decision's last entry order, (quantity, price, fee) of each entry fill,
    the ids of its entry orders not yet marked with a position).

    One read of the orders with their fills joined (an order without fills gives one empty row);
    the fills come newest first, as Fill orders them. Compiled once (tradingbot.compiled_reads):
    every entry reads it.
    """
    rows = rows_compiled("entry orders with fills", Order, _entry_orders_filled_read, decision_id=decision.pk,
                         account_id=account.pk)
    fills = sorted(((ts, q, p, f) for *_, ts, q, p, f in rows if ts is not None), key=lambda r: r[0], reverse=True)
    unmarked = {pk for pk, position_id, *_ in rows if position_id is None}
    return (rows[-1][2] if rows else None), [(q, p, f) for _, q, p, f in fills], unmarked


def _exit_fees(position: Position) -> Decimal:
    fees = Fill.objects.filter(order__account=position.account_id, order__instrument=position.instrument_id,
                               order__reduce_only=True, ts__gte=position.opened_at).aggregate(f=Sum("fee_usdt"))
    return fees["f"] or Decimal(0)


def _levels(decision: Decision, trail_atr_multiple: Decimal | None) -> dict:
    targets = decision.take_profits or [{"price": str(decision.target_price), "share": "1"}]
    return {"decision": decision, "stop_price": decision.stop_price, "target_price": decision.target_price,
            "take_profits": [{**t, "filled": False} for t in targets],
            "trail_distance": trail_distance(decision, trail_atr_multiple)}


def _entry_orders_filled_read(*, decision_id: int, account_id: int):
    return (Order.objects.filter(decision_id=decision_id, account_id=account_id, leg__startswith="entry")
            .order_by("created_at", "pk")
            .values_list("pk", "position_id", "client_order_id", "fills__ts", "fills__quantity", "fills__price",
                         "fills__fee_usdt"))


def _position_locked(decision: Decision, account: Account) -> tuple[Position | None, Position | None]:
    """Lock and return (the decision's position, a position reconciliation adopted for it), each or None.

    One locking read for both: the adopted one is an open position of the instrument and side
    without a decision, opened since the decision's first entry order. Compiled once
    (tradingbot.compiled_reads): building it cost more than running it, on every entry.
    """
    positions = models_compiled("entry position locked", Position, _position_locked_read, decision_id=decision.pk,
                                account_id=account.pk, instrument_id=decision.instrument_id, side=decision.action)
    own = next((p for p in positions if p.decision_id == decision.pk), None)
    adopted = next((p for p in positions if p.decision_id is None), None)
    return own, adopted


def _position_locked_read(*, decision_id: int, account_id: int, instrument_id: int, side: str):
    first_entry = (Order.objects.filter(decision_id=decision_id, account_id=account_id, leg__startswith="entry")
                   .order_by("created_at", "pk").values("created_at")[:1])
    adoptable = Q(instrument_id=instrument_id, status=Position.Status.OPEN, decision__isnull=True,
                  side=side, opened_at__gte=Subquery(first_entry))
    return (Position.objects.select_for_update().filter(Q(decision_id=decision_id) | adoptable, account_id=account_id)
            .order_by("pk"))


def _open(decision: Decision, account: Account, adopted: Position | None, quantity: Decimal, price: Decimal,
          fee: Decimal, now: datetime, trail_atr_multiple: Decimal | None,
          liquidation_of: LiquidationOf | None) -> Position:
    instrument = decision.instrument
    if adopted is not None:
        # Reconciliation found the venue's position first and adopted it with an emergency stop; it is
        # this decision's trade: take over its planned stop and targets (the protection round replaces the stop).
        for field, value in _levels(decision, trail_atr_multiple).items():
            setattr(adopted, field, value)
        if liquidation_of is not None:
            _liquidation_set(adopted, liquidation_of)
        adopted.save()
        logger.info("position %s adopted by reconciliation is decision %s's entry", adopted.pk, decision.pk)
        return adopted
    position = Position(
        account=account, instrument=instrument, side=decision.action, open_key=instrument.pk,
        quantity=quantity, initial_quantity=quantity, entry_price=price, opened_at=now, fees_usdt=fee,
        realized_pnl_usdt=-fee, **_levels(decision, trail_atr_multiple))
    if liquidation_of is not None:
        _liquidation_set(position, liquidation_of)
    position.save(force_insert=True)
    # F(): another cycle may have booked a close since `account` was read.
    Account.objects.filter(pk=account.pk).update(balance_usdt=F("balance_usdt") - fee)
    balance_written(account.pk)
    return position


def _liquidation_set(position: Position, liquidation_of: LiquidationOf) -> None:
    liquidation = liquidation_of(position)
    position.liquidation_price, position.margin_usdt = (liquidation.price, liquidation.margin_usdt) if liquidation \
        else (None, None)


def _grow(position: Position, quantity: Decimal, price: Decimal, fee: Decimal,
          liquidation_of: LiquidationOf | None) -> bool:
    if position.status != Position.Status.OPEN or quantity <= (position.initial_quantity or position.quantity):
        return False
    added = quantity - (position.initial_quantity or position.quantity)
    fee_added = fee - (position.fees_usdt - _exit_fees(position))
    position.quantity += added
    position.initial_quantity, position.entry_price = quantity, price
    position.fees_usdt += fee_added
    position.realized_pnl_usdt -= fee_added
    if liquidation_of is not None:
        _liquidation_set(position, liquidation_of)
    position.save()
    Account.objects.filter(pk=position.account_id).update(balance_usdt=F("balance_usdt") - fee_added)
    balance_written(position.account_id)
    return True


def entry_position_sync(*, decision: Decision, account: Account, now: datetime,
                        trail_atr_multiple: Decimal | None = None,
                        liquidation_of: LiquidationOf | None = None,
                        audit: AuditBatch | None = None) -> tuple[Position | None, str]:
    """Open or grow the decision's position to what its entry orders filled; return it and what changed.

    The change is "opened", "grown" or "" (nothing to do). Entry fees are booked on the position.
    `liquidation_of(position)` gives an opened or grown position its liquidation price and isolated
    margin (paper) in the same write. With `audit` the position's record is queued there.
    """
    last_entry, fills, unmarked = _entry_orders_filled(decision, account)
    quantity = sum((q for q, _, _ in fills), Decimal(0))
    if quantity <= 0:
        return None, ""
    price = sum((q * p for q, p, _ in fills), Decimal(0)) / quantity
    fee = sum((f for _, _, f in fills), Decimal(0))
    from execution.services import position_payload  # services imports this module
    try:
        with transaction.atomic():
            position, adopted = _position_locked(decision, account)
            if position is None:
                position, change = _open(decision, account, adopted, quantity, price, fee, now, trail_atr_multiple,
                                         liquidation_of), "opened"
            else:
                change = "grown" if _grow(position, quantity, price, fee, liquidation_of) else ""
            if unmarked:
                # The marker entries_to_sync reads: with it a closed trade's orders drop out of the per-cycle
                # read. A fill that came after the close is marked too: a closed trade is never booked again.
                Order.objects.filter(pk__in=unmarked, position__isnull=True).update(position=position)
            if change:
                audit_order_id(last_entry, now, {"action": f"position_{change}", "position": position.pk,
                                                 "quantity": position.quantity, "entry_price": position.entry_price},
                               audit)
                broadcast_on_commit("position", position_payload(position))
    except IntegrityError:
        # Another open position on the instrument (one per account and instrument): not this decision's.
        logger.warning("decision %s filled %s but %s already has an open position", decision.pk, quantity,
                       decision.instrument)
        return None, ""
    return position, change


def _cancel(order: Order, broker: Broker, now: datetime) -> Order:
    if order.status == OrderState.REJECTED:     # a refused re-price never rested: nothing to cancel
        return order
    try:
        venue = broker.cancel(order.client_order_id, order.instrument.exchange_symbol)
    except OrderNotFound:  # gone already: a fill or expiry the books will learn from the venue
        venue = broker.fetch_order(order.client_order_id, order.instrument.exchange_symbol)
    return order_apply_venue(order=order, venue=venue, broker=broker, now=now)


def _remaining(decision: Decision, account: Account) -> Decimal:
    first = entry_orders(decision, account).first()
    filled = _entry_fills(decision, account).aggregate(q=Sum("quantity"))["q"] or Decimal(0)
    return (first.quantity if first is not None else decision.quantity) - filled


def _chase_state(order: Order, decision: Decision, first: Order, reprices: int, market: Decimal,
                 now: datetime) -> ChaseState:
    return ChaseState(order.side, decision.entry_price, decision.entry_zone_low, decision.entry_zone_high,
                      order.price, reprices, (now - order.created_at).total_seconds(),
                      (now - first.created_at).total_seconds(), market, decision.instrument.tick_size)


def entry_chase(*, order: Order, broker: Broker, now: datetime, market_price: Decimal,
                policy: ChasePolicy) -> str:
    """Take one chase step for a working limit entry; return what was done (for the loop's report)."""
    decision, account = order.decision, order.account
    orders = list(entry_orders(decision, account))
    reprices = sum(1 for o in orders if o.type in LIMIT_TYPES) - 1
    step = chase_step(_chase_state(order, decision, orders[0], reprices, market_price, now), policy)
    if step.action == "wait":
        return "wait"
    order = _cancel(order, broker, now)
    remaining = _remaining(decision, account)
    note = step.reason
    if remaining > 0 and step.action in ("reprice", "market"):
        leg = chase_leg(reprices + 1) if step.action == "reprice" else FALLBACK_LEG
        intent = OrderIntent(order.intent_id, leg, order.instrument.symbol, order.side,
                             "limit_maker" if step.action == "reprice" else "market", remaining, price=step.price)
        try:
            intent = apply_precision(intent, precision_of(order.instrument), market_price)
            placed, _ = order_place(account=account, instrument=order.instrument, intent=intent, broker=broker,
                                    reference_price=market_price, now=now, decision=decision)
            note = f"{note}: {placed.client_order_id} {placed.status}"
        except OrderRejected as exc:  # the rest is below the venue's minimum, or refused: keep what filled
            note = f"{note}; rest of {remaining} not sent: {exc}"
    elif remaining > 0:
        note = f"{note}; gave up the rest of {remaining}"
    with transaction.atomic():
        audit_order(order, now, {"action": f"chase_{step.action}", "remaining": remaining, "reason": note[:200]})
    logger.info("entry %s: %s", order.client_order_id, note)
    return step.action


def entries_work(*, account: Account, broker: Broker, now: datetime, price_of: PriceOf,
                 config: TradingConfig, instrument: Instrument | None = None) -> dict[str, str]:
    """Chase every working limit entry of `account` (in `instrument` when given); return {client id: step taken}."""
    done = {}
    working = Order.objects.filter(account=account, leg__startswith="entry", type__in=LIMIT_TYPES, status__in=WORKING,
                                   decision__isnull=False).select_related("decision", "instrument")
    if instrument is not None:
        working = working.filter(instrument=instrument)
    for order in [*working, *_refused_reprices(account, now, config)]:
        position = Position.objects.filter(decision=order.decision, account=account).first()
        if position is not None and position.status == Position.Status.CLOSED:
            done[order.client_order_id] = "cancel: position closed"   # never add to a trade that ended
            _cancel(order, broker, now)
            continue
        market = price_of(order.instrument)
        if market is None:
            done[order.client_order_id] = "no price"
            continue
        try:
            done[order.client_order_id] = entry_chase(order=order, broker=broker, now=now, market_price=market,
                                                      policy=chase_policy(config))
        except BrokerError as exc:
            done[order.client_order_id] = f"error: {exc}"
            logger.warning("chase of %s: %s", order.client_order_id, exc)
    return done


def reprice_horizon_s(config: TradingConfig) -> float:
    """Return how long after a refused re-price the chase may still take it up (seconds)."""
    policy = chase_policy(config)
    return policy.interval_s * (policy.max_reprices + 2)


def _refused_reprices(account: Account, now: datetime, config: TradingConfig) -> list[Order]:
    """Return re-prices the venue refused (post-only would cross) that nothing replaced, within the chase budget."""
    horizon_s = reprice_horizon_s(config)
    out = []
    refused = Order.objects.filter(account=account, leg__startswith="entry", type__in=LIMIT_TYPES,
                                   status=OrderState.REJECTED, decision__isnull=False,
                                   created_at__gte=now - timedelta(seconds=horizon_s)).exclude(leg="entry")
    for order in refused.select_related("decision", "instrument"):
        orders = list(entry_orders(order.decision, account))
        if (orders[-1].pk == order.pk and (now - orders[0].created_at).total_seconds() < horizon_s
                and _remaining(order.decision, account) > 0):
            out.append(order)
    return out


def entries_to_sync(account: Account) -> list[Decision]:
    """Return the decisions whose entry fills the books' position does not reflect yet, by id.

    One query when there is none (every engine cycle, per instrument), two otherwise. A decision
    counts when its entry orders filled and it has no position, or its position (the first by
    id) is open and booked less than they filled; a decision with a closed position never does.
    """
    filled: dict[int, Decimal] = {}
    positions: dict[int, tuple] = {}
    for decision_id, quantity, status, booked in rows_compiled("entries to sync", Order, _filled_entries_read,
                                                               account_id=account.pk):
        filled[decision_id] = filled.get(decision_id, Decimal(0)) + quantity
        positions[decision_id] = (status, booked)
    due = [pk for pk, quantity in filled.items()
           if positions[pk][0] is None or (positions[pk][0] == Position.Status.OPEN and quantity > positions[pk][1])]
    if not due:
        return []
    return list(Decision.objects.select_related("instrument", "snapshot").filter(pk__in=due).order_by("pk"))


def _filled_entries_read(*, account_id: int):
    """(decision, filled quantity, its position's status and booked entry quantity) per filled entry order
    that is unmarked or marked with an open position, of a decision without a closed position.

    Read every engine cycle, compiled once (tradingbot.compiled_reads). Two parts, each an index
    range on (position, account, leg, filled_quantity): the unmarked orders (position NULL: not
    booked yet, or written before the marker) and the orders of the account's open positions. A
    closed trade's orders are marked with its position, so a year of them costs nothing here.
    """
    positions = Position.objects.filter(account_id=account_id, decision=OuterRef("decision"))
    first = positions.order_by("pk")
    booked = Coalesce(NullIf("initial_quantity", Decimal(0)), "quantity")
    # startswith is LIKE BINARY on MariaDB, which no index in the column's collation serves; the range
    # around it (legs are lower case) is what lets the unmarked part read only the unmarked entries.
    filled = Order.objects.filter(account_id=account_id, leg__gte="entry", leg__lt="entrz", leg__startswith="entry",
                                  decision__isnull=False, filled_quantity__gt=0)

    def part(orders):
        # A scalar subquery, not Exists: MariaDB turns a NOT EXISTS into a materialized scan of every
        # closed position of the account; this stays a lookup per order on the position's decision index.
        closed = Subquery(positions.filter(status=Position.Status.CLOSED).order_by().values("pk")[:1])
        # The decision's first position in the same read: one query a cycle, not one per trade.
        return (orders.annotate(closed=closed).filter(closed__isnull=True)
                .annotate(position_status=Subquery(first.values("status")[:1]),
                          position_quantity=Subquery(first.values(q=booked)[:1]))
                .values_list("decision", "filled_quantity", "position_status", "position_quantity")
                .order_by())

    unmarked = part(filled.filter(position__isnull=True))
    open_ = part(filled.filter(position__account_id=account_id, position__status=Position.Status.OPEN))
    return unmarked.union(open_, all=True)
