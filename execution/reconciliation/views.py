"""Load the two sides reconciliation compares: the venue (through the broker port) and the books."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Min, Q

from execution.brokers.base import Broker
from execution.models import Account, Fill, Order, Position, ReconciliationRun
from execution.order_states import LIVE_STATES, OrderState
from execution.reconcile import ExpectedExit, OurOrder, OurPosition, OurView, SymbolFills, VenueView
from market.models import DataSource, Instrument
from market.services import instrument_ensure

# Orders the venue may still be working on, as the books see them; lost ones are still watched.
WATCHED_STATES = tuple(sorted({*LIVE_STATES, OrderState.LOST}))
EXIT_LEGS = Q(leg="sl") | Q(leg__startswith="tp")
SINCE_OVERLAP = timedelta(minutes=10)       # trades since the last clean run, with a margin for clock skew
SINCE_DEFAULT = timedelta(hours=24)         # without a clean run
SINCE_ORDER_MARGIN = timedelta(minutes=1)
# Binance serves only the first 7 days of a longer userTrades window: start inside the last week.
SINCE_LIMIT = timedelta(days=7) - timedelta(minutes=1)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Scope:
    """What one run reads: the venue symbols of the books and where each symbol's trade history starts."""

    symbols: frozenset[str]
    since: datetime                        # the start for symbols without an older live order
    since_by_symbol: dict[str, datetime]

    def since_ms(self, symbol: str) -> int:
        """Return the start of `symbol`'s trade query in epoch ms."""
        return _ms(self.since_by_symbol.get(symbol, self.since))

    @property
    def earliest(self) -> datetime:
        return min([self.since, *self.since_by_symbol.values()])


def instruments_of(account: Account) -> dict[str, Instrument]:
    """Return the account's venue instruments by venue symbol (BTCUSDT)."""
    rows = Instrument.objects.filter(exchange=account.exchange_id, data_source=DataSource.EXCHANGE)
    return {i.exchange_symbol: i for i in rows.order_by("pk")}


def instrument_for(account: Account, symbol: str, known: dict[str, Instrument]) -> Instrument:
    """Return the instrument of venue symbol `symbol`, creating it for a symbol only the venue reports."""
    if symbol not in known:
        known[symbol] = instrument_ensure(exchange=account.exchange_id, exchange_symbol=symbol, market_type="swap")
    return known[symbol]


def scope_of(*, account: Account, now: datetime) -> Scope:
    """Return the symbols the books trade and the trade-history start of each."""
    last_clean = (ReconciliationRun.objects.filter(account=account, clean=True, error="")
                  .order_by("-started_at").first())
    since = last_clean.started_at - SINCE_OVERLAP if last_clean else now - SINCE_DEFAULT
    live = (Order.objects.filter(account=account, status__in=WATCHED_STATES)
            .order_by().values("instrument__exchange_symbol").annotate(oldest=Min("created_at")))
    floor = now - SINCE_LIMIT
    since_by_symbol = {row["instrument__exchange_symbol"]: max(floor, min(since, row["oldest"] - SINCE_ORDER_MARGIN))
                       for row in live}
    held = Position.objects.filter(account=account, status=Position.Status.OPEN)
    active = Instrument.objects.filter(exchange=account.exchange_id, data_source=DataSource.EXCHANGE, is_active=True)
    symbols = {*since_by_symbol, *held.values_list("instrument__exchange_symbol", flat=True),
               *active.values_list("exchange_symbol", flat=True)}
    return Scope(frozenset(symbols), max(floor, since), since_by_symbol)


def venue_view_load(*, broker: Broker, scope: Scope) -> VenueView:
    """Read open orders (normal and conditional), positions, balance and each symbol's trades from the venue.

    Trades are read for the books' symbols and every symbol the venue lists an order or position in.
    Raises the broker's errors: a view read in part is never reconciled.
    """
    orders = tuple(broker.open_orders())
    positions = tuple(broker.positions())
    balance = broker.balance()
    symbols = sorted({*scope.symbols, *(o.symbol for o in orders), *(p.symbol for p in positions)})
    fills = tuple(SymbolFills(symbol, scope.since_ms(symbol), tuple(broker.trades(symbol, scope.since_ms(symbol))))
                  for symbol in symbols)
    return VenueView(orders, positions, fills, balance)


def mentioned_client_ids(venue: VenueView) -> set[str]:
    """Return every client order id the venue view names (orders and trades)."""
    ids = {o.client_order_id for o in venue.orders}
    ids.update(f.client_order_id for batch in venue.fills for f in batch.fills)
    return ids - {""}


def our_view_load(*, account: Account, venue: VenueView, scope: Scope) -> OurView:
    """Return the books' side: watched orders plus those the venue names, booked trades, open positions, wallet."""
    rows = (Order.objects.filter(account=account)
            .filter(Q(status__in=WATCHED_STATES) | Q(client_order_id__in=mentioned_client_ids(venue)))
            .exclude(status=OrderState.NEW).select_related("instrument").order_by("created_at", "pk"))
    orders = tuple(OurOrder(o.client_order_id, o.instrument.exchange_symbol, o.leg, OrderState(o.status), o.quantity,
                            o.filled_quantity, o.conditional) for o in rows)
    # Trade ids are unique per symbol only: the books' trades are keyed by (symbol, trade id).
    booked = Fill.objects.filter(order__account=account, ts__gte=scope.earliest - timedelta(hours=1))
    positions = tuple(our_position(p) for p in Position.objects.filter(account=account, status=Position.Status.OPEN)
                      .select_related("instrument").order_by("pk"))
    return OurView(orders, frozenset(booked.values_list("order__instrument__exchange_symbol", "trade_id")), positions,
                   account.balance_usdt)


def position_exit_side(position: Position) -> str:
    """Return the side of the orders that close `position`."""
    return "sell" if position.side == "LONG" else "buy"


def position_exit_orders(position: Position):
    """Return the position's own stop and target orders (not external ones), oldest first."""
    rows = Order.objects.filter(account=position.account_id, instrument=position.instrument_id, external=False)
    # A position opened by a decision owns that decision's orders; one without (adopted) owns those placed since.
    rows = (rows.filter(decision=position.decision_id) if position.decision_id
            else rows.filter(decision__isnull=True, created_at__gte=position.opened_at))
    return rows.filter(EXIT_LEGS).order_by("created_at", "pk")


def our_position(position: Position) -> OurPosition:
    """Return the core's view of an open position and the exits that should work for it."""
    sign = Decimal(1) if position.side == "LONG" else Decimal(-1)
    # The newest order of each leg is the one meant to work: an older one (lost, replaced) is only watched.
    latest = {o.leg: o for o in position_exit_orders(position) if o.status in WATCHED_STATES}
    exits = [ExpectedExit(o.leg, o.side, o.quantity - o.filled_quantity, o.trigger_price, o.client_order_id)
             for o in latest.values()]
    if not any(e.leg == "sl" for e in exits) and position.stop_price > 0:
        # No stop order in the books: the planned stop is the position's own, so a restore uses its price.
        exits.append(ExpectedExit("sl", position_exit_side(position), position.quantity, position.stop_price))
    return OurPosition(position.instrument.exchange_symbol, sign * position.quantity, tuple(exits))
