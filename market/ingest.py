"""Bulk writes of market data: idempotent upserts that a re-run or a resume cannot duplicate."""
from __future__ import annotations

from datetime import datetime, timezone as dt_timezone

import numpy as np
import pandas as pd
from django.db import connection, transaction

from market.models import Candle, DerivativesSample

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
    text = np.datetime_as_string(stamps, unit="us")
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
    text = series.astype(object).where(series.notna(), None).tolist()
    return [None if v is None or v == "" else (v if isinstance(v, str) else repr(v)) for v in text], True


def _columns(frame: pd.DataFrame, names: list[str]) -> list[list[str | None]]:
    """Return numeric_text of each named column, checking the text of all of them in one parse."""
    texts, present, owners = [], [], []
    for name in names:
        text, check = _text(frame[name])
        texts.append(text)
        if check:
            found = [v for v in text if v is not None]
            present += found
            owners += [name] * len(found)
    if present:
        parsed = pd.to_numeric(pd.Series(present, dtype=object), errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(parsed)
        if bad.any():
            first = int(np.argmax(bad))
            raise ValueError(f"column {owners[first]!r}: {present[first]!r} is not a finite number")
    return texts


def _upsert_sql_tail(key_columns: list[str], value_columns: list[str]) -> str:
    qn = connection.ops.quote_name
    if connection.vendor == "mysql":
        return "ON DUPLICATE KEY UPDATE " + ", ".join(f"{qn(c)} = VALUES({qn(c)})" for c in value_columns)
    updates = ", ".join(f"{qn(c)} = excluded.{qn(c)}" for c in value_columns)
    return f"ON CONFLICT ({', '.join(qn(c) for c in key_columns)}) DO UPDATE SET {updates}"


def _upsert(table: str, keys: dict[str, object], times: list[str], time_column: str,
            value_columns: list[str], values: list[list[str | None]]) -> None:
    """Write rows of (*keys, time, *values); keys are the same for every row of one call."""
    qn = connection.ops.quote_name
    key_columns = [*keys, time_column]
    names = ", ".join(qn(c) for c in key_columns + value_columns)
    head = f"INSERT INTO {qn(table)} ({names}) VALUES "
    tail = " " + _upsert_sql_tail(key_columns, value_columns)
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            _write_literal(cursor, head, tail, list(keys.values()), times, values)
        else:
            marks = "(" + ", ".join(["%s"] * (len(key_columns) + len(value_columns))) + ")"
            fixed = tuple(keys.values())
            rows = [(*fixed, t, *v) for t, *v in zip(times, *values)]
            for start in range(0, len(rows), _BATCH_ROWS):
                cursor.executemany(head + marks + tail, rows[start:start + _BATCH_ROWS])


def _write_literal(cursor, head: str, tail: str, key_values: list, times: list[str],
                   values: list[list[str | None]]) -> None:
    # mysqlclient escapes every parameter in Python, which costs more than the server's work;
    # every value here is checked numeric text or a timestamp this module formatted, so the
    # rows can go in as literals. Key values are quoted through the driver once per call.
    prefix = "(" + ", ".join(_key_literal(v) for v in key_values) + ", '"
    columns = [[v if v is not None else "NULL" for v in column] for column in values]
    rows = [prefix + t + "', " + ", ".join(cells) + ")" for t, *cells in zip(times, *columns)]
    for start in range(0, len(rows), _BATCH_ROWS):
        cursor.execute(head + ", ".join(rows[start:start + _BATCH_ROWS]) + tail)


def _key_literal(value) -> str:
    if isinstance(value, int):
        return str(value)
    return connection.connection.literal(str(value)).decode()


def _aware_range(open_time_ms: np.ndarray) -> tuple[datetime, datetime]:
    return (datetime.fromtimestamp(int(open_time_ms.min()) / 1000, tz=dt_timezone.utc),
            datetime.fromtimestamp(int(open_time_ms.max()) / 1000, tz=dt_timezone.utc))


def candles_upsert(*, instrument_id: int, timeframe: str, frame: pd.DataFrame) -> int:
    """Insert or update candles; return how many new rows the table gained.

    `frame` has an int64 `open_time_ms` column and the CANDLE_COLUMNS (decimal strings,
    numbers or missing; only the OHLCV five are required). Runs in one transaction.
    Raises ValueError, writing nothing, when a value is not a finite number.
    """
    if frame.empty:
        return 0
    columns = [c for c in CANDLE_COLUMNS if c in frame.columns]
    values = _columns(frame, columns)
    times = ms_to_db_datetimes(frame["open_time_ms"].to_numpy())
    # Counted over the frame's time range only: the whole series (years of 1m bars) would cost a
    # scan per closed candle. A row gained inside the range is a row this upsert inserted.
    existing = Candle.objects.filter(instrument_id=instrument_id, timeframe=timeframe,
                                     open_time__range=_aware_range(frame["open_time_ms"].to_numpy()))
    with transaction.atomic():
        before = existing.count()
        _upsert(Candle._meta.db_table, {"instrument_id": int(instrument_id), "timeframe": timeframe},
                times, "open_time", columns, values)
        return existing.count() - before


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
