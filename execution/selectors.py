"""Reads for the execution stage."""
from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone as dt_timezone
from decimal import Decimal

from django.db import connections, router
from django.db.models import QuerySet

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
    """Return the open position of `instrument`, or None.

    Inside positions_remembered() it is the one of positions_open (with its instrument), which the
    cycle's decision and equity point then read again without a query while nothing writes positions.
    """
    if _open_positions.get() is not None:
        return next((p for p in positions_open(account) if p.instrument_id == instrument.pk), None)
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
    # Read every cycle: compiled once (tradingbot.compiled_reads).
    rows = rows_compiled("close at", Candle, _close_at_read, instrument_id=instrument.pk, timeframe=timeframe,
                         open_time=now - timedelta(milliseconds=step_ms))
    # Nothing closes later than `now`: a bar of another timeframe closing then too is a tie.
    return (rows[0][0], now) if rows else None


def _close_at_read(*, instrument_id: int, timeframe: str, open_time: datetime) -> QuerySet:
    # order_by(): the default ordering would join the instrument for a row the unique key finds.
    return (Candle.objects.filter(instrument_id=instrument_id, timeframe=timeframe, open_time=open_time)
            .order_by().values_list("close")[:1])


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
        account.balance_usdt = balance_stored(account.pk)
        if written is not None:
            written.discard(account.pk)


def balance_stored(account_id: int) -> Decimal:
    """Return the account's stored balance (compiled once: the equity point reads it every cycle)."""
    (balance,), = rows_compiled("account balance", Account, _balance_read, account_id=account_id)
    return balance


def _balance_read(*, account_id: int):
    return Account.objects.filter(pk=account_id).values_list("balance_usdt")


@dataclass
class _OpenPositions:
    """One cycle's last read of open positions ({account id: rows}), kept until a write to the positions table."""

    alias: str
    rows: dict[int, list[tuple]] = field(default_factory=dict)

    def keeps(self) -> bool:
        # Only what a read outside a transaction saw: no rollback can take a row of it back, and a
        # read inside a transaction keeps the snapshot and locks that transaction expects.
        return not connections[self.alias].in_atomic_block


_open_positions: ContextVar[_OpenPositions | None] = ContextVar("open_positions", default=None)


@contextmanager
def positions_remembered() -> Iterator[None]:
    """Inside the block, positions_open answers from its last read until anything writes the positions table.

    For one engine cycle: its exits, decision and equity point read the open positions three times,
    and most cycles change none. Every statement this connection runs passes a watch that drops
    the kept rows before any statement other than a SELECT naming the positions table (an entry
    that opens one, an exit, a funding booking) runs. Only reads made outside a transaction are
    kept. A write another process commits while the cycle runs shows in the next cycle (before, in
    the cycle's next read): the cycle never ordered itself against other processes' writes.
    """
    alias = router.db_for_read(Position)
    if router.db_for_write(Position) != alias:     # the watch sees one connection's writes only
        yield
        return
    memo = _OpenPositions(alias)
    table = Position._meta.db_table

    def watch(execute, sql, params, many, context):
        if memo.rows and table in sql and not sql.lstrip("( \n").upper().startswith("SELECT"):
            memo.rows.clear()
        return execute(sql, params, many, context)

    token = _open_positions.set(memo)
    try:
        with connections[alias].execute_wrapper(watch):
            yield
    finally:
        _open_positions.reset(token)


def positions_open(account: Account, *, fresh: bool = False) -> list[Position]:
    """Return the account's open positions with their instruments, newest first.

    Read up to three times every engine cycle (exits, decision, equity point): compiled once
    (tradingbot.compiled_reads), each row made into the two models as select_related makes them;
    inside positions_remembered() read again only after a write, or when `fresh` is asked for.
    """
    memo = _open_positions.get()
    rows = memo.rows.get(account.pk) if memo is not None and memo.keeps() and not fresh else None
    if rows is None:
        rows = rows_compiled("open positions", Position, _positions_open_read, account_id=account.pk)
        if memo is not None and memo.keeps():
            memo.rows[account.pk] = rows
    alias = router.db_for_read(Position)
    position_names, instrument_names = stored_names(Position), stored_names(Instrument)
    out = []
    for row in rows:
        row = _unshared(row)
        position = Position.from_db(alias, position_names, row[:len(position_names)])
        position.instrument = Instrument.from_db(alias, instrument_names, row[len(position_names):])
        out.append(position)
    return out


def _unshared(row: tuple) -> tuple:
    # A kept row makes new models on every answer: its lists (the take-profit ladder) are copied so
    # that a caller changing one in place changes no other answer.
    return tuple(copy.deepcopy(v) if isinstance(v, (list, dict)) else v for v in row)


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
