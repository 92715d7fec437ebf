"""The paper venue: a Binance USD-M account simulated over the database, so it survives any restart.

A paper account's book, positions, fills, funding and wallet ARE its rows: resting orders are its
Order rows in a working state, positions its open Position rows, the wallet Account.balance_usdt.
Nothing lives in memory, so a new PaperVenue after a restart sees what the old one left. The
market model is execution.brokers.paper_model; this module loads bars, rates and rows for it and
books what it returns. Every booking is idempotent: fills by (order, trade id), funding by
(account, instrument, funding time), match progress in Order.last_checked_at.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from analytics.services import ms_to_datetime
from decisions.models import TradingConfig
from decisions.selectors import trading_config_get
from execution.brokers.base import (DuplicateClientId, ExecutionReport, FillReport, FundingReport, OrderNotFound,
                                    VenueBalance, VenueOrder, VenuePosition)
from execution.brokers.paper import LIMIT_TYPES, PaperBroker, paper_order_id, position_pnl
from execution.brokers.paper_model import Bar, RestingLimit, funding_payment, funding_times, limit_fill
from execution.liquidation import position_liquidation  # noqa: F401  (moved to the core)
from execution.models import Account, Fill, FundingPayment, Order, Position
from execution.oms import OrderIntent, OrderRejected
from execution.order_states import VENUE_STATES, OrderState
from execution.orders import order_apply_report
from execution.selectors import balance_written, last_close
from market.models import Candle, DerivativesKind, DerivativesSample, Instrument
from market.timeframes import TIMEFRAME_MS
from tradingbot.compiled_reads import rows_compiled

logger = logging.getLogger(__name__)
S = OrderState
# Limit orders in these states rest in the paper book (a cancel not yet processed leaves it there).
BOOK_STATES = (S.ACCEPTED, S.PARTIALLY_FILLED, S.PENDING_CANCEL)
WORKING_STATES = BOOK_STATES + (S.TRIGGERED,)
# Rows the venue has not answered for: unless acknowledged once, the paper venue never saw them.
UNSEEN_STATES = (S.NEW, S.SUBMITTED, S.UNKNOWN, S.LOST)
BAR_TIMEFRAMES = ("1m", "3m", "5m", "15m", "30m", "1h")
# Binance stamps funding settlements a few ms after the hour; an older sample is another settlement's rate.
FUNDING_STAMP_TOLERANCE = timedelta(minutes=1)
MARK_MAX_AGE = timedelta(hours=8)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _venue_status(order: Order) -> str:
    """Return the state the venue would report: a pending cancel or a lost row is still working there."""
    if order.status in VENUE_STATES:
        return order.status
    return S.PARTIALLY_FILLED if order.filled_quantity > 0 else S.ACCEPTED


def venue_order(order: Order) -> VenueOrder:
    """Return the paper venue's view of an order row."""
    cid = order.client_order_id
    return VenueOrder(cid, order.exchange_order_id or paper_order_id(cid), order.instrument.exchange_symbol,
                      order.side, order.type, _venue_status(order), order.quantity, order.filled_quantity,
                      order.average_price, order.price, order.trigger_price, order.reduce_only,
                      conditional=order.type not in LIMIT_TYPES | {"market"}, update_ms=_ms(order.updated_at))


def _symbol(symbol: str, via: str = "") -> Q:
    """Match an instrument by venue symbol (BTCUSDT) or ccxt symbol (BTC/USDT:USDT)."""
    return Q(**{f"{via}instrument__exchange_symbol": symbol}) | Q(**{f"{via}instrument__symbol": symbol})


class PaperVenue:
    """The Broker port over one paper account's rows; the market model is PaperBroker's."""

    name = "paper"
    # Exits are simulated bar by bar (ladder_step), not placed as resting orders.
    simulates_exits = True

    def __init__(self, account: Account, config: TradingConfig, *, clock: Callable[[], datetime] = timezone.now):
        self.account = account
        self.config = config
        self.clock = clock
        self.broker = PaperBroker(taker_fee_fraction=config.taker_fee_fraction, slippage_bps=config.slippage_bps,
                                  maker_fee_fraction=config.maker_fee_fraction)

    def _order(self, client_order_id: str, *, missing: str) -> Order:
        order = (Order.objects.filter(account=self.account, client_order_id=client_order_id)
                 .select_related("instrument").first())
        if order is None or (order.status in UNSEEN_STATES and not order.acknowledged):
            raise OrderNotFound(f"{missing}: {client_order_id}")
        return order

    def submit(self, intent: OrderIntent, *, reference_price: Decimal, ts_ms: int,
               tick_size: Decimal | None = None) -> ExecutionReport:
        """Answer one order as the venue would; the OMS books the answer on the row it committed first.

        A resting limit stays in the book as that row. Without a positive `reference_price` (a
        resend knows none for a market order) the last closed price is used.
        """
        # Compiled once (tradingbot.compiled_reads): every paper order is looked up here.
        row = next(iter(rows_compiled("paper order by client id", Order, _order_seen_read, account_id=self.account.pk,
                                      client_order_id=intent.client_order_id)), None)
        if row is not None and row[0]:
            raise DuplicateClientId(f"-4116 ClientOrderId is duplicated: {intent.client_order_id}")
        if reference_price <= 0:
            close = last_close(instrument=Instrument.objects.get(pk=row[1]), now=self.clock()) if row else None
            if close is None:
                raise OrderRejected(f"paper venue has no price to answer {intent.client_order_id}")
            reference_price = close[0]
        return self.broker.submit(intent, reference_price=reference_price, ts_ms=ts_ms, tick_size=tick_size)

    def fill_at(self, intent: OrderIntent, price: Decimal, ts_ms: int, *, slip: bool,
                tick_size: Decimal | None = None) -> ExecutionReport:
        """Return a full taker fill at `price` (PaperBroker.fill_at), for simulated exits."""
        return self.broker.fill_at(intent, price, ts_ms, slip=slip, tick_size=tick_size)

    def fetch_order(self, client_order_id: str, symbol: str, *, conditional: bool = False) -> VenueOrder:
        """Return the order's row as the venue sees it; raise OrderNotFound for one it never accepted."""
        return venue_order(self._order(client_order_id, missing="-2013 Order does not exist"))

    def cancel(self, client_order_id: str, symbol: str, *, conditional: bool = False) -> VenueOrder:
        """Cancel a working order, after booking the fills the closed bars gave it; return its final state."""
        now = self.clock()
        order = self._order(client_order_id, missing="-2011 Unknown order sent")
        if order.type in LIMIT_TYPES and order.status in BOOK_STATES:
            paper_order_match(order=order, now=now, participation=self.config.paper_fill_participation,
                              maker_fee_fraction=self.config.maker_fee_fraction)
            order.refresh_from_db()
        if _venue_status(order) in (S.ACCEPTED, S.PARTIALLY_FILLED, S.TRIGGERED):
            report = ExecutionReport(client_order_id, S.CANCELED, exchange_order_id=order.exchange_order_id)
            order = order_apply_report(order=order, report=report, now=now)
        return venue_order(order)

    def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        """Return the account's working orders, limits and conditionals."""
        rows = Order.objects.filter(account=self.account, status__in=WORKING_STATES).select_related("instrument")
        if symbol:
            rows = rows.filter(_symbol(symbol))
        return [venue_order(o) for o in rows.order_by("created_at", "pk")]

    def _open_positions(self):
        return Position.objects.filter(account=self.account, status=Position.Status.OPEN).select_related("instrument")

    def positions(self) -> list[VenuePosition]:
        """Return the open positions, marked at the last closed price."""
        now, out = self.clock(), []
        for position in self._open_positions():
            close = last_close(instrument=position.instrument, now=now)
            mark = close[0] if close else None
            pnl = position_pnl(position.side, position.quantity, position.entry_price, mark) if mark else Decimal(0)
            signed = position.quantity if position.side == "LONG" else -position.quantity
            out.append(VenuePosition(position.instrument.exchange_symbol, signed, position.entry_price, mark, pnl,
                                     position.liquidation_price))
        return out

    def trades(self, symbol: str, since_ms: int) -> list[FillReport]:
        """Return the account's fills in `symbol` since `since_ms`, oldest first."""
        fills = Fill.objects.filter(_symbol(symbol, "order__"), order__account=self.account,
                                    ts__gte=ms_to_datetime(since_ms))
        return [FillReport(f.order.client_order_id, f.trade_id, _ms(f.ts), f.price, f.quantity, f.fee_usdt,
                           f.liquidity, f.order.exchange_order_id)
                for f in fills.select_related("order").order_by("ts", "pk")]

    def balance(self) -> VenueBalance:
        """Return the wallet, its unrealised PnL and what is free after the margin positions and orders hold."""
        self.account.refresh_from_db(fields=["balance_usdt"])
        wallet = self.account.balance_usdt
        unrealized = sum((p.unrealized_pnl_usdt for p in self.positions()), Decimal(0))
        held = sum((p.entry_price * p.quantity for p in self._open_positions()), Decimal(0))
        resting = Order.objects.filter(account=self.account, status__in=BOOK_STATES, type__in=LIMIT_TYPES,
                                       reduce_only=False)
        held += sum((o.price * (o.quantity - o.filled_quantity) for o in resting), Decimal(0))
        available = max(Decimal(0), wallet + unrealized - held / self.config.max_leverage)
        return VenueBalance(wallet, available, unrealized)

    def funding_payments(self, symbol: str | None, since_ms: int) -> list[FundingReport]:
        """Return the funding the paper model booked since `since_ms` (every symbol when None), oldest first."""
        rows = FundingPayment.objects.filter(account=self.account, ts__gte=ms_to_datetime(since_ms))
        if symbol:
            rows = rows.filter(_symbol(symbol))
        return [FundingReport(p.instrument.exchange_symbol, _ms(p.ts), p.amount_usdt, p.rate,
                              p.venue_id or f"paper-{p.pk}")
                for p in rows.select_related("instrument").order_by("ts", "pk")]


def _order_seen_read(*, account_id: int, client_order_id: str):
    """(acknowledged, instrument) of the account's order with this client id: what the paper venue knows of it."""
    return Order.objects.filter(account_id=account_id, client_order_id=client_order_id).values_list(
        "acknowledged", "instrument_id")[:1]


def _closed_bars(instrument: Instrument, since: datetime, now: datetime, *, strictly_after: bool,
                 fields: tuple[str, ...]) -> tuple[int, list[tuple]]:
    """Return (bar length ms, rows) of the finest stored bars opened from `since` and closed by `now`."""
    # Every timeframe in one read, each bounded by its own close: the finest stored one usually
    # has the one bar since the last check, the coarser ones a fraction of a bar each. Read on
    # every cycle with an open position: compiled once per shape (tradingbot.compiled_reads).
    opened_by = {f"opened_by_{k}": now - timedelta(milliseconds=TIMEFRAME_MS[timeframe])
                 for k, timeframe in enumerate(BAR_TIMEFRAMES)}
    build = partial(_closed_bars_read, strictly_after=strictly_after, fields=fields)
    by_timeframe: dict[str, list[tuple]] = {}
    for timeframe, *row in rows_compiled(("closed bars", strictly_after, fields), Candle, build,
                                         instrument_id=instrument.pk, since=since, **opened_by):
        by_timeframe.setdefault(timeframe, []).append(tuple(row))
    for timeframe in BAR_TIMEFRAMES:
        if timeframe in by_timeframe:
            return TIMEFRAME_MS[timeframe], by_timeframe[timeframe]
    return 0, []


def _closed_bars_read(*, instrument_id: int, since: datetime, strictly_after: bool, fields: tuple[str, ...],
                      **opened_by: datetime):
    start = {"open_time__gt": since} if strictly_after else {"open_time__gte": since}
    closed = Q()
    for k, timeframe in enumerate(BAR_TIMEFRAMES):
        closed |= Q(timeframe=timeframe, open_time__lte=opened_by[f"opened_by_{k}"])
    return (Candle.objects.filter(closed, instrument_id=instrument_id, **start).order_by("open_time")
            .values_list("timeframe", *fields))


def paper_order_match(*, order: Order, now: datetime, participation: Decimal,
                      maker_fee_fraction: Decimal) -> Order | None:
    """Fill one resting paper limit order from the bars closed since it was last matched; return it if it filled.

    Bars are those opened at or after the order was placed (a bar already running may have traded
    through the price before it): then each bar after the last one matched (Order.last_checked_at).
    Atomic; a rerun books nothing twice.
    """
    with transaction.atomic():
        order = Order.objects.select_for_update().select_related("instrument").get(pk=order.pk)
        if order.status not in BOOK_STATES or order.type not in LIMIT_TYPES or order.price is None:
            return None
        since = order.last_checked_at or order.created_at
        _, bars = _closed_bars(order.instrument, since, now, strictly_after=order.last_checked_at is not None,
                               fields=("open_time", "open", "high", "low", "volume"))
        resting = RestingLimit(order.client_order_id, order.side, order.price, order.quantity,
                               order.filled_quantity, order.exchange_order_id or paper_order_id(order.client_order_id))
        fills, last_bar = [], None
        for open_time, bar_open, high, low, volume in bars:
            last_bar = open_time
            fill = limit_fill(resting, Bar(_ms(open_time), bar_open, high, low, volume),
                              participation_fraction=participation, step_size=order.instrument.step_size,
                              maker_fee_fraction=maker_fee_fraction)
            if fill is not None:
                fills.append(fill)
                resting = replace(resting, filled=resting.filled + fill.quantity)
            if resting.remaining <= 0:
                break
        if last_bar is None:
            return None
        if fills:
            status = S.FILLED if resting.remaining <= 0 else S.PARTIALLY_FILLED
            report = ExecutionReport(order.client_order_id, status, tuple(fills), resting.exchange_order_id)
            order = order_apply_report(order=order, report=report, now=now)
        order.last_checked_at = last_bar
        order.save(update_fields=["last_checked_at"])
    return order if fills else None


def paper_orders_match(*, account: Account, instrument: Instrument, now: datetime,
                       participation: Decimal | None = None,
                       maker_fee_fraction: Decimal | None = None) -> list[Order]:
    """Fill the account's resting limit orders in `instrument` from the closed bars; return those that filled.

    `participation` is the most of a bar's volume one order takes (default: the configured
    paper_fill_participation); fills pay `maker_fee_fraction` (default: the configured maker fee).
    """
    config = trading_config_get() if participation is None or maker_fee_fraction is None else None
    participation = participation if participation is not None else config.paper_fill_participation
    maker_fee = maker_fee_fraction if maker_fee_fraction is not None else config.maker_fee_fraction
    resting = (Order.objects.filter(account=account, instrument=instrument, status__in=BOOK_STATES,
                                    type__in=LIMIT_TYPES, price__isnull=False).order_by("created_at", "pk"))
    matched = [paper_order_match(order=order, now=now, participation=participation, maker_fee_fraction=maker_fee)
               for order in resting]
    return [order for order in matched if order is not None]


def _period_ms(period: str) -> int:
    return TIMEFRAME_MS.get(period, 0)


def _funding_sample(instrument: Instrument, at: datetime) -> DerivativesSample | None:
    """Return the stored funding settlement of `at` (stamped within a minute of it), or None."""
    samples = DerivativesSample.objects.filter(
        instrument=instrument, kind=DerivativesKind.FUNDING, funding_rate__isnull=False,
        ts__gte=at - FUNDING_STAMP_TOLERANCE, ts__lte=at + FUNDING_STAMP_TOLERANCE)
    return min(samples, key=lambda s: abs(s.ts - at), default=None)


def _mark_at(instrument: Instrument, at: datetime, sample: DerivativesSample) -> Decimal | None:
    """Return the mark price at `at`: the settlement's own, else the last mark close, else the last close."""
    if sample.mark_price:
        return sample.mark_price
    # A mark kline is stored at its open time with its close: it tells the mark at ts + period.
    rows = (DerivativesSample.objects.filter(instrument=instrument, kind=DerivativesKind.MARK_INDEX,
                                             mark_price__isnull=False, ts__lte=at, ts__gt=at - MARK_MAX_AGE)
            .order_by("-ts").values_list("ts", "period", "mark_price")[:50])
    closes = [(ts + timedelta(milliseconds=_period_ms(period)), mark) for ts, period, mark in rows]
    closes = [(close, mark) for close, mark in closes if close <= at]
    if closes:
        return max(closes, key=lambda c: c[0])[1]
    close = last_close(instrument=instrument, now=at)
    return close[0] if close else None


def paper_funding_settle(*, position: Position, at: datetime) -> FundingPayment | None:
    """Book one funding settlement of an open paper position at funding time `at`; None if none is due.

    Uses the position's current quantity, so call it before the exits of bars after `at`. No
    stored rate (or no price to mark with): nothing is booked and the gap is logged; rates are
    never invented. Atomic; a second call for the same time books nothing (the unique settlement).
    `position` is refreshed with the booked funding and PnL.
    """
    if position.quantity <= 0:
        return None
    sample = _funding_sample(position.instrument, at)
    mark = _mark_at(position.instrument, at, sample) if sample is not None else None
    if sample is None or mark is None:
        logger.warning("paper funding of %s at %s not booked: no stored %s", position.instrument, at.isoformat(),
                       "funding rate" if sample is None else "mark or close price")
        return None
    amount = funding_payment(position.side, position.quantity, mark, sample.funding_rate)
    try:
        with transaction.atomic():
            payment = FundingPayment.objects.create(
                account_id=position.account_id, instrument_id=position.instrument_id, position=position, ts=at,
                rate=sample.funding_rate, amount_usdt=amount, source=FundingPayment.Source.PAPER)
            # F(): exits and other cycles write these rows too.
            Position.objects.filter(pk=position.pk).update(funding_usdt=F("funding_usdt") + amount,
                                                           realized_pnl_usdt=F("realized_pnl_usdt") + amount)
            Account.objects.filter(pk=position.account_id).update(balance_usdt=F("balance_usdt") + amount)
            balance_written(position.account_id)
    except IntegrityError:
        return None     # booked already, by an earlier run or another worker
    position.refresh_from_db(fields=["funding_usdt", "realized_pnl_usdt"])
    return payment


def paper_funding_apply(*, account: Account, now: datetime,
                        positions: list[Position] | None = None) -> list[FundingPayment]:
    """Book the funding every open position of a paper account owes or earns up to `now`; return what was booked.

    Every funding time after the position opened is settled once; times booked already are
    skipped, and times without a stored rate are retried on the next call (the rate may arrive
    late). Venue accounts are skipped: the venue books their funding. `positions` are the account's
    open positions (with instruments) when the caller has read them.
    """
    if account.broker != Account.Broker.PAPER:
        return []
    booked = []
    if positions is None:
        positions = Position.objects.filter(account=account, status=Position.Status.OPEN).select_related("instrument")
    for position in positions:
        due = funding_times(_ms(position.opened_at), _ms(now))
        if not due:     # no settlement since it opened: nothing to look up (most trades last hours)
            continue
        booked_ts = FundingPayment.objects.filter(account=account, instrument=position.instrument,
                                                  ts__gt=position.opened_at).values_list("ts", flat=True)
        done = {_ms(ts) for ts in booked_ts}
        for at_ms in due:
            if at_ms not in done:
                payment = paper_funding_settle(position=position, at=ms_to_datetime(at_ms))
                booked += [payment] if payment is not None else []
    return booked


def _mark_points_read(*, instrument_id: int, start: datetime, end: datetime):
    # Read with the bars on every cycle with an open position: compiled once (tradingbot.compiled_reads).
    return DerivativesSample.objects.filter(
        instrument_id=instrument_id, kind=DerivativesKind.MARK_INDEX, mark_price__isnull=False,
        ts__gte=start, ts__lt=end).values_list("ts", "period", "mark_price")


def _mark_points(instrument: Instrument, first_open: datetime, end: datetime, step_ms: int) -> dict[int, list]:
    """Return {bar open ms: [(ms, mark)] from the bar's open to its close}, from the finest mark klines."""
    rows = rows_compiled("mark points", DerivativesSample, _mark_points_read, instrument_id=instrument.pk,
                         start=first_open - timedelta(milliseconds=step_ms), end=end)
    finest = min((_period_ms(p) for _, p, _ in rows if 0 < _period_ms(p) <= step_ms), default=0)
    points: dict[int, list] = {}
    for ts, period, mark in rows:
        if finest and _period_ms(period) == finest:
            close_ms = _ms(ts) + finest
            # A kline closing on a bar boundary gives the mark at one bar's close and the next one's open.
            for open_ms in {(close_ms - 1) // step_ms * step_ms, close_ms // step_ms * step_ms}:
                points.setdefault(open_ms, []).append((close_ms, mark))
    return points


def paper_exit_bars(*, position: Position, since: datetime, now: datetime,
                    working_type: str = "MARK_PRICE") -> list[tuple]:
    """Return (open_time, open, high, low, trigger_high, trigger_low) of the bars to check exits on.

    The finest stored bars opened at `since` or later (after it, once exits were checked) and
    closed by `now`. With MARK_PRICE the trigger range is the range of the stored mark closes from
    the bar's open to its close, of the finest mark klines no longer than the bar; mark klines
    are stored as closes only, so this understates the mark's extremes within each kline (1m mark
    klines make it close). A bar without a mark close inside it, or CONTRACT_PRICE, uses its own
    high and low.
    """
    step_ms, bars = _closed_bars(position.instrument, since, now,
                                 strictly_after=position.exits_checked_until is not None,
                                 fields=("open_time", "open", "high", "low"))
    if not bars:
        return []
    points = {}
    if working_type == "MARK_PRICE":
        points = _mark_points(position.instrument, bars[0][0], bars[-1][0] + timedelta(milliseconds=step_ms), step_ms)
    rows = []
    for open_time, bar_open, high, low in bars:
        seen = points.get(_ms(open_time), [])
        marks = [mark for _, mark in seen]
        if any(ms > _ms(open_time) for ms, _ in seen):
            rows.append((open_time, bar_open, high, low, max(marks), min(marks)))
        else:
            rows.append((open_time, bar_open, high, low, high, low))
    return rows
