"""Parse and validate market-data CSV files. Pure: bytes in, frames out; no Django, no I/O.

Two candle layouts are read: the 12-column Binance data dump (data.binance.vision, with or
without header, open time in ms or µs) and the 10-column recordings of MARKET_DATA_DIR
(header open_time_ms,...). Funding and open-interest recordings have their own layouts.
Every check runs on whole columns (numpy/pandas) and reports file name and line number.
"""
from __future__ import annotations

import gzip
import io
import re
import zipfile
import zlib
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from market.timeframes import TIMEFRAME_MS, floor_open_time_ms, timeframe_ms

CANDLE_COLUMNS = (
    "open", "high", "low", "close", "volume", "quote_volume", "trades", "taker_buy_base", "taker_buy_quote",
)
RECORDED_CANDLE_HEADER = ("open_time_ms", *CANDLE_COLUMNS)
DUMP_CANDLE_HEADER = (
    "open_time", "open", "high", "low", "close", "volume", "close_time",
    "quote_volume", "trades", "taker_buy_base", "taker_buy_quote", "ignore",
)
FUNDING_HEADER = ("funding_time_ms", "funding_rate", "mark_price")
OPEN_INTEREST_HEADER = ("timestamp_ms", "open_interest", "open_interest_value")
MAX_PROBLEMS = 20
# Epoch ms stay below 1e14 until the year 5138; epoch µs passed it in 1973. Binance spot
# dumps switched to µs on 2025-01-01 (data.binance.vision changelog).
_MICROSECONDS_FROM = 10**14


class FileKind(StrEnum):
    CANDLES = "candles"
    FUNDING = "funding"
    OPEN_INTEREST = "open_interest"
    ORDER_BOOK = "order_book"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class FileSpec:
    """What a file name says: kind, market (spot/usdm), symbol and interval or period."""

    kind: FileKind
    market: str | None = None
    symbol: str | None = None
    interval: str | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    line: int  # 1-based line of the decompressed CSV; 0 for the file as a whole
    message: str


class CsvFormatError(ValueError):
    """A file failed validation: nothing of it may be written. The operator fixes the file."""

    def __init__(self, name: str, problems: list[Problem], total: int | None = None):
        self.name = name
        self.problems = problems
        self.total = len(problems) if total is None else total
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        """Return one human-readable line per reported problem, plus a count of the rest."""
        out = [f"{self.name}: line {p.line}: {p.message}" if p.line else f"{self.name}: {p.message}"
               for p in self.problems]
        if self.total > len(self.problems):
            out.append(f"{self.name}: {self.total} problems in total, {self.total - len(self.problems)} not shown")
        return out


@dataclass(frozen=True)
class ParsedTable:
    """Validated rows sorted by time: `frame` holds decimal strings (None if empty), `numbers` floats."""

    frame: pd.DataFrame  # int64 time column (ms) + value columns as str/None, as read
    numbers: pd.DataFrame  # same rows and columns, float64 (NaN if empty)

    @property
    def rows(self) -> int:
        return len(self.frame)


_RECORDED_NAME = re.compile(r"^binance_(spot|usdm)_([A-Z0-9]+)_([A-Za-z0-9-]+)_\d{4}-\d{2}-\d{2}")
_DUMP_NAME = re.compile(r"^([A-Z0-9]+)-(\d+[mhdw])-\d{4}-\d{2}(?:-\d{2})?\.(?:csv|zip)")
_OPEN_INTEREST_PART = re.compile(r"^openinterest-(\w+)$")


def parse_file_name(name: str) -> FileSpec:
    """Return what the file name says; FileKind.UNKNOWN when it follows no known pattern."""
    if "depth" in name or "book-snapshot" in name or "bookTicker" in name:
        return FileSpec(FileKind.ORDER_BOOK)
    if match := _RECORDED_NAME.match(name):
        market, symbol, part = match.groups()
        if part in TIMEFRAME_MS:
            return FileSpec(FileKind.CANDLES, market, symbol, part)
        if part == "funding":
            return FileSpec(FileKind.FUNDING, market, symbol, "8h")
        if oi := _OPEN_INTEREST_PART.match(part):
            return FileSpec(FileKind.OPEN_INTEREST, market, symbol, oi.group(1))
        return FileSpec(FileKind.UNKNOWN, market, symbol)
    if (match := _DUMP_NAME.match(name)) and match.group(2) in TIMEFRAME_MS:
        return FileSpec(FileKind.CANDLES, None, match.group(1), match.group(2))
    return FileSpec(FileKind.UNKNOWN)


def decompress(data: bytes, name: str) -> bytes:
    """Return the CSV bytes of a plain, gzip or single-member zip file; raise CsvFormatError if corrupt."""
    try:
        if data[:2] == b"\x1f\x8b":
            return gzip.decompress(data)
        if data[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = [m for m in archive.namelist() if m.lower().endswith(".csv")]
                if len(members) != 1:
                    raise CsvFormatError(name, [Problem(0, f"zip must hold exactly one .csv, found {len(members)}")])
                return archive.read(members[0])
    except (EOFError, OSError, zlib.error, zipfile.BadZipFile) as exc:
        raise CsvFormatError(name, [Problem(0, f"corrupt or truncated archive ({exc})")]) from None
    return data


class _Problems:
    """Collect problems column by column; keep the first MAX_PROBLEMS of each check and a total."""

    def __init__(self, name: str, lines: np.ndarray):
        self.name, self.lines, self.items, self.total = name, lines, [], 0

    def add(self, mask: np.ndarray, describe) -> None:
        where = np.flatnonzero(mask)
        self.total += len(where)
        self.items += [Problem(int(self.lines[i]), describe(i)) for i in where[:MAX_PROBLEMS]]

    def raise_if_any(self) -> None:
        if self.total:
            shown = sorted(self.items, key=lambda p: p.line)[:MAX_PROBLEMS]
            raise CsvFormatError(self.name, shown, self.total)


def _line_layout(raw: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the start offset, field count and 1-based line number of every non-blank line."""
    buf = np.frombuffer(raw, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10)
    if len(buf) and buf[-1] != 10:
        ends = np.append(ends, len(buf))
    starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
    commas = np.flatnonzero(buf == 44)
    fields = np.searchsorted(commas, ends) - np.searchsorted(commas, starts) + 1
    has_cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == 13) if len(buf) else ends > starts
    keep = ends - starts - has_cr > 0
    numbers = np.arange(1, len(ends) + 1)[keep]
    return starts[keep], fields[keep], numbers


def _split(raw: bytes, name: str, widths: tuple[int, ...]) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, tuple]:
    """Return (cells as str, cells as read by pandas, line numbers, header or ()).

    Check first that every line has one allowed width. The second read lets pandas' C parser
    convert clean numeric columns, which is about ten times faster than pd.to_numeric on strings.
    """
    starts, fields, numbers = _line_layout(raw)
    if not len(numbers):
        raise CsvFormatError(name, [Problem(0, "file is empty")])
    width = int(fields[0])
    if width not in widths:
        expected = " or ".join(map(str, widths))
        raise CsvFormatError(name, [Problem(int(numbers[0]), f"expected {expected} columns, found {width}")])
    problems = _Problems(name, numbers)
    problems.add(fields != width, lambda i: f"expected {width} columns, found {fields[i]}")
    problems.raise_if_any()
    first_cell = raw[starts[0]:starts[0] + 32].split(b",")[0].strip()
    has_header = not first_cell.isdigit()
    header = tuple(raw[starts[0]:].split(b"\n", 1)[0].decode(errors="replace").strip().split(",")) if has_header else ()
    options = dict(header=0 if has_header else None, names=range(width), skip_blank_lines=True, engine="c")
    # object, not str: pandas 3 would copy every cell again into its string dtype.
    table = pd.read_csv(io.BytesIO(raw), dtype=object, keep_default_na=False, na_filter=False, **options)
    parsed = pd.read_csv(io.BytesIO(raw), **options)
    numbers = numbers[1:] if has_header else numbers
    if len(table) != len(numbers):  # a quoted field or stray character the line scan did not see
        raise CsvFormatError(name, [Problem(0, f"read {len(table)} rows from {len(numbers)} lines; malformed CSV")])
    return table, parsed, numbers, header


def _times_ms(cells: pd.Series, parsed: pd.Series, problems: _Problems, label: str) -> np.ndarray:
    """Return epoch ms (int64; -1 where invalid); µs values are converted by magnitude."""
    if parsed.dtype.kind == "i":  # the fast path: every cell was an integer
        as_int = parsed.to_numpy().copy()
        bad = as_int < 0
    else:
        values = pd.to_numeric(cells, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        bad = ~np.isfinite(values) | (values < 0) | (values != np.floor(values))
        as_int = np.where(bad, -1, values).astype("int64")
    problems.add(bad, lambda i: f"{label} {cells.iloc[i]!r} is not an integer timestamp")
    as_int[bad] = -1
    micro = as_int >= _MICROSECONDS_FROM
    problems.add(micro & (as_int % 1000 != 0), lambda i: f"{label} {as_int[i]} µs is not a whole millisecond")
    return np.where(micro, as_int // 1000, as_int)


def _numbers(table: pd.DataFrame, parsed: pd.DataFrame, columns: tuple[str, ...], required: tuple[str, ...],
             problems: _Problems) -> pd.DataFrame:
    """Return float64 columns; flag unparsable or non-finite cells and empty required ones."""
    out = {}
    for column in columns:
        cells, fast = table[column], parsed[column]
        source = fast if fast.dtype.kind in "fi" else pd.to_numeric(cells, errors="coerce")
        values = source.to_numpy(dtype="float64", na_value=np.nan)
        missing = ~np.isfinite(values)
        # Only "" means empty: pandas also reads "NA", "null", ... as NaN, and those are errors.
        empty = missing & (cells == "").to_numpy() if missing.any() else missing
        bad = missing & ~empty
        problems.add(bad, lambda i, c=column, s=cells: f"{c} {s.iloc[i]!r} is not a number")
        if column in required:
            problems.add(empty, lambda i, c=column: f"{c} is empty")
        out[column] = np.where(bad, np.nan, values)
    return pd.DataFrame(out)


def _check_order(ts_ms: np.ndarray, valid: np.ndarray, problems: _Problems, align: str | None) -> np.ndarray:
    """Return the stable sort order; flag duplicate and unaligned timestamps."""
    if align:
        unaligned = valid & (floor_open_time_ms(ts_ms, align) != ts_ms)
        problems.add(unaligned, lambda i: f"time {ts_ms[i]} is not aligned to {align}")
    order = np.argsort(ts_ms, kind="stable")
    ordered = ts_ms[order]
    dup = np.zeros(len(ts_ms), dtype=bool)
    dup[order[1:]] = (ordered[1:] == ordered[:-1]) & valid[order[1:]]
    previous = np.zeros(len(ts_ms), dtype=np.int64)
    previous[order[1:]] = order[:-1]
    problems.add(dup, lambda i: f"duplicate time {ts_ms[i]} (also on line {problems.lines[previous[i]]})")
    return order


def _as_strings(table: pd.DataFrame, columns: tuple[str, ...], order: np.ndarray) -> dict:
    out = {}
    for column in columns:
        cells = table[column].to_numpy(dtype=object)[order]
        cells[cells == ""] = None
        out[column] = cells
    return out


def _finish(table, numbers, ts_ms, order, time_column, columns) -> ParsedTable:
    frame = pd.DataFrame({time_column: ts_ms[order], **_as_strings(table, columns, order)})
    values = numbers.iloc[order].reset_index(drop=True)
    values.insert(0, time_column, ts_ms[order])
    return ParsedTable(frame=frame, numbers=values)


def _candle_checks(n: pd.DataFrame, problems: _Problems) -> None:
    o, h, low, c = (n[k].to_numpy() for k in ("open", "high", "low", "close"))
    for column in ("open", "high", "low", "close"):
        problems.add(n[column].to_numpy() <= 0, lambda i, k=column: f"{k} {n[k].iat[i]} is not positive")
    problems.add(h < np.maximum(o, c), lambda i: f"high {h[i]} is below max(open, close) {max(o[i], c[i])}")
    problems.add(low > np.minimum(o, c), lambda i: f"low {low[i]} is above min(open, close) {min(o[i], c[i])}")
    problems.add(h < low, lambda i: f"high {h[i]} is below low {low[i]}")
    for column in ("volume", "quote_volume", "trades", "taker_buy_base", "taker_buy_quote"):
        problems.add(n[column].to_numpy() < 0, lambda i, k=column: f"{k} {n[k].iat[i]} is negative")


def parse_candles(data: bytes, name: str, timeframe: str) -> ParsedTable:
    """Return validated candles of `timeframe` (column open_time_ms); raise CsvFormatError listing problems."""
    timeframe_ms(timeframe)
    table, parsed, lines, header = _split(decompress(data, name), name, (10, 12))
    layout = DUMP_CANDLE_HEADER if table.shape[1] == 12 else RECORDED_CANDLE_HEADER
    if header and table.shape[1] == 10 and header != RECORDED_CANDLE_HEADER:
        raise CsvFormatError(name, [Problem(1, f"unexpected header {','.join(header)}")])
    table.columns = parsed.columns = layout
    problems = _Problems(name, lines)
    ts_ms = _times_ms(table[layout[0]], parsed[layout[0]], problems, "open time")
    numbers = _numbers(table, parsed, CANDLE_COLUMNS, ("open", "high", "low", "close", "volume"), problems)
    trades = numbers["trades"].to_numpy()
    problems.add(trades % 1 > 0, lambda i: f"trades {table['trades'].iat[i]!r} is not a whole number")
    _candle_checks(numbers, problems)
    order = _check_order(ts_ms, ts_ms >= 0, problems, timeframe)
    problems.raise_if_any()
    return _finish(table, numbers, ts_ms, order, "open_time_ms", CANDLE_COLUMNS)


def _parse_samples(data: bytes, name: str, header: tuple[str, ...], align: str | None) -> tuple:
    table, parsed, lines, found = _split(decompress(data, name), name, (len(header),))
    if found and found != header:
        raise CsvFormatError(name, [Problem(1, f"unexpected header {','.join(found)}; expected {','.join(header)}")])
    table.columns = parsed.columns = header
    problems = _Problems(name, lines)
    ts_ms = _times_ms(table[header[0]], parsed[header[0]], problems, header[0])
    numbers = _numbers(table, parsed, header[1:], header[1:2], problems)
    return table, numbers, ts_ms, problems


def parse_funding(data: bytes, name: str) -> ParsedTable:
    """Return validated funding samples (columns ts_ms, funding_rate, mark_price)."""
    # Binance stamps funding a few ms after the 8-hour mark, so times are not checked for alignment.
    table, numbers, ts_ms, problems = _parse_samples(data, name, FUNDING_HEADER, None)
    problems.add(numbers["mark_price"].to_numpy() <= 0, lambda i: "mark_price is not positive")
    order = _check_order(ts_ms, ts_ms >= 0, problems, None)
    problems.raise_if_any()
    return _finish(table, numbers, ts_ms, order, "ts_ms", FUNDING_HEADER[1:])


def parse_open_interest(data: bytes, name: str, period: str) -> ParsedTable:
    """Return validated open-interest samples of `period` (columns ts_ms, open_interest, open_interest_value)."""
    table, numbers, ts_ms, problems = _parse_samples(data, name, OPEN_INTEREST_HEADER, period)
    for column in OPEN_INTEREST_HEADER[1:]:
        problems.add(numbers[column].to_numpy() < 0, lambda i, k=column: f"{k} {numbers[k].iat[i]} is negative")
    order = _check_order(ts_ms, ts_ms >= 0, problems, period)
    problems.raise_if_any()
    return _finish(table, numbers, ts_ms, order, "ts_ms", OPEN_INTEREST_HEADER[1:])
