"""Reads for the execution stage."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone as dt_timezone
from decimal import Decimal

from django.db import router

from execution.brokers.paper import position_pnl
from execution.models import Account, EquityPoint, Position
from market.models import Candle, DataSource, Instrument
from market.timeframes import timeframe_ms
from tradingbot.compiled_reads import rows_compiled, stored_names


def account_name_for(data_source: str) -> str:
    """Return the paper account of a data source: replayed and simulated PnL never mix with real."""
    return "paper" if data_source == DataSource.EXCHANGE else f"paper-{data_source}"


def account_get(name: str = "paper") -> Account:
    """Return the account the bot trades (the paper account unless configured otherwise)."""
    return Account.objects.get(name=name)


def position_get_open(*, account: Account, instrument: Instrument) -> Position | None:
    """Return the open position of `instrument`, or None."""
    return Position.objects.filter(account=account, instrument=instrument, status=Position.Status.OPEN).first()


@dataclass
class _Closes:
    """One cycle's last_close answers ({(instrument id, now): answer}) and the timeframe to try first."""

    answers: dict = field(default_factory=dict)
    timeframe: str | None = None


_closes: ContextVar[_Closes | None] = ContextVar("closes", default=None)


@contextmanager
def closes_remembered(*, timeframe: str | None = None) -> Iterator[None]:
    """Inside the block, last_close reads each (instrument, now) once.

    For one engine cycle: its exits, decision, equity point and header price all mark at the same
    `now`, and bars that closed by `now` do not change while the cycle runs. `timeframe` (the
    cycle's decision timeframe) is asked first: when its bar closing at `now` is stored, no bar of
    any timeframe can be fresher, and one read answers.
    """
    token = _closes.set(_Closes(timeframe=timeframe))
    try:
        yield
    finally:
        _closes.reset(token)


def last_close(*, instrument: Instrument, now: datetime) -> tuple[Decimal, datetime] | None:
    """Return (close, close time) of the freshest bar of any timeframe that had closed by `now`."""
    memo = _closes.get()
    if memo is None:
        return _last_close(instrument, now)
    key = (instrument.pk, now)
    if key not in memo.answers:
        found = _close_at(instrument, now, memo.timeframe) if memo.timeframe else None
        memo.answers[key] = found if found is not None else _last_close(instrument, now)
    return memo.answers[key]


def _close_at(instrument: Instrument, now: datetime, timeframe: str) -> tuple[Decimal, datetime] | None:
    """Return (close, now) of the `timeframe` bar that closes exactly at `now`, or None."""
    step_ms = timeframe_ms(timeframe)
    if int(now.timestamp() * 1000) % step_ms:     # `now` is no boundary of this timeframe
        return None
    # order_by(): the default ordering would join the instrument for a row the unique key finds.
    close = next(iter(Candle.objects.filter(instrument=instrument, timeframe=timeframe,
                                            open_time=now - timedelta(milliseconds=step_ms))
                      .order_by().values_list("close", flat=True)[:1]), None)
    # Nothing closes later than `now`: a bar of another timeframe closing then too is a tie.
    return (close, now) if close is not None else None


def _last_close(instrument: Instrument, now: datetime) -> tuple[Decimal, datetime] | None:
    best = None
    # order_by(): Candle's default ordering would join the instrument and add its columns to the
    # DISTINCT, making it a scan of every stored bar instead of a walk over the index's timeframes.
    timeframes = (Candle.objects.filter(instrument=instrument).order_by()
                  .values_list("timeframe", flat=True).distinct())
    for timeframe in set(timeframes):
        step = timedelta(milliseconds=timeframe_ms(timeframe))
        # open_time + length <= now: a bar still forming at `now` must not mark anything.
        row = (Candle.objects.filter(instrument=instrument, timeframe=timeframe, open_time__lte=now - step)
               .order_by("-open_time").values_list("close", "open_time").first())
        if row is not None and (best is None or row[1] + step > best[1]):
            best = (row[0], row[1] + step)
    return best


# Ids of the accounts whose balance was written since they were last read, inside balance_writes_noted() only.
_balance_written: ContextVar[set[int] | None] = ContextVar("balance_written", default=None)


@contextmanager
def balance_writes_noted() -> Iterator[None]:
    """Inside the block, balance_refresh re-reads an account only after a noted write of its balance.

    For one engine cycle, whose account row was read at its start: the cycle's own writes of the
    balance (fees, exits, funding) call balance_written, and most cycles write none.
    """
    token = _balance_written.set(set())
    try:
        yield
    finally:
        _balance_written.reset(token)


def balance_written(account_id: int) -> None:
    """Note that the stored balance of `account_id` changed (call after every write of it)."""
    written = _balance_written.get()
    if written is not None:
        written.add(account_id)


def balance_refresh(account: Account) -> None:
    """Re-read `account`'s balance, unless inside balance_writes_noted() nothing wrote it since."""
    written = _balance_written.get()
    if written is None or account.pk in written:
        account.refresh_from_db(fields=["balance_usdt"])
        if written is not None:
            written.discard(account.pk)


def positions_open(account: Account) -> list[Position]:
    """Return the account's open positions with their instruments.

    Read twice every engine cycle (for the decision, then the equity point): compiled once
    (tradingbot.compiled_reads), each row made into the two models as select_related makes them.
    """
    alias = router.db_for_read(Position)
    position_names, instrument_names = stored_names(Position), stored_names(Instrument)
    out = []
    for row in rows_compiled("open positions", Position, _positions_open_read, account_id=account.pk):
        position = Position.from_db(alias, position_names, row[:len(position_names)])
        position.instrument = Instrument.from_db(alias, instrument_names, row[len(position_names):])
        out.append(position)
    return out


def _positions_open_read(*, account_id: int):
    return (Position.objects.filter(account_id=account_id, status=Position.Status.OPEN).order_by("-opened_at")
            .values_list(*stored_names(Position), *(f"instrument__{name}" for name in stored_names(Instrument))))


def unrealized_pnl(*, account: Account, now: datetime, positions: list[Position] | None = None) -> Decimal:
    """Return the open positions' PnL marked at the last close before `now`.

    `positions` are the account's open positions when the caller has read them already.
    """
    total = Decimal(0)
    for position in positions if positions is not None else positions_open(account):
        price = last_close(instrument=position.instrument, now=now)
        if price is not None:
            total += position_pnl(position.side, position.quantity, position.entry_price, price[0])
    return total


def equity_now(*, account: Account, now: datetime, positions: list[Position] | None = None) -> Decimal:
    """Return balance plus unrealised PnL (of `positions`, the open ones, when given)."""
    return account.balance_usdt + unrealized_pnl(account=account, now=now, positions=positions)


def day_start_equity(*, account: Account, now: datetime) -> Decimal:
    """Return the equity the UTC day of `now` started with (the last point before midnight)."""
    midnight = datetime.combine(now.astimezone(dt_timezone.utc).date(), time(0), tzinfo=dt_timezone.utc)
    point = EquityPoint.objects.filter(account=account, ts__lte=midnight).order_by("-ts").first()
    if point is None:
        point = EquityPoint.objects.filter(account=account, ts__gt=midnight).order_by("ts").first()
    return point.equity_usdt if point else account.balance_usdt
