"""Turn uploaded bytes into checked, normalised manual inputs or a list of problems. Pure: no Django, no I/O.

Every check that needs no database lives here: size, encoding, JSON syntax, the schema, and the
rules between fields (price bands, duplicates, times against `now`). Nothing is partly accepted:
a file with one problem yields no rows.
"""
from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Generic, TypeVar

from market.manual.schemas import (
    ETF_FLOWS_SCHEMA,
    LIQUIDATION_ZONES_SCHEMA,
    Problem,
    pointer,
    to_decimal,
    validate,
)

T = TypeVar("T")
CENT = Decimal("0.01")
PRICE_STEP = Decimal("1E-10")
DEFAULT_MAX_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class EtfFlowRow:
    asset: str
    fund: str                   # upper-case ticker
    date: date
    net_flow_usd: Decimal       # 2 places, negative = outflow
    known_at: datetime          # aware UTC
    path: str                   # where the row sits in the file, for later messages


@dataclass(frozen=True, slots=True)
class EtfFlowsFile:
    asset: str
    source: str
    known_at: datetime          # the file's known_at, or `now` when the file states none
    known_at_stated: bool
    rows: tuple[EtfFlowRow, ...]


@dataclass(frozen=True, slots=True)
class LiquidationZoneRow:
    side: str                   # "long" or "short"
    price_low: Decimal
    price_high: Decimal
    size_usd: Decimal
    path: str


@dataclass(frozen=True, slots=True)
class LiquidationZonesFile:
    exchange: str
    symbol: str
    data_source: str
    source: str
    known_at: datetime
    known_at_stated: bool
    valid_until: datetime | None
    rows: tuple[LiquidationZoneRow, ...]


@dataclass(frozen=True, slots=True)
class Parsed(Generic[T]):
    """A parsed file, or None and the problems that stopped it."""

    value: T | None
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return self.value is not None and not self.problems


class JsonObject(dict):
    """A decoded JSON object that remembers keys given more than once (json keeps only the last)."""

    duplicate_keys: tuple[str, ...] = ()


def _object(pairs):
    obj = JsonObject(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        obj.duplicate_keys = tuple(k for k, _ in pairs if k in seen or seen.add(k))
    return obj


def _reject_constant(name):
    raise ValueError(f"{name} is not a number in JSON; write a decimal number")


def format_size(size_bytes: int) -> str:
    """Return a byte count for people: 12 bytes, 900 KiB, 1.5 MiB."""
    if size_bytes < 1024:
        return f"{size_bytes} bytes"
    if size_bytes < 1024 * 1024:
        return f"{size_bytes / 1024:.0f} KiB"
    return f"{size_bytes / 1024 / 1024:.1f} MiB".replace(".0 MiB", " MiB")


def size_problem(size_bytes: int, max_bytes: int) -> Problem | None:
    """Return the problem of a file of `size_bytes`, or None if its size is acceptable."""
    if size_bytes == 0:
        return Problem("", "the file is empty")
    if size_bytes > max_bytes:
        return Problem("", f"the file is {format_size(size_bytes)}; the limit is {format_size(max_bytes)}")
    return None


def load_json(content: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[object, list[Problem]]:
    """Return the decoded JSON document of UTF-8 `content` (decimals as Decimal), or problems."""
    problem = size_problem(len(content), max_bytes)
    if problem:
        return None, [problem]
    if content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return None, [Problem("", "the file is UTF-16 (it starts with a byte-order mark); save it as UTF-8")]
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = content.count(b"\n", 0, exc.start) + 1
        column = exc.start - (content.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, [Problem("", f"the file is not UTF-8: byte 0x{content[exc.start]:02x} at line {line}, "
                                  f"column {column}; save it as UTF-8")]
    # Some editors start UTF-8 files with a byte-order mark; it carries no data.
    text = text.removeprefix("\ufeff")
    if not text.strip():
        return None, [Problem("", "the file is empty")]
    try:
        document = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant, object_pairs_hook=_object)
    except json.JSONDecodeError as exc:
        return None, [Problem("", f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")]
    except (ValueError, RecursionError) as exc:
        return None, [Problem("", f"malformed JSON: {exc or 'nested too deeply'}")]
    return document, []


def parse_datetime(value: str) -> datetime:
    """Return an RFC 3339 date-time string (already validated) as an aware UTC datetime."""
    return datetime.fromisoformat(value.upper().replace(" ", "T")).astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _has_problem(problems: list[Problem], path: str) -> bool:
    return any(p.path == path or p.path.startswith(path + "/") for p in problems)


def _known_at(document: dict, path: str, problems: list[Problem], now: datetime) -> tuple[datetime | None, bool]:
    """Return the stated known_at at `path` (checked against `now`) and whether it was stated."""
    key = path.rsplit("/", 1)[1]
    if key not in document:
        return None, False
    if _has_problem(problems, path):
        return None, True
    known_at = parse_datetime(document[key])
    if known_at > now:
        problems.append(Problem(path, f"{_iso(known_at)} is in the future (now is {_iso(now)}); known_at may be "
                                      "earlier than the upload, never later"))
        return None, True
    return known_at, True


def parse_etf_flows(content: bytes, *, now: datetime, max_bytes: int = DEFAULT_MAX_BYTES) -> Parsed[EtfFlowsFile]:
    """Return the ETF flows of an upload, known_at defaulting to `now` (aware UTC), or every problem."""
    document, problems = load_json(content, max_bytes=max_bytes)
    if problems:
        return Parsed(None, tuple(problems))
    problems = validate(document, ETF_FLOWS_SCHEMA)
    if not isinstance(document, dict) or not isinstance(document.get("flows"), list):
        return Parsed(None, tuple(problems))
    file_known_at, stated = _known_at(document, "/known_at", problems, now)
    file_ok = not stated or file_known_at is not None
    asset = str(document.get("asset", "BTC")).upper()
    rows, first_seen = [], {}
    for i, item in enumerate(document["flows"]):
        path = pointer("/flows", i)
        if _has_problem(problems, path) or not file_ok:
            continue
        row_known_at, row_stated = _known_at(item, path + "/known_at", problems, now)
        if row_stated and row_known_at is None:
            continue
        row = _etf_row(item, asset, row_known_at or file_known_at or now, path, now, problems)
        if row is None:
            continue
        key = (row.fund, row.date)
        if key in first_seen:
            problems.append(Problem(path + "/fund", f"duplicate: {row.fund} on {row.date} is already at "
                                                    f"{first_seen[key]}"))
            continue
        first_seen[key] = path
        rows.append(row)
    if problems:
        return Parsed(None, tuple(problems))
    return Parsed(EtfFlowsFile(asset=asset, source=document["source"].strip(), known_at=file_known_at or now,
                               known_at_stated=stated, rows=tuple(rows)), ())


def _etf_row(item: dict, asset: str, known_at: datetime, path: str, now: datetime,
             problems: list[Problem]) -> EtfFlowRow | None:
    day = date.fromisoformat(item["date"])
    if day > now.astimezone(UTC).date():
        problems.append(Problem(path + "/date", f"{day} is in the future (today is {now.astimezone(UTC).date()} UTC)"))
        return None
    if day > known_at.date():
        problems.append(Problem(path + "/date", f"the flow of {day} cannot be known at {_iso(known_at)}, before "
                                                "its day; fix known_at or the date"))
        return None
    return EtfFlowRow(asset=asset, fund=item["fund"].upper(), date=day,
                      net_flow_usd=to_decimal(item["net_flow_usd"]).quantize(CENT), known_at=known_at, path=path)


def parse_liquidation_zones(content: bytes, *, now: datetime,
                            max_bytes: int = DEFAULT_MAX_BYTES) -> Parsed[LiquidationZonesFile]:
    """Return the liquidation zones of an upload, known_at defaulting to `now` (aware UTC), or every problem."""
    document, problems = load_json(content, max_bytes=max_bytes)
    if problems:
        return Parsed(None, tuple(problems))
    problems = validate(document, LIQUIDATION_ZONES_SCHEMA)
    if not isinstance(document, dict) or not isinstance(document.get("zones"), list):
        return Parsed(None, tuple(problems))
    known_at, stated = _known_at(document, "/known_at", problems, now)
    known_at = known_at or now
    valid_until = None
    if document.get("valid_until") is not None and not _has_problem(problems, "/valid_until"):
        valid_until = parse_datetime(document["valid_until"])
        if valid_until <= known_at:
            problems.append(Problem("/valid_until", f"{_iso(valid_until)} must be after known_at {_iso(known_at)}"))
    rows, first_seen = [], {}
    for i, item in enumerate(document["zones"]):
        path = pointer("/zones", i)
        if _has_problem(problems, path):
            continue
        row = LiquidationZoneRow(side=item["side"], price_low=to_decimal(item["price_low"]).quantize(PRICE_STEP),
                                 price_high=to_decimal(item["price_high"]).quantize(PRICE_STEP),
                                 size_usd=to_decimal(item["size_usd"]).quantize(CENT), path=path)
        if row.price_low > row.price_high:
            problems.append(Problem(path + "/price_low", f"price_low {row.price_low.normalize():f} is above "
                                                         f"price_high {row.price_high.normalize():f}"))
            continue
        key = (row.side, row.price_low, row.price_high)
        if key in first_seen:
            problems.append(Problem(path, f"duplicate: the same {row.side} band is already at {first_seen[key]}"))
            continue
        first_seen[key] = path
        rows.append(row)
    if problems:
        return Parsed(None, tuple(problems))
    return Parsed(LiquidationZonesFile(
        exchange=document.get("exchange", "binanceusdm"), symbol=document["symbol"].strip(),
        data_source=document.get("data_source", "exchange"), source=document["source"].strip(),
        known_at=known_at, known_at_stated=stated, valid_until=valid_until, rows=tuple(rows)), ())
