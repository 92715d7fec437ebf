"""Bulk writes of market data: idempotent upserts that a re-run or a resume cannot duplicate."""
from __future__ import annotations

import math

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


def _cell(value):
    if value is None:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) else repr(value)
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (np.floating,)):
        return None if np.isnan(value) else repr(float(value))
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, str) and value == "":
        return None
    return value


def _upsert(table: str, key_columns: list[str], value_columns: list[str], rows: list[tuple]) -> None:
    columns = key_columns + value_columns
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    marks = ", ".join(["%s"] * len(columns))
    qn = connection.ops.quote_name
    if connection.vendor == "mysql":
        updates = ", ".join(f"{qn(c)} = VALUES({qn(c)})" for c in value_columns)
        tail = f"ON DUPLICATE KEY UPDATE {updates}"
    else:  # sqlite and postgresql share the ON CONFLICT form
        updates = ", ".join(f"{qn(c)} = excluded.{qn(c)}" for c in value_columns)
        tail = f"ON CONFLICT ({', '.join(qn(c) for c in key_columns)}) DO UPDATE SET {updates}"
    sql = f"INSERT INTO {qn(table)} ({names}) VALUES ({marks}) {tail}"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), _BATCH_ROWS):
            cursor.executemany(sql, rows[start:start + _BATCH_ROWS])


def candles_upsert(*, instrument_id: int, timeframe: str, frame: pd.DataFrame) -> int:
    """Insert or update candles; return how many new rows the table gained.

    `frame` has an int64 `open_time_ms` column and the CANDLE_COLUMNS (decimal strings,
    floats or missing; only the OHLCV five are required). Runs in one transaction.
    """
    if frame.empty:
        return 0
    columns = [c for c in CANDLE_COLUMNS if c in frame.columns]
    times = ms_to_db_datetimes(frame["open_time_ms"].to_numpy())
    values = frame[columns].astype(object).to_numpy()
    rows = [
        (instrument_id, timeframe, t, *[_cell(v) for v in row])
        for t, row in zip(times, values)
    ]
    existing = Candle.objects.filter(instrument_id=instrument_id, timeframe=timeframe)
    with transaction.atomic():
        before = existing.count()
        _upsert(Candle._meta.db_table, ["instrument_id", "timeframe", "open_time"], columns, rows)
        return existing.count() - before


def derivatives_upsert(*, instrument_id: int, kind: str, period: str, frame: pd.DataFrame) -> int:
    """Insert or update derivatives samples of one kind; return how many rows were new.

    `frame` has an int64 `ts_ms` column and any of DERIVATIVE_COLUMNS.
    """
    if frame.empty:
        return 0
    columns = [c for c in DERIVATIVE_COLUMNS if c in frame.columns]
    times = ms_to_db_datetimes(frame["ts_ms"].to_numpy())
    values = frame[columns].astype(object).to_numpy()
    rows = [(instrument_id, kind, period, t, *[_cell(v) for v in row]) for t, row in zip(times, values)]
    existing = DerivativesSample.objects.filter(instrument_id=instrument_id, kind=kind, period=period)
    with transaction.atomic():
        before = existing.count()
        _upsert(DerivativesSample._meta.db_table, ["instrument_id", "kind", "period", "ts"], columns, rows)
        return existing.count() - before
