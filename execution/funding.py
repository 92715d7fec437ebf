"""Funding payments and equity of venue accounts from the venue's own records; FIFO realised PnL of a position.

The venue's wallet is the truth for venue accounts: funding is booked to the payment rows and to the
position it was charged on, never to Account.balance_usdt (reconciliation syncs the wallet). The
arithmetic of lots and round trips is execution.pnl; here: load rows, call it, persist.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

from django.db import transaction
from django.db.models import F, Q

from dashboard.events import broadcast_on_commit
from execution import pnl
from execution.brokers.base import Broker, FundingReport
from execution.models import Account, EquityPoint, Fill, FundingPayment, Position
from market.models import DataSource, Instrument
from market.services import instrument_ensure
from tradingbot.upsert import row_upsert

logger = logging.getLogger(__name__)

# Read again from a little before the last booked payment: a row the venue books late is still found,
# and the unique (account, instrument, ts) keeps the ones already booked from counting twice.
SINCE_OVERLAP = timedelta(minutes=10)
# Without a booked payment, positions closed this recently may still owe a payment that was not read.
RECENTLY_CLOSED = timedelta(days=1)
# The venue stamps fills and payments, the books stamp positions: allow this much skew between them.
CLOCK_SKEW = timedelta(minutes=1)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def ms_to_utc(ms: int) -> datetime:
    """Return the aware UTC datetime of epoch ms, exact to the millisecond."""
    return datetime.fromtimestamp(ms // 1000, tz=dt_timezone.utc) + timedelta(milliseconds=ms % 1000)


def funding_since(*, account: Account, now: datetime) -> datetime | None:
    """Return where the next read of the venue's funding starts, or None when nothing can be owed.

    From the last booked venue payment, else from the first position open (or closed within
    RECENTLY_CLOSED), less SINCE_OVERLAP.
    """
    last = (FundingPayment.objects.filter(account=account, source=FundingPayment.Source.VENUE)
            .order_by("-ts").values_list("ts", flat=True).first())
    if last is None:
        recent = Q(status=Position.Status.OPEN) | Q(closed_at__gte=now - RECENTLY_CLOSED)
        last = (Position.objects.filter(account=account).filter(recent)
                .order_by("opened_at").values_list("opened_at", flat=True).first())
    return None if last is None else last - SINCE_OVERLAP


def _instrument(account: Account, symbol: str, known: dict[str, Instrument]) -> Instrument:
    if symbol not in known:
        found = Instrument.objects.filter(exchange=account.exchange_id, exchange_symbol=symbol,
                                          data_source=DataSource.EXCHANGE).order_by("pk").first()
        # A payment on a symbol the books never traded (an external position) is booked all the same.
        known[symbol] = found or instrument_ensure(exchange=account.exchange_id, exchange_symbol=symbol,
                                                   market_type="swap")
    return known[symbol]


def position_at(*, account: Account, instrument: Instrument, ts: datetime) -> Position | None:
    """Return the position of `instrument` held at `ts`: opened by then (with CLOCK_SKEW) and not closed before."""
    held = Q(status=Position.Status.OPEN) | Q(closed_at__gte=ts)
    return (Position.objects.filter(account=account, instrument=instrument, opened_at__lte=ts + CLOCK_SKEW)
            .filter(held).order_by("-opened_at", "-pk").first())


def funding_book(*, account: Account, instrument: Instrument, report: FundingReport) -> FundingPayment | None:
    """Book one venue payment and add it to the position it was charged on; None when booked before."""
    ts = ms_to_utc(report.ts_ms)
    with transaction.atomic():
        position = position_at(account=account, instrument=instrument, ts=ts)
        payment, created = FundingPayment.objects.get_or_create(
            account=account, instrument=instrument, ts=ts,
            defaults={"position": position, "rate": report.rate, "amount_usdt": report.amount_usdt,
                      "source": FundingPayment.Source.VENUE, "venue_id": report.venue_id[:64]})
        if not created:
            return None
        if position is not None:
            # F(): the fill flow may be updating the same position meanwhile.
            Position.objects.filter(pk=position.pk).update(
                funding_usdt=F("funding_usdt") + report.amount_usdt,
                realized_pnl_usdt=F("realized_pnl_usdt") + report.amount_usdt)
    return payment


def funding_sync(*, account: Account, broker: Broker, now: datetime) -> list[FundingPayment]:
    """Book the funding the venue charged or paid a venue account since the last booking; return the new rows.

    Idempotent: a payment already booked (same account, instrument and time) is skipped. Positions
    closed before a payment's time get nothing from it; Account.balance_usdt is left to reconciliation.
    """
    if account.broker == Account.Broker.PAPER:
        raise ValueError(f"account {account.name} is a paper account: its funding is modelled, not read")
    since = funding_since(account=account, now=now)
    if since is None:
        return []
    known: dict[str, Instrument] = {}
    booked = []
    for report in broker.funding_payments(None, _ms(since)):
        payment = funding_book(account=account, instrument=_instrument(account, report.symbol, known), report=report)
        if payment is not None:
            booked.append(payment)
    if booked:
        logger.info("%s: %d funding payments booked, %s USDT", account.name, len(booked),
                    sum((p.amount_usdt for p in booked), Decimal(0)))
    return booked


def _position_fills(position: Position) -> list[pnl.Fill]:
    rows = Fill.objects.filter(order__account=position.account_id, order__instrument=position.instrument_id,
                               quantity__gt=0)
    if position.closed_at is not None:
        rows = rows.filter(ts__lte=position.closed_at + CLOCK_SKEW)
    # Every earlier fill: the round trip that holds the position starts at the last flat point before it.
    return [pnl.Fill(side, price, quantity, fee, _ms(ts)) for side, price, quantity, fee, ts in
            rows.order_by("ts", "pk").values_list("order__side", "price", "quantity", "fee_usdt", "ts")]


def fifo_position_trip(position: Position) -> pnl.RoundTrip | None:
    """Return the round trip of the account's fills in the position's instrument that is this position."""
    closed_ms = _ms(position.closed_at) if position.closed_at is not None else None
    side = "long" if position.side == "LONG" else "short"
    return pnl.round_trip_at(pnl.round_trips(_position_fills(position)), side, _ms(position.opened_at), closed_ms,
                             tolerance_ms=int(CLOCK_SKEW / timedelta(milliseconds=1)))


def fifo_position_realized(position: Position) -> Decimal:
    """Return the position's realised PnL from its fills (FIFO, after fees, before funding); 0 without fills.

    The entry fills come before `opened_at` on a venue (the books open the position once the fill is
    known), so the account's fills in the instrument are split into round trips from flat to flat, and
    the position's trip is the last of its side that started by `opened_at` (give or take CLOCK_SKEW).
    Position.realized_pnl_usdt = this + Position.funding_usdt.
    """
    trip = fifo_position_trip(position)
    return trip.book.net_realized_usdt if trip is not None else Decimal(0)


def equity_snapshot_venue(*, account: Account, broker: Broker, now: datetime) -> EquityPoint:
    """Store the venue account's equity at `now` from the venue's wallet and unrealised PnL, and publish it."""
    balance = broker.balance()
    point = row_upsert(EquityPoint, keys={"account": account, "ts": now},
                       values={"balance_usdt": balance.wallet_usdt, "unrealized_pnl_usdt": balance.unrealized_pnl_usdt,
                               "equity_usdt": balance.wallet_usdt + balance.unrealized_pnl_usdt})
    broadcast_on_commit("equity", {"account_id": account.pk, "account": account.name, "ts": point.ts,
                                   "equity_usdt": point.equity_usdt, "balance_usdt": point.balance_usdt,
                                   "unrealized_pnl_usdt": point.unrealized_pnl_usdt})
    return point


def _account_broker(account: Account) -> Broker:
    from decisions.selectors import trading_config_get  # ccxt and the keys load only when a job runs
    from execution.services import broker_for

    return broker_for(account, trading_config_get())


def venue_accounts_each(job: Callable[[Account, Broker], object], *,
                        broker_factory: Callable[[Account], Broker] | None = None) -> dict[str, str]:
    """Run `job` for every venue account; return each account's outcome or error, one failure not stopping the rest."""
    outcomes = {}
    for account in Account.objects.exclude(broker=Account.Broker.PAPER).order_by("pk"):
        try:
            outcomes[account.name] = str(job(account, (broker_factory or _account_broker)(account)))
        except Exception as exc:  # noqa: BLE001  a missing key or an unreadable venue must not stop the others
            logger.warning("%s: %s failed", account.name, getattr(job, "__name__", "job"), exc_info=True)
            outcomes[account.name] = f"failed: {type(exc).__name__}: {exc}"
    return outcomes


def funding_sync_accounts(*, now: datetime,
                          broker_factory: Callable[[Account], Broker] | None = None) -> dict[str, str]:
    """Book the venue funding of every venue account; return "<n> booked" or the error per account."""
    def sync(account: Account, broker: Broker) -> str:
        return f"{len(funding_sync(account=account, broker=broker, now=now))} booked"

    return venue_accounts_each(sync, broker_factory=broker_factory)


def equity_snapshot_accounts(*, now: datetime,
                             broker_factory: Callable[[Account], Broker] | None = None) -> dict[str, str]:
    """Record an equity point of every venue account; return the equity or the error per account."""
    def snapshot(account: Account, broker: Broker) -> Decimal:
        return equity_snapshot_venue(account=account, broker=broker, now=now).equity_usdt

    return venue_accounts_each(snapshot, broker_factory=broker_factory)
