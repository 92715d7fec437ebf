"""A page of candles as finished JSON text: what CandleSerializer prints, made without it.

Why: the candles endpoint serves pages of hundreds of bars. Reading 500 rows as Decimals and
datetimes, printing 4,500 Decimals without trailing zeros and rendering 500 dicts took about
15 ms of CPU a request on MariaDB, most of the API's cost under load (bench/README.md, API under
load). On MariaDB the database writes each row's JSON object itself (dashboard.api.row_json:
CONCAT of the columns as text, trailing zeros trimmed, times as ISO-8601 UTC); Python only joins
the rows. Other databases (SQLite in development and tests) get the same text from Python. A
candle has only decimal, time and integer columns, so both print the bytes JSONRenderer would
print from CandleSerializer's output; the tests check both against it.
"""
from __future__ import annotations

from django.db import connection
from rest_framework.renderers import JSONRenderer

from dashboard.api.fields import iso_utc, plain
from dashboard.api.rendering import RawJSON
from dashboard.api.row_json import RowJSON, columns_of
from dashboard.api.serializers_market import CandleSerializer

# (name, lookup, kind) of every column CandleSerializer prints, in its order.
COLUMNS = columns_of(CandleSerializer)
if COLUMNS is None or not {kind for _, _, kind in COLUMNS} <= {"decimal", "time", "number"}:
    raise TypeError("CandleSerializer prints a column candle_rows has no byte-exact form for")


def candle_rows(queryset, offset: int, limit: int) -> list[str]:
    """Return rows [offset, offset + limit) of a candle queryset (filtered, ordered), each as its JSON object."""
    if connection.vendor == "mysql":
        return list(queryset.values_list(RowJSON(COLUMNS), flat=True)[offset:offset + limit])
    names = [name for name, _, _ in COLUMNS]
    formats = [_python_format(kind) for _, _, kind in COLUMNS]
    render = JSONRenderer().render
    return [render({name: None if value is None else form(value) for name, form, value in zip(names, formats, row)})
            .decode() for row in queryset.values_list(*(lookup for _, lookup, _ in COLUMNS))[offset:offset + limit]]


def candle_rows_json(queryset, offset: int, limit: int) -> RawJSON:
    """Return rows [offset, offset + limit) of a candle queryset as one JSON array."""
    return RawJSON("[" + ",".join(candle_rows(queryset, offset, limit)) + "]")


def _python_format(kind: str):
    return {"decimal": plain, "time": iso_utc, "number": int}[kind]
