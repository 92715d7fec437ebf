"""Import market-data files into the database, resample stored candles, report gaps.

Shell around the pure csvformat, resample and gaps modules: every file is validated completely
before its single transaction starts, so a bad file writes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from django.db import connection, transaction

from market import csvformat
from market.csvformat import CsvFormatError, FileKind, Problem
from market.gaps import GapSummary, summarize
from market.ingest import candles_upsert, derivatives_upsert, ms_to_db_datetimes
from market.models import Candle, DataSource, DerivativesKind, Instrument, MarketType
from market.resample import resample, to_decimal_strings
from market.services import instrument_ensure
from market.timeframes import timeframe_ms

# Binance spot and USD-M futures are different ccxt exchanges with different prices: keep them apart.
MARKETS: dict[str, tuple[str, str]] = {
    "spot": ("binance", MarketType.SPOT),
    "usdm": ("binanceusdm", MarketType.SWAP),
}
DEFAULT_MARKET = "usdm"
SUPPORTED_SUFFIXES = (".csv", ".csv.gz", ".zip")


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What one file gave: rows read, rows the database gained, and a note for the operator."""

    name: str
    kind: str
    instrument: str = ""
    interval: str = ""
    rows_read: int = 0
    rows_new: int = 0
    note: str = ""

    @property
    def skipped(self) -> bool:
        return self.kind in (FileKind.ORDER_BOOK, FileKind.UNKNOWN)


@dataclass(frozen=True, slots=True)
class GapReportRow:
    instrument: str
    timeframe: str
    summary: GapSummary


def market_files_expand(paths: list[str | Path]) -> list[Path]:
    """Return the files named, with directories replaced by their supported files, sorted."""
    out: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            out += sorted(p for p in path.iterdir() if p.name.endswith(SUPPORTED_SUFFIXES))
        else:
            out.append(path)
    return out


def market_file_import(
    path: str | Path,
    *,
    market: str | None = None,
    symbol: str | None = None,
    timeframe: str | None = None,
    data_source: str = DataSource.EXCHANGE,
) -> ImportResult:
    """Validate one file completely, then write it in one transaction; raise CsvFormatError if invalid.

    Market (spot/usdm), symbol and interval come from the file name unless given. Order-book
    files are skipped. Importing the same file again adds nothing.
    """
    path = Path(path)
    spec = csvformat.parse_file_name(path.name)
    if spec.kind == FileKind.ORDER_BOOK:
        return ImportResult(path.name, spec.kind, note="order-book file skipped: not imported by this command")
    kind = FileKind.CANDLES if spec.kind == FileKind.UNKNOWN and symbol and timeframe else spec.kind
    symbol, interval = symbol or spec.symbol, timeframe or spec.interval
    if kind == FileKind.UNKNOWN or not symbol or not interval:
        raise CsvFormatError(path.name, [Problem(0, "cannot tell symbol and interval from the file name; "
                                                    "pass --symbol and --timeframe")])
    note = ""
    if market is None and spec.market is None:
        note = f"market not in file name: assumed {DEFAULT_MARKET} (pass --exchange-market spot for spot)"
    market = market or spec.market or DEFAULT_MARKET
    if market not in MARKETS:
        raise CsvFormatError(path.name, [Problem(0, f"unknown market {market!r}; expected spot or usdm")])
    table = _parse(kind, path.read_bytes(), path.name, interval)
    exchange, market_type = MARKETS[market]
    with transaction.atomic():
        instrument = instrument_ensure(
            exchange=exchange, exchange_symbol=symbol, market_type=market_type, data_source=data_source
        )
        rows_new = _write(kind, instrument.pk, interval, table)
    return ImportResult(path.name, kind, str(instrument), interval, table.rows, rows_new, note)


def _parse(kind: str, data: bytes, name: str, interval: str) -> csvformat.ParsedTable:
    if kind == FileKind.CANDLES:
        return csvformat.parse_candles(data, name, interval)
    if kind == FileKind.FUNDING:
        return csvformat.parse_funding(data, name)
    return csvformat.parse_open_interest(data, name, interval)


def _write(kind: str, instrument_id: int, interval: str, table: csvformat.ParsedTable) -> int:
    if kind == FileKind.CANDLES:
        return candles_upsert(instrument_id=instrument_id, timeframe=interval, frame=table.frame)
    if kind == FileKind.FUNDING:
        derivatives_kind = DerivativesKind.FUNDING
    else:
        derivatives_kind = DerivativesKind.OPEN_INTEREST
    return derivatives_upsert(instrument_id=instrument_id, kind=derivatives_kind, period=interval, frame=table.frame)


def _datetimes_to_ms(values: list) -> np.ndarray:
    """Return epoch ms for DB datetimes: strings on SQLite, aware or naive UTC datetimes elsewhere."""
    if not values:
        return np.array([], dtype="int64")
    if isinstance(values[0], str):
        return np.array(values, dtype="datetime64[ms]").astype("int64")
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("ms").asi8.copy()


# Read times as text and parse them with numpy: the drivers' per-row datetime objects cost
# seconds per million candles. CAST(... AS CHAR) gives text on SQLite and MariaDB alike.
_OPEN_TIME_TEXT = "CAST(open_time AS CHAR)"


def candle_open_times_ms(instrument_id: int, timeframe: str, start_ms: int | None = None) -> np.ndarray:
    """Return the stored open times (epoch ms, ascending) of one series, from `start_ms` on."""
    qn = connection.ops.quote_name
    sql = f"SELECT {_OPEN_TIME_TEXT} FROM {qn(Candle._meta.db_table)} WHERE instrument_id = %s AND timeframe = %s"
    params: list = [instrument_id, timeframe]
    if start_ms is not None:
        sql += f" AND {qn('open_time')} >= %s"
        params.append(ms_to_db_datetimes(np.array([start_ms]))[0])
    with connection.cursor() as cursor:
        cursor.execute(sql + f" ORDER BY {qn('open_time')}", params)
        return _datetimes_to_ms([row[0] for row in cursor.fetchall()])


def candle_numbers(instrument_id: int, timeframe: str, start_ms: int, end_ms: int) -> pd.DataFrame:
    """Return stored candles with open time in [start_ms, end_ms) as float64 (column open_time_ms)."""
    qn = connection.ops.quote_name
    columns = ["open_time", *csvformat.CANDLE_COLUMNS]
    start, end = ms_to_db_datetimes(np.array([start_ms, end_ms]))
    sql = (f"SELECT {_OPEN_TIME_TEXT}, {', '.join(qn(c) for c in columns[1:])} FROM {qn(Candle._meta.db_table)} "
           f"WHERE instrument_id = %s AND timeframe = %s AND {qn('open_time')} >= %s AND {qn('open_time')} < %s "
           f"ORDER BY {qn('open_time')}")
    with connection.cursor() as cursor:
        cursor.execute(sql, [instrument_id, timeframe, start, end])
        rows = cursor.fetchall()
    frame = pd.DataFrame.from_records(rows, columns=columns)
    out = pd.DataFrame({"open_time_ms": _datetimes_to_ms(frame["open_time"].tolist())})
    for column in csvformat.CANDLE_COLUMNS:
        out[column] = np.array(frame[column].to_numpy(), dtype="float64")
    return out


def resample_missing(instrument: Instrument, target_timeframe: str, source_timeframe: str = "1m") -> int:
    """Build `target_timeframe` candles from stored `source_timeframe` ones where missing; return rows added.

    Only buckets whose every source bar is stored are built, and stored target candles are
    never overwritten, so the exchange's own candles win over derived ones.
    """
    step = timeframe_ms(target_timeframe)
    source_times = candle_open_times_ms(instrument.pk, source_timeframe)
    if not len(source_times):
        return 0
    existing = candle_open_times_ms(instrument.pk, target_timeframe)
    ones = pd.DataFrame({"open_time_ms": source_times, "open": np.ones(len(source_times))})
    complete = resample(ones, source_timeframe, target_timeframe)["open_time_ms"].to_numpy()
    wanted = np.setdiff1d(complete, existing)
    if not len(wanted):
        return 0
    numbers = candle_numbers(instrument.pk, source_timeframe, int(wanted[0]), int(wanted[-1]) + step)
    built = resample(numbers, source_timeframe, target_timeframe)
    built = built[np.isin(built["open_time_ms"].to_numpy(), wanted)]
    return candles_upsert(instrument_id=instrument.pk, timeframe=target_timeframe, frame=to_decimal_strings(built))


def gap_report(instruments=None, timeframe: str | None = None) -> list[GapReportRow]:
    """Return first/last/rows/gaps per stored (instrument, timeframe) series, optionally filtered."""
    pairs = Candle.objects.all()
    if instruments is not None:
        pairs = pairs.filter(instrument__in=instruments)
    if timeframe:
        pairs = pairs.filter(timeframe=timeframe)
    keys = sorted(set(pairs.values_list("instrument_id", "timeframe").distinct().order_by()),
                  key=lambda k: (k[0], timeframe_ms(k[1])))
    names = {i.pk: str(i) for i in Instrument.objects.filter(pk__in={k[0] for k in keys})}
    return [
        GapReportRow(names[pk], tf, summarize(candle_open_times_ms(pk, tf), tf))
        for pk, tf in keys
    ]
