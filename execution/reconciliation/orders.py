"""Reconciliation actions on orders and fills: book, update, adopt, cancel, resolve."""
from __future__ import annotations

import logging
from decimal import Decimal

from django.db import IntegrityError, transaction

from decisions.audit_services import ENGINE, audit_append
from decisions.models import AuditRecord
from decisions.selectors import trading_config_get
from execution.brokers.base import BrokerError, ExecutionReport, FillReport, VenueOrder
from execution.models import Account, Order
from execution.oms import is_ours, make_intent_id
from execution.order_states import IllegalTransition, OrderState, transition
from execution.orders import audit_order, order_apply_report, order_apply_venue, order_resolve
from execution.reconcile import Action
from execution.reconciliation.context import Context, Outcome

logger = logging.getLogger(__name__)
EXTERNAL_LEG = "external"


def archived_client_id(fill: FillReport) -> str:
    """Return the client id stored for a fill whose order the venue no longer names (archived)."""
    return f"x-{fill.exchange_order_id or fill.trade_id}"[:36]


def _fetch(ctx: Context, client_order_id: str, symbol: str) -> VenueOrder | None:
    # A finished order shows only in the trades; ask for it by id, as a normal order and then as an algo one.
    for conditional in (False, True):
        try:
            return ctx.broker.fetch_order(client_order_id, symbol, conditional=conditional)
        except BrokerError:
            continue
    return None


def _state(status: str | None) -> str:
    try:
        return OrderState(status).value
    except ValueError:
        return OrderState.UNKNOWN.value   # watched like an unknown send until the venue says more


def _traded_qty(ctx: Context, client_order_id: str, fill: FillReport | None) -> Decimal:
    # Fills of an archived order carry no client id: its venue order id ties them together.
    if fill is not None and not fill.client_order_id:
        key, value = "exchange_order_id", fill.exchange_order_id
        if not value:
            return fill.quantity
    else:
        key, value = "client_order_id", client_order_id
    return sum((f.quantity for batch in ctx.venue.fills for f in batch.fills if getattr(f, key) == value), Decimal(0))


def external_order_ensure(ctx: Context, symbol: str, client_order_id: str, *, listed: VenueOrder | None,
                          origin: str, fill: FillReport | None = None) -> Order:
    """Return the account's order with this client id, adopting it as external when the books lack it.

    Raises ValueError when another account holds the client id (ids are unique across accounts).
    """
    existing = Order.objects.filter(client_order_id=client_order_id).select_related("instrument").first()
    if existing is not None:
        if existing.account_id != ctx.account.pk:
            raise ValueError(f"client id {client_order_id} belongs to account {existing.account_id}")
        return existing
    fields = {"side": "", "type": "market", "quantity": _traded_qty(ctx, client_order_id, fill),
              "status": OrderState.FILLED.value}
    if listed is not None:
        fields = {"side": listed.side, "type": listed.type[:20], "quantity": listed.quantity, "price": listed.price,
                  "trigger_price": listed.trigger_price, "reduce_only": listed.reduce_only,
                  "conditional": listed.conditional, "exchange_order_id": listed.exchange_order_id,
                  "status": _state(listed.status)}
    try:
        with transaction.atomic():
            order = Order.objects.create(
                account=ctx.account, instrument=ctx.instrument(symbol), decision=None, external=True,
                client_order_id=client_order_id, intent_id=make_intent_id(EXTERNAL_LEG, client_order_id),
                # Acknowledged: the venue has it, so order_resolve declares it lost when it vanishes, never resends it.
                leg=EXTERNAL_LEG, acknowledged=True, last_checked_at=ctx.now, created_at=ctx.now,
                updated_at=ctx.now, config_version=trading_config_get().version, **fields)
            audit_order(order, ctx.now, {"action": "adopted", "origin": origin, "run": ctx.run.pk,
                                         "status": order.status, "side": order.side, "quantity": order.quantity})
    except IntegrityError:  # another run adopted it a moment ago
        return Order.objects.select_related("instrument").get(client_order_id=client_order_id)
    return order


def book_fill(ctx: Context, action: Action) -> Outcome:
    """Book one trade the books lack, to our order by client id or to the external order adopted for it."""
    fill = action.fill
    order = ctx.order(fill.client_order_id)
    if order is None and fill.exchange_order_id:
        # The venue denied the order when its trade was listed: it is ours all the same, by venue order id.
        order = (Order.objects.filter(account=ctx.account, exchange_order_id=fill.exchange_order_id)
                 .select_related("instrument").first())
    if order is None:
        client_id = fill.client_order_id or archived_client_id(fill)
        order = external_order_ensure(ctx, action.symbol, client_id, listed=ctx.venue_order(client_id),
                                      origin="trade", fill=fill)
    # The fill's unique (order, trade id) books it once even when two runs race.
    booked_before = order.fills.filter(trade_id=fill.trade_id).exists()
    report = ExecutionReport(order.client_order_id, order.status, (fill,), fill.exchange_order_id)
    order = order_apply_report(order=order, report=report, now=ctx.now)
    if booked_before:
        return Outcome("unchanged", f"trade {fill.trade_id} already booked to {order.client_order_id}", order)
    return Outcome("applied", f"trade {fill.trade_id} {fill.quantity}@{fill.price} booked to "
                              f"{order.client_order_id} ({order.status})", order)


def update_order_state(ctx: Context, action: Action) -> Outcome:
    """Move one of our orders to the venue's state through the state machine; an illegal move is only recorded."""
    order = ctx.order(action.client_order_id)
    if order is None:
        return Outcome("skipped", "order not in the books")
    before = order.status
    try:
        transition(order.status, action.state)
    except IllegalTransition as exc:
        return Outcome("refused", str(exc), order)
    if action.venue_order is not None:
        order = order_apply_venue(order=order, venue=action.venue_order, broker=ctx.broker, now=ctx.now)
    else:  # not listed, and its trades cover the whole quantity
        report = ExecutionReport(order.client_order_id, action.state.value)
        order = order_apply_report(order=order, report=report, now=ctx.now)
    status = "unchanged" if order.status == before else "applied"   # book_fill may have moved it already
    return Outcome(status, f"{before} -> {order.status}, filled {order.filled_quantity}", order)


def adopt_external_order(ctx: Context, action: Action) -> Outcome:
    """Record an order nobody here placed (manual, liquidation, ADL) as external, with the venue's details."""
    if not action.client_order_id:
        return Outcome("unchanged", "trades without a client id are booked to x-<venue order id> orders")
    existing = ctx.order(action.client_order_id)
    listed = action.venue_order or ctx.venue_order(action.client_order_id)
    if listed is None and (existing is None or not existing.side):
        listed = _fetch(ctx, action.client_order_id, action.symbol)
    order = external_order_ensure(ctx, action.symbol, action.client_order_id, listed=listed, origin=action.detail)
    if existing is not None and not existing.side and listed is not None:
        with transaction.atomic():   # adopted from its trades a moment ago: add what the venue says of it
            order.side, order.type, order.quantity = listed.side, listed.type[:20], listed.quantity
            order.price, order.trigger_price, order.reduce_only = listed.price, listed.trigger_price, listed.reduce_only
            order.conditional, order.exchange_order_id = listed.conditional, listed.exchange_order_id
            order.updated_at = ctx.now
            order.save()
    verb = "adopted" if existing is None else "completed"
    return Outcome("applied", f"{verb} order {order.pk} {order.side} {order.quantity} {order.status} "
                              f"({action.detail})", order)


def cancel_stray(ctx: Context, action: Action) -> Outcome:
    """Cancel one of our orders the venue should not hold (an exit on a flat symbol, a duplicate stop)."""
    if not is_ours(action.client_order_id):
        return Outcome("refused", "not our order: only tb- orders are cancelled")
    venue = ctx.broker.cancel(action.client_order_id, action.symbol, conditional=action.conditional)
    order = ctx.order(action.client_order_id)
    if order is not None:
        order = order_apply_venue(order=order, venue=venue, broker=ctx.broker, now=ctx.now)
    return Outcome("applied", f"cancel sent ({action.detail}): venue says {venue.status}", order)


def mark_lost(ctx: Context, action: Action) -> Outcome:
    """Query one of our live orders the venue did not list, by client id; misses count towards lost."""
    order = ctx.order(action.client_order_id)
    if order is None:
        return Outcome("skipped", "order not in the books")
    order = order_resolve(order=order, broker=ctx.broker, now=ctx.now)
    return Outcome("applied", f"{order.status}, misses {order.misses}", order)


def balance_mismatch(ctx: Context, action: Action) -> Outcome:
    """Take the venue's wallet as the books' balance (the venue is its source of truth), audited.

    Fees, realised PnL and funding of a venue account land in the venue's wallet first; the books
    follow it here, so the next run compares clean unless something else moved the wallet.
    """
    wallet = ctx.venue.balance.wallet_usdt
    with transaction.atomic():
        before = Account.objects.select_for_update().get(pk=ctx.account.pk).balance_usdt
        Account.objects.filter(pk=ctx.account.pk).update(balance_usdt=wallet)
        audit_append(kind=AuditRecord.Kind.ORDER, actor=ENGINE, subject=f"reconcile:{ctx.run.pk}", now=ctx.now,
                     body={"action": "wallet_sync", "from": before, "to": wallet})
    ctx.account.balance_usdt = wallet
    return Outcome("applied", f"books' balance {before} -> venue wallet {wallet} USDT ({action.quantity:+} USDT)")
