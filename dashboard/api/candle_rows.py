"""A page of candles as finished JSON text: what CandleSerializer prints, made without it.

Why: the candles endpoint serves pages of hundreds of bars. Reading 500 rows as Decimals and
datetimes, printing 4,500 Decimals without trailing zeros and rendering 500 dicts took about
15 ms of CPU a request on MariaDB, most of the API's cost under load (bench/README.md, API under
load). On MariaDB the database writes each row's JSON object itself (CONCAT of the columns as
text, trailing zeros trimmed, times as ISO-8601 UTC); Python only joins the rows. Other databases
(SQLite in development and tests) get the same text from Python. The tests check both against
CandleSerializer's output.
"""
from __future__ import annotations

import json

from django.db import connection
from django.db.models import DateTimeField, DecimalField, F, Func, IntegerField, TextField
from rest_framework.renderers import JSONRenderer

from dashboard.api.fields import iso_utc, plain
from dashboard.api.rendering import RawJSON
from dashboard.api.serializers_market import CandleSerializer
from market.models import Candle

# MariaDB's DATE_FORMAT; a time with microseconds prints them, as datetime.isoformat() does.
_SECONDS_FORMAT = "%Y-%m-%dT%H:%i:%sZ"
_MICROSECONDS_FORMAT = "%Y-%m-%dT%H:%i:%s.%fZ"


def _kind(name: str) -> str:
    field = Candle._meta.get_field(name)
    if isinstance(field, DecimalField):
        # Trimming zeros is only right after a decimal point: a column without decimal places has none.
        assert field.decimal_places > 0, f"Candle.{name} has no decimal places"
        return "decimal"
    if isinstance(field, DateTimeField):
        return "time"
    if isinstance(field, IntegerField):
        return "integer"
    raise TypeError(f"Candle.{name}: no fast JSON for {type(field).__name__}")


# (name, kind) of every column CandleSerializer prints, in its order.
COLUMNS: tuple[tuple[str, str], ...] = tuple((name, _kind(name)) for name in CandleSerializer.Meta.fields)


class CandleRowJSON(Func):
    """MariaDB: one candle row as the JSON object CandleSerializer + JSONRenderer would write."""

    output_field = TextField()

    def __init__(self):
        super().__init__(*(F(name) for name, _ in COLUMNS))

    def as_sql(self, compiler, connection, **extra):
        if connection.vendor != "mysql":
            raise NotImplementedError("CandleRowJSON is MariaDB/MySQL SQL; use candle_rows_json()")
        pieces, params = [], []
        for index, ((name, kind), column) in enumerate(zip(COLUMNS, self.get_source_expressions())):
            sql, column_params = compiler.compile(column)
            value_sql, value_params = _value_sql(kind, sql, column_params)
            pieces.append(f"%s, COALESCE({value_sql}, 'null')")
            params.extend([("{" if index == 0 else ",") + json.dumps(name) + ":", *value_params])
        return f"CONCAT({', '.join(pieces)}, '}}')", params


def _value_sql(kind: str, sql: str, params: list) -> tuple[str, list]:
    """SQL printing one column as a JSON value, NULL for NULL (the caller prints null)."""
    if kind == "decimal":
        # A DECIMAL(p, s) with s > 0 prints as "65000.1200000000": trimmed as fields.plain() prints it.
        return f"""CONCAT('"', TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM {sql})), '"')""", [*params]
    if kind == "time":
        # DATETIME columns hold UTC (Django writes them so); DATE_FORMAT does not convert them.
        return (f"""CONCAT('"', DATE_FORMAT({sql}, IF(MICROSECOND({sql}) = 0, %s, %s)), '"')""",
                [*params, *params, _SECONDS_FORMAT, _MICROSECONDS_FORMAT])
    return f"CAST({sql} AS CHAR)", [*params]


def candle_rows_json(queryset, offset: int, limit: int) -> RawJSON:
    """Return rows [offset, offset + limit) of a candle queryset (filtered, ordered) as a JSON array."""
    if connection.vendor == "mysql":
        rows = queryset.values_list(CandleRowJSON(), flat=True)[offset:offset + limit]
        return RawJSON("[" + ",".join(rows) + "]")
    names = [name for name, _ in COLUMNS]
    formats = [_python_format(kind) for _, kind in COLUMNS]
    rows = [{name: None if value is None else form(value) for name, form, value in zip(names, formats, row)}
            for row in queryset.values_list(*names)[offset:offset + limit]]
    return RawJSON(JSONRenderer().render(rows).decode())


def _python_format(kind: str):
    return {"decimal": plain, "time": iso_utc, "integer": int}[kind]
