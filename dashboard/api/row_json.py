"""Rows of a list page as JSON text written by MariaDB: what FastListSerializer prints, without Python per cell.

Why: a page of 50 decisions read as dicts still cost about 5 ms of Python a request: the driver's
converters build a Decimal and a datetime per cell, the JSON columns (rationale, take-profit
ladder) are parsed only to be printed again, and the page is rendered cell by cell. Under 50
clients that CPU is the API's latency (bench/README.md, API under load). On MariaDB the database
writes each row's JSON object itself, CONCAT of its columns as JSON text:

- a Decimal as a quoted string without trailing zeros (fields.plain), a time as ISO-8601 UTC with Z
  (fields.iso_utc), integers and floats as numbers, booleans as true/false;
- text through JSON_QUOTE;
- a JSON column as its stored text: Django stored it with json.dumps, so it is valid JSON already
  (the column's CHECK json_valid holds it so).

The text parses to exactly the serializer's value (tests/dashboard/api/test_api_row_json.py checks
every list endpoint). The bytes may differ where the value does not: stored JSON keeps its spaces
and \\u escapes, and a float may print as 1e-07 or 0.0000001.

Only serializers whose every field is a stored column print this way (fields.value_lookups), and
only on MariaDB/MySQL; elsewhere `page_rows_json` answers None and the page goes through
FastListSerializer.
"""
from __future__ import annotations

import json

from django.db import connection
from django.db.models import (BooleanField, DateTimeField, DecimalField, F, FloatField, Func, IntegerField,
                              JSONField, TextField)
from django.db.models import CharField as ModelCharField

from dashboard.api.fields import field_readers, iso_utc, plain, value_lookups

# MariaDB's DATE_FORMAT; a time with microseconds prints them, as datetime.isoformat() does.
_SECONDS_FORMAT = "%Y-%m-%dT%H:%i:%sZ"
_MICROSECONDS_FORMAT = "%Y-%m-%dT%H:%i:%s.%fZ"

# Kinds a column printed as it is read (fields._same) may have.
_AS_VALUE = ("boolean", "json", "number", "text")
# (JSON key, .values() lookup, kind) per printed field, per serializer class; None: not printable here.
_COLUMNS: dict[type, tuple[tuple[str, str, str], ...] | None] = {}


def kind_of(field) -> str | None:
    """The JSON shape a model field's column prints as, or None when there is no SQL for it here."""
    if isinstance(field, DecimalField):
        # Trimming zeros is only right after a decimal point: a column without decimal places has none.
        return "decimal" if field.decimal_places > 0 else "whole decimal"
    if isinstance(field, DateTimeField):
        return "time"
    if isinstance(field, BooleanField):
        return "boolean"
    if isinstance(field, JSONField):
        return "json"
    if isinstance(field, FloatField):
        return "number"
    if isinstance(field, IntegerField) or (field.is_relation and field.concrete):    # a foreign key as its id
        return "number"
    if isinstance(field, (ModelCharField, TextField)):
        return "text"
    return None


def columns_of(serializer_class: type) -> tuple[tuple[str, str, str], ...] | None:
    """Return (key, lookup, kind) of every field `serializer_class` prints, or None when one has no SQL form."""
    if serializer_class not in _COLUMNS:
        _COLUMNS[serializer_class] = _columns(serializer_class)
    return _COLUMNS[serializer_class]


def _columns(serializer_class: type):
    lookups = value_lookups(serializer_class)
    if lookups is None:
        return None
    model = serializer_class.Meta.model
    columns = []
    for (name, attrs, convert), lookup in zip(field_readers(serializer_class, serializer_class()), lookups):
        kind = kind_of(_model_field(model, attrs))
        # The SQL prints what the converter would: exact text for plain, ISO time for iso_utc, else the value.
        if kind not in {plain: ("decimal", "whole decimal"), iso_utc: ("time",)}.get(convert, _AS_VALUE):
            return None
        columns.append((name, lookup, kind))
    return tuple(columns)


def _model_field(model, attrs: list[str]):
    # value_lookups has checked the path: forward foreign keys, then a stored column.
    for attr in attrs[:-1]:
        model = model._meta.get_field(attr).related_model
    return model._meta.get_field(attrs[-1])


class RowJSON(Func):
    """MariaDB: one row as the JSON object of `columns` ((key, lookup, kind), as columns_of returns)."""

    output_field = TextField()

    def __init__(self, columns: tuple[tuple[str, str, str], ...]):
        self.columns = columns
        super().__init__(*(F(lookup) for _, lookup, _ in columns))

    def as_sql(self, compiler, connection, **extra):
        if connection.vendor != "mysql":
            raise NotImplementedError("RowJSON is MariaDB/MySQL SQL; use page_rows_json()")
        pieces, params = [], []
        for index, ((key, _, kind), column) in enumerate(zip(self.columns, self.get_source_expressions())):
            sql, column_params = compiler.compile(column)
            value_sql, value_params = value_sql_of(kind, sql, column_params)
            pieces.append(f"%s, COALESCE({value_sql}, 'null')")
            params.extend([("{" if index == 0 else ",") + json.dumps(key) + ":", *value_params])
        return f"CONCAT({', '.join(pieces)}, '}}')", params


def value_sql_of(kind: str, sql: str, params: list) -> tuple[str, list]:
    """SQL printing one column as a JSON value, NULL for NULL (the caller prints null)."""
    if kind == "decimal":
        # A DECIMAL(p, s) with s > 0 prints as "65000.1200000000": trimmed as fields.plain() prints it.
        return f"""CONCAT('"', TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM {sql})), '"')""", [*params]
    if kind == "whole decimal":
        return f"""CONCAT('"', CAST({sql} AS CHAR), '"')""", [*params]
    if kind == "time":
        # DATETIME columns hold UTC (Django writes them so); DATE_FORMAT does not convert them.
        return (f"""CONCAT('"', DATE_FORMAT({sql}, IF(MICROSECOND({sql}) = 0, %s, %s)), '"')""",
                [*params, *params, _SECONDS_FORMAT, _MICROSECONDS_FORMAT])
    if kind == "boolean":
        return f"CASE WHEN {sql} IS NULL THEN NULL WHEN {sql} THEN 'true' ELSE 'false' END", [*params, *params]
    if kind == "text":
        return f"JSON_QUOTE({sql})", [*params]
    if kind == "json":
        return sql, [*params]
    if kind == "number":
        return f"CAST({sql} AS CHAR)", [*params]
    raise ValueError(f"no SQL for a column of kind {kind!r}")


def page_rows_json(queryset, keys: list, serializer_class: type) -> str | None:
    """Return the rows of `keys` (primary keys, in that order) as a JSON array, or None when not printable here."""
    if connection.vendor != "mysql":
        return None
    columns = columns_of(serializer_class)
    if columns is None:
        return None
    rows = dict(queryset.order_by().filter(pk__in=keys).values_list("pk", RowJSON(columns)))
    return "[" + ",".join(rows[key] for key in keys if key in rows) + "]"
