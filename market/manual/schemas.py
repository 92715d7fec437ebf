"""JSON schemas of the manual-input uploads and a small validator for them. Pure: no Django, no I/O.

The schemas are JSON Schema (draft 2020-12) documents, offered for download so a person or a tool
can check a file before sending it. `validate` interprets the subset of keywords they use and
reports every problem as a JSON-pointer path and a sentence. One extension: `format: decimal`
accepts a JSON number or a decimal string ("1234.50"), and `exclusiveMinimum` / `multipleOf` /
`exclusiveMaximum` then apply to the value of either, so money never has to pass through a float.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

DRAFT = "https://json-schema.org/draft/2020-12/schema"
DECIMAL_RE = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
DATE_TIME_RE = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?([Zz]|[+-][0-9]{2}:[0-9]{2})$")
MAX_ROWS = 10_000
# DecimalField(max_digits=20, decimal_places=2) holds magnitudes below 10**18.
MONEY_LIMIT = 10**18


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an upload: where (JSON pointer, "" = the whole file) and why."""

    path: str
    reason: str

    def __str__(self):
        return f"{self.path or 'file'}: {self.reason}"


def _money(description: str, *, positive: bool) -> dict:
    schema = {"type": ["number", "string"], "format": "decimal", "multipleOf": 0.01,
              "exclusiveMaximum": MONEY_LIMIT, "description": description}
    if positive:
        schema["exclusiveMinimum"] = 0
    else:
        schema["exclusiveMinimum"] = -MONEY_LIMIT
    return schema


_PRICE = {"type": ["number", "string"], "format": "decimal", "exclusiveMinimum": 0, "multipleOf": 1e-10,
          "exclusiveMaximum": MONEY_LIMIT, "description": "USD(T) price, > 0, at most 10 decimal places"}
_KNOWN_AT = {"type": "string", "format": "date-time",
             "description": "when the figures became known (RFC 3339 with offset); default: the upload moment; "
                            "may be earlier, never later than the upload"}
_SOURCE = {"type": "string", "minLength": 1, "maxLength": 64, "description": "where the figures come from"}

ETF_FLOWS_SCHEMA: dict = {
    "$schema": DRAFT,
    "$id": "tradingbot/manual/etf_flows.schema.json",
    "title": "ETF flows upload",
    "description": "Daily net creations/redemptions of spot ETFs in USD, one row per fund and trading day.",
    "type": "object",
    "required": ["kind", "source", "flows"],
    "additionalProperties": False,
    "properties": {
        "kind": {"const": "etf_flows"},
        "asset": {"type": "string", "pattern": "^[A-Za-z0-9]{1,8}$", "default": "BTC",
                  "description": "underlying asset of every fund in the file"},
        "source": _SOURCE,
        "known_at": _KNOWN_AT,
        "flows": {
            "type": "array", "minItems": 1, "maxItems": MAX_ROWS,
            "items": {
                "type": "object",
                "required": ["date", "fund", "net_flow_usd"],
                "additionalProperties": False,
                "properties": {
                    "date": {"type": "string", "format": "date", "description": "trading day (YYYY-MM-DD)"},
                    "fund": {"type": "string", "pattern": "^[A-Za-z0-9.]{1,16}$", "description": "ticker, e.g. IBIT"},
                    "net_flow_usd": _money("net flow in USD, negative = outflow, at most 2 decimals",
                                           positive=False),
                    "known_at": {**_KNOWN_AT, "description": "overrides the file's known_at for this row"},
                },
            },
        },
    },
}

LIQUIDATION_ZONES_SCHEMA: dict = {
    "$schema": DRAFT,
    "$id": "tradingbot/manual/liquidation_zones.schema.json",
    "title": "Liquidation zones upload",
    "description": "Price bands where leveraged positions of one side would be liquidated, for one instrument.",
    "type": "object",
    "required": ["kind", "symbol", "source", "zones"],
    "additionalProperties": False,
    "properties": {
        "kind": {"const": "liquidation_zones"},
        "exchange": {"type": "string", "minLength": 1, "maxLength": 32, "default": "binanceusdm",
                     "description": "ccxt exchange id"},
        "symbol": {"type": "string", "minLength": 1, "maxLength": 64,
                   "description": "ccxt symbol (BTC/USDT:USDT) or venue id (BTCUSDT)"},
        "data_source": {"enum": ["exchange", "replay", "simulated"], "default": "exchange",
                        "description": "which instrument row: real exchange data, replay or simulation"},
        "source": _SOURCE,
        "known_at": _KNOWN_AT,
        "valid_until": {"type": ["string", "null"], "format": "date-time", "default": None,
                        "description": "end of validity; null = until the next upload of the same "
                                       "instrument and source"},
        "zones": {
            "type": "array", "minItems": 1, "maxItems": MAX_ROWS,
            "items": {
                "type": "object",
                "required": ["side", "price_low", "price_high", "size_usd"],
                "additionalProperties": False,
                "properties": {
                    "side": {"enum": ["long", "short"], "description": "whose positions get liquidated"},
                    "price_low": _PRICE,
                    "price_high": {**_PRICE, "description": "USD(T) price, >= price_low"},
                    "size_usd": _money("notional that would be liquidated, USD, > 0", positive=True),
                },
            },
        },
    },
}

ETF_FLOWS_EXAMPLE: dict = {
    "kind": "etf_flows",
    "asset": "BTC",
    "source": "issuer websites",
    "known_at": "2024-03-12T13:30:00Z",
    "flows": [
        {"date": "2024-03-11", "fund": "IBIT", "net_flow_usd": "562900000.00"},
        {"date": "2024-03-11", "fund": "GBTC", "net_flow_usd": "-494100000"},
        {"date": "2024-03-11", "fund": "FBTC", "net_flow_usd": 215500000},
        {"date": "2024-03-08", "fund": "IBIT", "net_flow_usd": "294200000", "known_at": "2024-03-09T13:30:00Z"},
    ],
}

LIQUIDATION_ZONES_EXAMPLE: dict = {
    "kind": "liquidation_zones",
    "exchange": "binanceusdm",
    "symbol": "BTCUSDT",
    "source": "heatmap, 24h window",
    "known_at": "2024-03-12T08:00:00Z",
    "valid_until": "2024-03-13T08:00:00Z",
    "zones": [
        {"side": "long", "price_low": "68000", "price_high": "68500", "size_usd": "310000000"},
        {"side": "short", "price_low": 73200.5, "price_high": 74000, "size_usd": 275000000},
    ],
}

_TYPE_NAMES = {"string": "a string", "number": "a number", "integer": "a whole number", "object": "an object",
               "array": "a list", "boolean": "true or false", "null": "null"}


def pointer(path: str, key: str | int) -> str:
    """Return `path` extended by one JSON-pointer token (RFC 6901 escaping)."""
    return f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"


def json_type(value) -> str:
    """Return the JSON type name of a value decoded by json.loads."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, (float, Decimal)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def show(value) -> str:
    """Return a short printable form of a JSON value for a message."""
    text = repr(value) if isinstance(value, str) else ("null" if value is None else str(value).lower()
                                                       if isinstance(value, bool) else str(value))
    return text if len(text) <= 60 else text[:57] + "..."


def validate(value, schema: dict, path: str = "") -> list[Problem]:
    """Return every problem of `value` against `schema` (the keywords used by this module's schemas)."""
    if "const" in schema and value != schema["const"]:
        return [Problem(path, f"must be {show(schema['const'])}, got {show(value)}")]
    if "enum" in schema and value not in schema["enum"]:
        return [Problem(path, f"must be one of {', '.join(show(v) for v in schema['enum'])}; got {show(value)}")]
    if "type" in schema and not _type_ok(value, schema["type"]):
        return [Problem(path, f"expected {_expected(schema['type'])}, got {json_type(value)} {show(value)}")]
    if isinstance(value, dict):
        return _validate_object(value, schema, path)
    if isinstance(value, list):
        return _validate_array(value, schema, path)
    if isinstance(value, str):
        problem = _string_problem(value, schema)
        if problem:
            return [Problem(path, problem)]
    if schema.get("format") == "decimal" and value is not None:
        problem = _decimal_problem(value, schema)
        if problem:
            return [Problem(path, problem)]
    return []


def _type_ok(value, expected) -> bool:
    names = expected if isinstance(expected, list) else [expected]
    actual = json_type(value)
    return actual in names or (actual == "integer" and "number" in names)


def _expected(expected) -> str:
    names = expected if isinstance(expected, list) else [expected]
    return " or ".join(_TYPE_NAMES.get(n, n) for n in names)


def _validate_object(value: dict, schema: dict, path: str) -> list[Problem]:
    properties = schema.get("properties", {})
    problems = [Problem(pointer(path, key), "appears twice in the same object")
                for key in getattr(value, "duplicate_keys", ())]
    for key in schema.get("required", []):
        if key not in value:
            problems.append(Problem(pointer(path, key), "required"))
    for key, item in value.items():
        if key in properties:
            problems.extend(validate(item, properties[key], pointer(path, key)))
        elif schema.get("additionalProperties", True) is False:
            problems.append(Problem(pointer(path, key), f"unknown key; expected one of: {', '.join(properties)}"))
    return problems


def _validate_array(value: list, schema: dict, path: str) -> list[Problem]:
    if len(value) < schema.get("minItems", 0):
        return [Problem(path, "must not be empty" if schema["minItems"] == 1
                        else f"needs at least {schema['minItems']} items, got {len(value)}")]
    if len(value) > schema.get("maxItems", len(value)):
        return [Problem(path, f"holds {len(value)} items; at most {schema['maxItems']} per file")]
    items = schema.get("items", {})
    return [p for i, item in enumerate(value) for p in validate(item, items, pointer(path, i))]


def _string_problem(value: str, schema: dict) -> str | None:
    if len(value) < schema.get("minLength", 0):
        return "must not be empty" if schema["minLength"] == 1 else f"shorter than {schema['minLength']} characters"
    if len(value) > schema.get("maxLength", len(value)):
        return f"longer than {schema['maxLength']} characters"
    if "pattern" in schema and not re.search(schema["pattern"], value):
        return f"{show(value)} does not match {schema['pattern']}"
    fmt = schema.get("format")
    if fmt == "date":
        return _date_problem(value)
    if fmt == "date-time":
        return _date_time_problem(value)
    return None


def _date_problem(value: str) -> str | None:
    if not DATE_RE.match(value):
        return f"expected a date YYYY-MM-DD, got {show(value)}"
    try:
        date.fromisoformat(value)
    except ValueError:
        return f"{show(value)} is not a calendar date"
    return None


def _date_time_problem(value: str) -> str | None:
    if not DATE_TIME_RE.match(value):
        return f"expected a date-time with a UTC offset such as 2024-03-12T13:30:00Z, got {show(value)}"
    try:
        datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return f"{show(value)} is not a valid date and time"
    return None


def to_decimal(value) -> Decimal | None:
    """Return a JSON number or decimal string as a Decimal, or None if it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return Decimal(value) if DECIMAL_RE.match(value) else None
    try:
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return None
    return number if number.is_finite() else None


def _decimal_problem(value, schema: dict) -> str | None:
    number = to_decimal(value)
    if number is None:
        return f"expected a decimal number such as 1234.56 or \"1234.56\", got {show(value)}"
    low = schema.get("exclusiveMinimum")
    if low is not None and number <= Decimal(str(low)):
        return "must be greater than 0" if low == 0 else f"must be greater than {low}"
    high = schema.get("exclusiveMaximum")
    if high is not None and number >= Decimal(str(high)):
        return f"must be less than {high}"
    step = schema.get("multipleOf")
    # Steps are powers of ten here, so "multiple of 0.01" is "at most 2 decimal places"; counting digits
    # avoids Decimal's 28-digit context, which a huge quotient would overflow.
    if step is not None and decimal_places(number) > decimal_places(Decimal(str(step))):
        return f"at most {decimal_places(Decimal(str(step)))} decimal places, got {show(value)}"
    return None


def decimal_places(number: Decimal) -> int:
    """Return how many digits after the point `number` needs (trailing zeros do not count)."""
    sign, digits, exponent = number.as_tuple()
    digits = list(digits)
    if not any(digits):
        return 0
    while exponent < 0 and len(digits) > 1 and digits[-1] == 0:
        digits.pop()
        exponent += 1
    return max(0, -exponent)
