"""The order manager's writes: persist before sending, send once, resolve unknown outcomes by query.

Every order reaches a venue through `order_send` after `order_create_pending` has committed it:
if the process dies mid-call, the row (and its deterministic client id) is there for
reconciliation to ask the venue about. A send whose outcome is unknown (timeout, -1007) is never
repeated blindly: `order_resolve` queries by client id, counts not-found answers seconds apart,
resends once with the same id only when the venue never acknowledged it, and otherwise declares
the order lost and keeps watching it. State changes follow `execution.order_states`; an illegal
one is logged and refused, and the next reconciliation repairs the books.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Q

from analytics.services import ms_to_datetime
from dashboard.events import broadcast_on_commit
from decisions.audit_services import ENGINE, AuditBatch, audit_append
from decisions.models import AuditRecord, Decision, TradingConfig
from decisions.selectors import trading_config_get
from execution.brokers.base import (Broker, DuplicateClientId, ExecutionReport, FillReport, OrderNotFound,
                                    UnknownOutcome, VenueOrder)
from execution.crashpoints import crash_point
from execution.models import Account, Fill, Order
from execution.oms import OrderIntent, OrderRejected
from execution.order_states import (IllegalTransition, OrderState, OutcomeQueries, UnknownOutcomeAction,
                                    UnknownOutcomePolicy, transition)
from market.models import Instrument

logger = logging.getLogger(__name__)
POLICY = UnknownOutcomePolicy()
QUERY_GAP = timedelta(milliseconds=POLICY.min_gap_ms)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def audit_order(order: Order, now: datetime, body: dict, batch: AuditBatch | None = None) -> None:
    """Append one order action to the audit chain (inside the caller's transaction), or queue it in `batch`."""
    audit_order_id(order.client_order_id, now, body, batch)


def audit_order_id(client_order_id: str, now: datetime, body: dict, batch: AuditBatch | None = None) -> None:
    """Append (or queue in `batch`) one action of the order with `client_order_id` to the audit chain."""
    subject = f"order:{client_order_id}"
    if batch is not None:
        batch.add(kind=AuditRecord.Kind.ORDER, actor=ENGINE, subject=subject, body=body, now=now)
    else:
        audit_append(kind=AuditRecord.Kind.ORDER, actor=ENGINE, subject=subject, body=body, now=now)


def order_payload(order: Order) -> dict:
    """Return the JSON shape the dashboard shows for an order."""
    return {"client_order_id": order.client_order_id, "leg": order.leg, "side": order.side,
            "type": order.type, "quantity": order.quantity, "status": order.status,
            "average_price": order.average_price, "instrument": str(order.instrument)}


def fill_payload(fill: Fill, order: Order) -> dict:
    """Return the JSON shape the dashboard shows for one fill of `order`."""
    return {"client_order_id": order.client_order_id, "trade_id": fill.trade_id, "leg": order.leg,
            "side": order.side, "instrument": str(order.instrument), "price": fill.price,
            "quantity": fill.quantity, "fee_usdt": fill.fee_usdt, "liquidity": fill.liquidity, "ts": fill.ts}


def intent_of(order: Order) -> OrderIntent:
    """Return the intent a stored order was created from (for a resend with the same client id)."""
    return OrderIntent(order.intent_id, order.leg, order.instrument.symbol, order.side, order.type, order.quantity,
                       order.price, order.trigger_price, order.reduce_only)


def order_create_pending(*, account: Account, instrument: Instrument, intent: OrderIntent,
                         decision: Decision | None, now: datetime, config: TradingConfig | None = None,
                         decision_id: int | None = None, audit: AuditBatch | None = None) -> tuple[Order, bool]:
    """Persist the order before it is sent; return (order, created). A known intent is not re-sent.

    `config` is the caller's configuration of this cycle (read here when not given); `decision_id`
    stands for `decision` when the caller holds only the id. With `audit`, the "created" record is
    queued there (the caller's transaction appends it) instead of appended at once.
    """
    linked = {"decision": decision} if decision is not None else {"decision_id": decision_id}
    decision_id = decision.pk if decision is not None else decision_id
    version = (config or trading_config_get()).version
    try:
        with transaction.atomic():
            order = Order.objects.create(
                account=account, instrument=instrument, **linked,
                client_order_id=intent.client_order_id, intent_id=intent.intent_id, leg=intent.leg,
                side=intent.side, type=intent.type, quantity=intent.quantity, price=intent.price,
                trigger_price=intent.trigger_price, reduce_only=intent.reduce_only,
                conditional=intent.type not in ("market", "limit", "limit_maker"),
                status=Order.Status.SUBMITTED, created_at=now, updated_at=now,
                config_version=version,
            )
            audit_order(order, now, {"action": "created", "decision": decision_id,
                                     "intent_id": intent.intent_id, "leg": intent.leg, "side": intent.side,
                                     "type": intent.type, "quantity": intent.quantity, "price": intent.price,
                                     "trigger_price": intent.trigger_price, "reduce_only": intent.reduce_only,
                                     "config_version": order.config_version}, audit)
        return order, True
    except IntegrityError:  # the unique client id: another worker (or an earlier run) has it
        return Order.objects.get(client_order_id=intent.client_order_id), False


def _move(order: Order, target: str, now: datetime, audit: AuditBatch | None = None) -> bool:
    """Move `order` to `target` if the state machine allows; log and keep the old state if not."""
    try:
        order.status = transition(order.status, target).value
    except IllegalTransition as exc:
        logger.warning("order %s: %s; kept %s", order.client_order_id, exc, order.status)
        audit_order(order, now, {"action": "illegal_transition", "from": order.status, "to": target}, audit)
        return False
    return True


def _fill_row(order: Order, fill: FillReport) -> Fill:
    return Fill(order=order, trade_id=fill.trade_id, ts=ms_to_datetime(fill.ts_ms), price=fill.price,
                quantity=fill.quantity, fee_usdt=fill.fee_usdt, liquidity=fill.liquidity)


def _fills_insert(order: Order, fills: tuple[FillReport, ...] | list[FillReport],
                  created_here: bool = False) -> list[Fill] | None:
    """Insert every fill in one statement and return the rows; None when one of them was booked already.

    `created_here`: the order row was inserted by the caller's open transaction, so no other
    transaction can have booked a fill of it (none sees the row yet): no savepoint (two round trips).
    """
    rows = [_fill_row(order, fill) for fill in fills]
    if created_here:
        Fill.objects.bulk_create(rows)
        return rows
    try:
        with transaction.atomic():      # a savepoint: a conflict must not break the caller's transaction
            Fill.objects.bulk_create(rows)
    except IntegrityError:              # the unique (order, trade id): someone booked one of them first
        return None
    return rows


def _fills_insert_each(order: Order, fills: tuple[FillReport, ...] | list[FillReport]) -> list[Fill]:
    """Insert the fills not booked yet, one by one (by order and trade id); return the rows added."""
    added = []
    for fill in fills:
        row, created = Fill.objects.get_or_create(order=order, trade_id=fill.trade_id, defaults={
            "ts": ms_to_datetime(fill.ts_ms), "price": fill.price, "quantity": fill.quantity,
            "fee_usdt": fill.fee_usdt, "liquidity": fill.liquidity})
        if created:
            added.append(row)
    return added


def _book_fills(order: Order, fills: tuple[FillReport, ...] | list[FillReport],
                created_here: bool = False) -> list[str]:
    """Store fills not booked yet (by order and trade id); return the trade ids added.

    An order with nothing filled in the books (a fresh one) gets its fills in one insert; should
    one exist after all, or the order has fills, each is looked up first. The order's filled
    quantity and average price then come from one read of all its fills, unless the rows just
    written fill the whole order (a market order's usual answer).
    """
    added, fresh = None, fills and not order.filled_quantity
    if fresh:
        added = _fills_insert(order, fills, created_here)
    if added is None:
        added = _fills_insert_each(order, fills)
    for row in added:
        broadcast_on_commit("fill", fill_payload(row, order))
        crash_point("fill.booked", order.leg)
    if fresh and len(added) == len(fills) and sum(row.quantity for row in added) == order.quantity:
        # Every fill went in and they fill the whole order: no venue fills an order beyond its
        # quantity, so no other fill of it can exist and these rows are all of them.
        booked = [(row.quantity, row.price) for row in added]
    else:
        booked = list(order.fills.values_list("quantity", "price"))
    filled = sum((quantity for quantity, _ in booked), Decimal(0))
    if filled:
        notional = sum((quantity * price for quantity, price in booked), Decimal(0))
        order.filled_quantity, order.average_price = filled, notional / filled
    return [row.trade_id for row in added]


# What order_apply_report sets on an order (its fills set the filled quantity and average price).
REPORT_FIELDS = ("exchange_order_id", "updated_at", "filled_quantity", "average_price", "status", "reject_reason",
                 "acknowledged")


def order_apply_report(*, order: Order, report: ExecutionReport, now: datetime,
                       audit: AuditBatch | None = None, created_here: bool = False) -> Order:
    """Record the venue's answer to a send: state, fills (each once) and average price.

    With `audit`, its records are queued there for the caller's transaction to append. Inside a
    caller's transaction it takes no savepoint (two round trips an order): a failure here undoes
    the caller's work too, as the entry's and the exit's single transactions need anyway.
    `created_here`: the caller's open transaction inserted the order (see `_fills_insert`).
    """
    with transaction.atomic(savepoint=False):
        order.exchange_order_id = report.exchange_order_id or order.exchange_order_id
        order.updated_at = now
        added = _book_fills(order, report.fills, created_here)
        target = report.status
        if report.fills and target not in ("filled", "partially_filled"):
            target = "filled" if order.filled_quantity >= order.quantity else "partially_filled"
        if target == "rejected":
            order.reject_reason = report.reason[:255]
        _move(order, target, now, audit)
        order.acknowledged = order.acknowledged or order.status not in ("submitted", "unknown", "rejected")
        # An order this transaction created holds its inserted values but for what a report sets: only
        # those are written (a whole-row UPDATE cost about twice as much, on every paper entry and exit).
        order.save(update_fields=REPORT_FIELDS if created_here else None)
        audit_order(order, now, {"action": "report", "status": order.status,
                                 "exchange_order_id": order.exchange_order_id,
                                 "filled_quantity": order.filled_quantity, "average_price": order.average_price,
                                 "reject_reason": order.reject_reason, "trade_ids": added}, audit)
        broadcast_on_commit("order", order_payload(order))
        crash_point("order.saved", order.leg)
    return order


def order_apply_venue(*, order: Order, venue: VenueOrder, broker: Broker, now: datetime) -> Order:
    """Bring a stored order up to the venue's view of it; fetch and book the trades the books miss."""
    # A finished conditional order may report no executed quantity of its own: the fills belong to
    # the order its trigger created. Filled means the whole quantity.
    venue_filled = venue.quantity if venue.status == OrderState.FILLED and not venue.filled else venue.filled
    if venue_filled > order.filled_quantity:
        since = _ms(order.created_at) - 60_000
        trades = [t for t in broker.trades(order.instrument.exchange_symbol, since)
                  if t.client_order_id == order.client_order_id
                  or (venue.exchange_order_id and t.exchange_order_id == venue.exchange_order_id)]
        report = ExecutionReport(order.client_order_id, venue.status, tuple(trades), venue.exchange_order_id)
    else:
        report = ExecutionReport(order.client_order_id, venue.status, (), venue.exchange_order_id)
    order.misses = 0
    order.last_checked_at = now
    return order_apply_report(order=order, report=report, now=now)


def order_send(*, order: Order, broker: Broker, reference_price: Decimal, now: datetime,
               audit: AuditBatch | None = None, created_here: bool = False) -> Order:
    """Send a committed order once; an unknown outcome becomes a query, never a blind resend.

    With `audit` (the paper venue's one-transaction entry, `execution.services.position_open`), the
    report's records are queued there. An unknown outcome is a venue's answer only: its query path
    appends its records at once, so it refuses a batch rather than put the chain out of order.
    """
    intent = intent_of(order)
    crash_point("order.committed", order.leg)
    try:
        report = broker.submit(intent, reference_price=reference_price, ts_ms=_ms(now),
                               tick_size=order.instrument.tick_size)
    except (UnknownOutcome, DuplicateClientId) as exc:
        if audit is not None:
            raise transaction.TransactionManagementError(
                f"order {order.client_order_id}: an unknown outcome cannot be resolved inside a batched entry") from exc
        with transaction.atomic():
            if isinstance(exc, DuplicateClientId):
                order.acknowledged = True  # -4116: it exists at the venue
            _move(order, OrderState.UNKNOWN, now)
            order.updated_at = now
            order.save()
            audit_order(order, now, {"action": "unknown_outcome", "error": str(exc)[:200]})
        return order_resolve(order=order, broker=broker, now=now, force=True)
    except OrderRejected as exc:
        report = ExecutionReport(order.client_order_id, "rejected", reason=str(exc))
        order_apply_report(order=order, report=report, now=now, audit=audit)
        raise
    crash_point("order.replied", order.leg)
    return order_apply_report(order=order, report=report, now=now, audit=audit, created_here=created_here)


def order_resolve(*, order: Order, broker: Broker, now: datetime, force: bool = False) -> Order:
    """Query an order of unknown outcome (or lost) by client id and act on the answer.

    Not-found answers count only when at least two seconds apart (`force` queries at once but
    counts the same way). Three misses: resend once with the same client id if the venue never
    acknowledged the order, else declare it lost; a lost order is still queried later.
    """
    if not force and order.last_checked_at is not None and now - order.last_checked_at < QUERY_GAP:
        return order
    try:
        venue = broker.fetch_order(order.client_order_id, order.instrument.exchange_symbol,
                                   conditional=order.conditional)
    except OrderNotFound:
        return _missed(order=order, broker=broker, now=now)
    return order_apply_venue(order=order, venue=venue, broker=broker, now=now)


def _queries(order: Order, now: datetime) -> OutcomeQueries:
    # The misses were counted QUERY_GAP apart (order_resolve waits that long), so their times are spaced.
    gap = POLICY.min_gap_ms
    times = tuple(_ms(now) - gap * k for k in range(order.misses - 1, -1, -1))
    return OutcomeQueries(acknowledged=order.acknowledged, miss_times_ms=times,
                          resent_at_ms=_ms(order.resent_at) if order.resent_at else None)


def _missed(*, order: Order, broker: Broker, now: datetime) -> Order:
    spaced = order.last_checked_at is None or now - order.last_checked_at >= QUERY_GAP or order.misses == 0
    with transaction.atomic():
        if spaced:
            order.misses += 1
        order.last_checked_at = now
        action = POLICY.next_action(_queries(order, now))
        if action == UnknownOutcomeAction.DECLARE_LOST and order.status != OrderState.LOST:
            _move(order, OrderState.LOST, now)
            audit_order(order, now, {"action": "lost", "misses": order.misses})
        order.save()
    if action == UnknownOutcomeAction.RESEND_SAME_ID:
        return _resend(order=order, broker=broker, now=now)
    return order


def _resend(*, order: Order, broker: Broker, now: datetime) -> Order:
    """Send the never-acknowledged order again with the same client id (the venue refuses a second copy)."""
    with transaction.atomic():
        order.resent_at, order.misses = now, 0
        _move(order, OrderState.SUBMITTED, now)
        order.save()
        audit_order(order, now, {"action": "resend_same_id"})
    try:
        return order_send(order=order, broker=broker,
                          reference_price=order.price or order.trigger_price or Decimal(0), now=now)
    except OrderRejected:   # recorded on the order by order_send; the caller goes on with the next one
        order.refresh_from_db()
        return order


SUBMIT_STALE = timedelta(seconds=5)


def orders_unresolved(*, account: Account, now: datetime | None = None) -> list[Order]:
    """Return the account's orders whose venue state the books do not know.

    Unknown and lost orders, and (given `now`) orders still `submitted` 5 s after they were last
    touched: a process that died between committing an order and sending it, or before reading
    the reply, leaves them so. Querying them resolves both cases (found: its state; not found three
    times: the one resend with the same client id).
    """
    stuck = Q(status__in=[OrderState.UNKNOWN, OrderState.LOST])
    if now is not None:
        stuck |= Q(status=OrderState.SUBMITTED, updated_at__lte=now - SUBMIT_STALE)
    return list(Order.objects.filter(stuck, account=account).select_related("instrument").order_by("created_at"))


def order_place(*, account: Account, instrument: Instrument, intent: OrderIntent, broker: Broker,
                reference_price: Decimal, now: datetime, decision: Decision | None = None) -> tuple[Order, bool]:
    """Persist and send `intent` unless an order for it exists; return (order, sent by this call).

    Safe to call any number of times, from any number of workers, with the same intent: the unique
    client id lets exactly one caller create the row, and only that caller sends.
    """
    order, created = order_create_pending(account=account, instrument=instrument, intent=intent,
                                          decision=decision, now=now)
    if not created:
        return order, False
    return order_send(order=order, broker=broker, reference_price=reference_price, now=now), True
