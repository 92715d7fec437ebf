"""Hot reads whose SQL Django compiles once per shape and process; each call binds its values and runs it.

Why: on the live cycle's reads, building and compiling a queryset costs more than running it (the
five-part flow read: 11.6 ms to build and compile, 0.7 ms to run; the risk facts 10-13 ms). Only
the SQL text is kept, never rows: every call reads the database, so an edit is seen by the next
call. The contract is in docs/ARCHITECTURE.md ("Compiled reads").
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from datetime import date, datetime, timedelta

from django.db import connections, router
from django.db.models import Model, QuerySet

# Reads compiled once per shape: (database alias, vendor, key) -> (compiler, SQL, parameter makers), or None for
# a shape whose values are not all plain parameters (built through the ORM on every call).
_SHAPES: dict[tuple, tuple | None] = {}
logger = logging.getLogger(__name__)


def rows_compiled(key: Hashable, model: type[Model], build: Callable[..., QuerySet], **values) -> list[tuple]:
    """Return the rows of `build(**values)` (a values_list queryset of `model`), its SQL compiled once per `key`.

    Building and compiling a queryset costs more than running it on a cycle's hot reads. The
    first call per key in the process compiles `build` with two sets of stand-ins for `values`
    (aware datetimes, dates, ints, strings) to learn which parameter each value binds, then
    with `values` to check that binding gives the ORM's own SQL and parameters. A shape that
    uses a value other than as a parameter (derived from it, in a slice) is built through the
    ORM on every call. `key` must name everything else the shape depends on. Only SQL is
    kept: every call reads the database.
    """
    alias = router.db_for_read(model)
    cache_key = (alias, connections[alias].vendor, key)
    if cache_key not in _SHAPES:
        _SHAPES[cache_key] = _shape_learn(build, values, alias)
        if _SHAPES[cache_key] is None:
            logger.warning("read %r is built on every call: a value is not a plain parameter", key)
    shape = _SHAPES[cache_key]
    if shape is None:
        return list(build(**values))
    compiler, sql, makers = shape
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, _params(makers, values))
        rows = cursor.fetchall()
    return list(compiler.results_iter(results=[rows], tuple_expected=True))


def _params(makers: list[tuple], values: dict) -> list:
    return [made if name is None else made(values[name]) for name, made in makers]


def _adapter(value, connection) -> Callable | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value
    if isinstance(value, date):
        return connection.ops.adapt_datefield_value
    return (lambda v: v) if isinstance(value, (int, str)) else None


def _stand_in(value, index: int, round_: int):
    # Every part differs between the rounds (year to microsecond), so a parameter derived from a
    # value (a date of it, a bound before it) differs too and is not taken for a constant.
    if isinstance(value, datetime):
        return datetime(2000 + round_, round_, round_, round_, round_, round_, index * 10 + round_,
                        tzinfo=value.tzinfo)
    if isinstance(value, date):
        return date(2000 + round_, round_, round_) + timedelta(days=index)
    if isinstance(value, int):
        return 987_654_000_000 + 1_000 * index + round_
    return f"stand-in {index}/{round_}"


def _shape_learn(build: Callable[..., QuerySet], values: dict, alias: str) -> tuple | None:
    connection = connections[alias]
    adapters = {name: _adapter(value, connection) for name, value in values.items()}
    if any(adapt is None for adapt in adapters.values()):
        return None
    compiled, adapted = [], []
    for round_ in (1, 2):
        fake = {name: _stand_in(value, k, round_) for k, (name, value) in enumerate(values.items())}
        compiler = build(**fake).query.get_compiler(using=alias)
        compiled.append((compiler, *compiler.as_sql()))
        adapted.append({name: adapters[name](v) for name, v in fake.items()})
    (compiler, sql, params), (_, sql_again, params_again) = compiled
    if sql != sql_again or len(params) != len(params_again):
        return None
    makers = []
    for first, second in zip(params, params_again):
        name = next((n for n in values if adapted[0][n] == first and adapted[1][n] == second), None)
        if name is not None:
            makers.append((name, adapters[name]))
        elif first == second:
            makers.append((None, first))        # a constant of the shape
        else:
            return None
    real_sql, real_params = build(**values).query.get_compiler(using=alias).as_sql()
    if real_sql != sql or list(real_params) != _params(makers, values):
        return None
    return compiler, sql, makers


def models_compiled(key: Hashable, model: type[Model], build: Callable[..., QuerySet], **values) -> list[Model]:
    """Return the instances of `model` that `build(**values)` (a queryset of `model`) selects, made as a
    queryset makes them, its SQL compiled once per `key` (see `rows_compiled`)."""
    names = stored_names(model)
    rows = rows_compiled(key, model, lambda **v: build(**v).values_list(*names), **values)
    alias = router.db_for_read(model)
    return [model.from_db(alias, names, row) for row in rows]


def stored_names(model: type[Model]) -> list[str]:
    """The attribute names of `model`'s columns, in order: what a compiled read selects to make instances
    with `model.from_db(alias, stored_names(model), row)`, as a queryset makes them."""
    return [f.attname for f in model._meta.concrete_fields]
