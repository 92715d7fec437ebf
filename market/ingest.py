"""Bulk writes of market data: idempotent upserts that a re-run or a resume cannot duplicate."""
from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone as dt_timezone

import numpy as np
import pandas as pd
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q

from market.models import Candle, CandleSeries, DerivativesSample
from tradingbot.compiled_reads import rows_compiled
from tradingbot.upsert import row_upsert

CANDLE_COLUMNS = [
    "open", "high", "low", "close", "volume", "quote_volume", "trades", "taker_buy_base", "taker_buy_quote",
]
DERIVATIVE_COLUMNS = [
    "open_interest", "open_interest_value", "funding_rate", "mark_price", "index_price", "basis", "cvd",
]
_BATCH_ROWS = 5_000


def ms_to_db_datetimes(open_time_ms: np.ndarray) -> list[str]:
    """Return 'YYYY-MM-DD HH:MM:SS[.ffffff]' UTC strings, exactly as Django writes datetimes.

    SQLite compares datetimes as text, so the spelling must match the ORM's to the character:
    whole seconds without a fraction, anything else with six fractional digits.
    """
    stamps = np.asarray(open_time_ms, dtype="int64").astype("datetime64[ms]").astype("datetime64[us]")
    # tolist first: iterating the numpy array makes a numpy string per element, which costs more.
    text = np.datetime_as_string(stamps, unit="us").tolist()
    return [t.replace("T", " ").removesuffix(".000000") for t in text]


def numeric_text(series: pd.Series) -> list[str | None]:
    """Return each value as plain decimal text (None when missing); raise ValueError on a non-number.

    Strings are kept as written (no float round trip), after checking they parse as finite
    numbers; floats are written with repr, which round-trips exactly.
    """
    return _columns(pd.DataFrame({series.name: series}), [series.name])[0]


def _text(series: pd.Series) -> tuple[list[str | None], bool]:
    """Return (the values as text, whether they still need the finite-number check)."""
    if series.dtype.kind in "iu":
        return [str(v) for v in series.tolist()], False
    if series.dtype.kind == "f":
        return [None if v != v else repr(v) for v in series.tolist()], False
    # Value by value: a closed candle is a one-row frame, where pandas' column operations (a copy,
    # a mask, a where) cost most of the write. Text, the common cell, is kept without a call.
    return [v if isinstance(v, str) and v else _cell_text(v) for v in series.tolist()], True


def _cell_text(value) -> str | None:
    # What `pd.isna(value) or value == ""` decides (pd.isna of a value is what notna() tests per
    # value), the cheap cases first: pd.isna of one value costs more than the rest of the cell.
    if value is None or isinstance(value, str):
        return value or None
    if isinstance(value, float):
        return None if value != value else repr(value)
    return None if pd.isna(value) or value == "" else repr(value)


# Plain decimal text that pandas certainly parses as a finite number: with at most 40 digits on
# each side of the point and a two-digit exponent it stays far inside float range. Checked per
# value (possessive quantifiers: nothing to backtrack), which costs less than parsing a column of
# text with pandas and much less on a one-row frame; any other text is left to pandas' parse.
_PLAIN_NUMBER = re.compile(r"[+-]?(?=\.?[0-9])[0-9]{0,40}+(?:\.[0-9]{0,40}+)?+(?:[eE][+-]?[0-9]{1,2})?+")


def _columns(frame: pd.DataFrame, names: list[str]) -> list[list[str | None]]:
    """Return numeric_text of each named column, checking the text of all of them at once."""
    plain = _PLAIN_NUMBER.fullmatch
    texts, unchecked = [], []
    for name in names:
        text, check = _text(frame[name])
        texts.append(text)
        if check:
            unchecked += [(name, v) for v in text if v is not None and not plain(v)]
    if unchecked:
        _check_finite(unchecked)
    return texts


def _check_finite(cells: list[tuple[str, str]]) -> None:
    """Raise ValueError naming the first (column, text) of `cells` that pandas does not parse as a finite number."""
    parsed = pd.to_numeric(pd.Series([v for _, v in cells], dtype=object), errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(parsed)
    if bad.any():
        name, value = cells[int(np.argmax(bad))]
        raise ValueError(f"column {name!r}: {value!r} is not a finite number")


def _upsert_sql_tail(key_columns: list[str], value_columns: list[str]) -> str:
    qn = connection.ops.quote_name
    if connection.vendor == "mysql":
        return "ON DUPLICATE KEY UPDATE " + ", ".join(f"{qn(c)} = VALUES({qn(c)})" for c in value_columns)
    updates = ", ".join(f"{qn(c)} = excluded.{qn(c)}" for c in value_columns)
    # Only rows whose values differ are updated, so the statement's change count tells inserted plus
    # changed rows apart from rows written again with the values they had.
    differs = " OR ".join(f"{qn(c)} IS NOT excluded.{qn(c)}" for c in value_columns)
    return f"ON CONFLICT ({', '.join(qn(c) for c in key_columns)}) DO UPDATE SET {updates} WHERE {differs}"


def _upsert(table: str, keys: dict[str, object], times: list[str], time_column: str,
            value_columns: list[str], values: list[list[str | None]]) -> int:
    """Write rows of (*keys, time, *values); return the driver's affected-row count.

    Keys are the same for every row of one call. The count is the server's: on MariaDB (Django
    connects with CLIENT_FOUND_ROWS) 1 per inserted row, 2 per changed row and 1 per row written
    with its own values; on SQLite 1 per inserted or changed row.
    """
    qn = connection.ops.quote_name
    key_columns = [*keys, time_column]
    names = ", ".join(qn(c) for c in key_columns + value_columns)
    head = f"INSERT INTO {qn(table)} ({names}) VALUES "
    tail = " " + _upsert_sql_tail(key_columns, value_columns)
    affected = 0
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            return _write_literal(cursor, head, tail, list(keys.values()), times, values)
        marks = "(" + ", ".join(["%s"] * (len(key_columns) + len(value_columns))) + ")"
        fixed = tuple(keys.values())
        rows = [(*fixed, t, *v) for t, *v in zip(times, *values)]
        for start in range(0, len(rows), _BATCH_ROWS):
            cursor.executemany(head + marks + tail, rows[start:start + _BATCH_ROWS])
            affected += max(cursor.rowcount, 0)
    return affected


def _write_literal(cursor, head: str, tail: str, key_values: list, times: list[str],
                   values: list[list[str | None]]) -> int:
    rows = _literal_rows([_key_literal(v) for v in key_values], times, values)
    affected = 0
    for start in range(0, len(rows), _BATCH_ROWS):
        cursor.execute(head + "(" + "), (".join(rows[start:start + _BATCH_ROWS]) + ")" + tail)
        affected += max(cursor.rowcount, 0)
    return affected


def _literal_rows(key_literals: list[str], times: list[str], values: list[list[str | None]]) -> list[str]:
    """Return each row's values as SQL literals, comma-separated, for MariaDB."""
    # mysqlclient escapes every parameter in Python, which costs more than the server's work;
    # every value here is checked numeric text or a timestamp this module formatted, so the
    # rows can go in as literals. Key values are quoted through the driver once per call.
    prefix = ", ".join(key_literals) + ", '"
    columns = [[v if v is not None else "NULL" for v in column] for column in values]
    return [prefix + t + "', " + ", ".join(cells) for t, *cells in zip(times, *columns)]


def _newer_row_insert(table: str, keys: dict[str, object], time: str, time_column: str,
                      value_columns: list[str], cells: list[str | None]) -> bool:
    """Insert the row (*keys, time, *cells) if no row of `keys` is stored at or after `time`; return whether it did.

    One statement: outside a transaction it is its own, inserting the row or writing nothing. Its test
    is no staler than the transactional path's newest read: on SQLite no writer gets in between, on
    MariaDB it reads the rows committed when it runs.
    """
    qn = connection.ops.quote_name
    names = ", ".join(qn(c) for c in [*keys, time_column, *value_columns])
    tests = [f"{qn(c)} = %s" for c in keys] + [f"{qn(time_column)} >= %s"]
    params = None
    if connection.vendor == "mysql":
        # Literals, as _write_literal writes its rows; MariaDB wants a FROM before a WHERE.
        key_literals = [_key_literal(v) for v in keys.values()]
        row = _literal_rows(key_literals, [time], [[c] for c in cells])[0] + " FROM DUAL"
        tests = [test % literal for test, literal in zip(tests, [*key_literals, f"'{time}'"])]
    else:
        row = ", ".join(["%s"] * (len(keys) + 1 + len(cells)))
        params = [*keys.values(), time, *cells, *keys.values(), time]
    sql = (f"INSERT INTO {qn(table)} ({names}) SELECT {row} "
           f"WHERE NOT EXISTS (SELECT 1 FROM {qn(table)} WHERE {' AND '.join(tests)})")
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount == 1
    except IntegrityError:
        # A concurrent writer stored the row while this statement ran, or the row breaks a
        # constraint: nothing was written, and the caller's general path decides (or raises).
        return False


def _key_literal(value) -> str:
    if isinstance(value, int):
        return str(value)
    return connection.connection.literal(str(value)).decode()


def _aware_range(open_time_ms: np.ndarray) -> tuple[datetime, datetime]:
    return (datetime.fromtimestamp(int(open_time_ms.min()) / 1000, tz=dt_timezone.utc),
            datetime.fromtimestamp(int(open_time_ms.max()) / 1000, tz=dt_timezone.utc))


def _newest_read(*, instrument_id: int, timeframe: str):
    return (Candle.objects.filter(instrument_id=instrument_id, timeframe=timeframe).order_by("-open_time")
            .values_list("open_time")[:1])


def candles_upsert(*, instrument_id: int, timeframe: str, frame: pd.DataFrame) -> int:
    """Insert or update candles; return how many new rows the table gained.

    `frame` has an int64 `open_time_ms` column and the CANDLE_COLUMNS (decimal strings,
    numbers or missing; only the OHLCV five are required). Runs in one transaction.
    Raises ValueError, writing nothing, when a value is not a finite number. A write that changes
    a stored bar or inserts one behind the newest replaces the series' revision (CandleSeries),
    in the same transaction, so caches of its closed bars reload them.
    """
    if frame.empty:
        return 0
    columns = [c for c in CANDLE_COLUMNS if c in frame.columns]
    values = _columns(frame, columns)
    open_time_ms = frame["open_time_ms"].to_numpy()
    times = ms_to_db_datetimes(open_time_ms)
    first, last = _aware_range(open_time_ms)  # also refuses, before any statement, a time outside years 1-9999
    table, keys = Candle._meta.db_table, {"instrument_id": int(instrument_id), "timeframe": timeframe}
    # A lone candle outside a transaction (the candle job's closed candle) goes in with one statement
    # when no bar at or after it is stored: then it changes no stored bar and lands behind none, so it
    # needs no newest read, no counts and no transaction (on MariaDB autocommit off, COMMIT and
    # autocommit on: three round trips). One row only: MariaDB types each column of a multi-row SELECT
    # once for all its rows (1e-05 beside decimal text makes a DOUBLE), so long decimals would be rounded.
    if (len(times) == 1 and connection.get_autocommit()
            and _newer_row_insert(table, keys, times[0], "open_time", columns, [text[0] for text in values])):
        return 1
    with transaction.atomic():
        return _candles_write(table, keys, open_time_ms, times, (first, last), columns, values)


def _candles_write(table: str, keys: dict, open_time_ms: np.ndarray, times: list[str],
                   time_range: tuple[datetime, datetime], columns: list[str], values: list[list[str | None]]) -> int:
    """Write candles_upsert's rows inside its transaction; return how many were new."""
    instrument_id, timeframe = keys["instrument_id"], keys["timeframe"]
    first, last = time_range
    # Read on every write but a lone newer candle's own statement: compiled once (tradingbot.compiled_reads).
    newest = next((row[0] for row in rows_compiled("newest candle", Candle, _newest_read,
                                                   instrument_id=instrument_id, timeframe=timeframe)), None)
    if (newest is None or first > newest) and len(np.unique(open_time_ms)) == len(times):
        # Only newer bars, each once (a closed candle, a resumed backfill): nothing stored can
        # change, so the two counts a rewrite needs are skipped. On MariaDB a count above one
        # per row means a concurrent writer stored some of them first and this write changed them.
        affected = _upsert(table, keys, times, "open_time", columns, values)
        changed = affected - len(times) if connection.vendor == "mysql" else 0
        if changed > 0:
            candle_series_touch(instrument_id=instrument_id, timeframe=timeframe)
        return len(times) - max(changed, 0)
    # Counted over the frame's time range only: the whole series (years of 1m bars) would cost
    # a scan per write. A row gained inside the range is a row this upsert inserted.
    existing = Candle.objects.filter(instrument_id=instrument_id, timeframe=timeframe, open_time__range=(first, last))
    before = _counts(existing, newest)
    affected = _upsert(table, keys, times, "open_time", columns, values)
    after = _counts(existing, newest)
    gained = after["rows"] - before["rows"]
    changed = affected - len(times) if connection.vendor == "mysql" else affected - gained
    if changed > 0 or after["behind"] > before["behind"]:
        candle_series_touch(instrument_id=instrument_id, timeframe=timeframe)
    return gained


def _counts(rows, newest: datetime | None) -> dict[str, int]:
    """Return the rows, and those at or before `newest` (the newest bar stored before the write)."""
    if newest is None:      # nothing was stored: no row can be behind the newest
        return {"rows": rows.count(), "behind": 0}
    return rows.aggregate(rows=Count("pk"), behind=Count("pk", filter=Q(open_time__lte=newest)))


def candle_series_touch(*, instrument_id: int, timeframe: str) -> None:
    """Give the series a new revision: caches of its bars reload them (call inside the writing transaction).

    candles_upsert calls it when stored bars change; any other writer that changes, inserts behind
    the newest or deletes stored candles must call it too.
    """
    row_upsert(CandleSeries, keys={"instrument_id": int(instrument_id), "timeframe": timeframe},
               values={"revision": secrets.randbits(63)})


def derivatives_upsert(*, instrument_id: int, kind: str, period: str, frame: pd.DataFrame) -> int:
    """Insert or update derivatives samples of one kind; return how many rows were new.

    `frame` has an int64 `ts_ms` column and any of DERIVATIVE_COLUMNS.
    """
    if frame.empty:
        return 0
    columns = [c for c in DERIVATIVE_COLUMNS if c in frame.columns]
    values = _columns(frame, columns)
    times = ms_to_db_datetimes(frame["ts_ms"].to_numpy())
    existing = DerivativesSample.objects.filter(instrument_id=instrument_id, kind=kind, period=period)
    with transaction.atomic():
        before = existing.count()
        _upsert(DerivativesSample._meta.db_table,
                {"instrument_id": int(instrument_id), "kind": kind, "period": period},
                times, "ts", columns, values)
        return existing.count() - before
