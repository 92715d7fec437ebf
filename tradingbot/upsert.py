"""Insert-or-update one row in one statement."""
from __future__ import annotations

from django.db import connections, router
from django.db.models import AutoField, Model
from django.db.models.constants import OnConflict


def row_upsert(model: type[Model], *, keys: dict, values: dict) -> Model:
    """Store the row of `model` identified by the unique `keys` with `values`; return it with its pk.

    One INSERT ... ON DUPLICATE KEY UPDATE (MariaDB) or ON CONFLICT DO UPDATE (SQLite), where
    `update_or_create` takes six statements inside a transaction (two savepoints, a locking read
    and the insert): the live cycle stores a snapshot, a flow and an equity point every bar. The
    statement is atomic, so two writers of the same keys cannot both insert. No save() signals.

    The statement is the one `bulk_create(update_conflicts=True)` makes for the row, sent without
    bulk_create's own transaction around it: one statement needs none, and outside the caller's
    transaction that wrapper cost a BEGIN and a COMMIT each time (two round trips).
    """
    alias = router.db_for_write(model)
    connection = connections[alias]
    opts = model._meta
    row = model(**keys, **values)
    # A value that cannot be stored (JSON that cannot be encoded) raises while the statement is built,
    # before it is sent and outside any atomic block of ours: the caller's transaction stays usable.
    targets = ([opts.get_field(name) for name in keys] if connection.features.supports_update_conflicts_with_target
               else None)
    rows_insert(model, [row], on_conflict=OnConflict.UPDATE, update_fields=[opts.get_field(name) for name in values],
                unique_fields=targets)
    return row


def rows_insert(model: type[Model], rows: list[Model], **conflict) -> None:
    """Insert `rows` (new instances of `model`) in one statement and give them their pks where the database
    returns them (MariaDB, SQLite): bulk_create's own insert, without its checks and transaction.

    For the hot path's writes, where bulk_create's preparation cost more than the statement. `conflict`
    is the insert's on_conflict, update_fields and unique_fields (as fields), if any.
    """
    alias = router.db_for_write(model)
    opts = model._meta
    fields = [f for f in opts.concrete_fields if not f.generated and not isinstance(f, AutoField)]
    returning = opts.db_returning_fields if connections[alias].features.can_return_rows_from_bulk_insert else None
    returned = model._base_manager._insert(rows, fields=fields, using=alias, returning_fields=returning, **conflict)
    for row, values in zip(rows, returned or ()):
        for column, value in zip(returning, values):
            setattr(row, column.attname, value)
    for row in rows:
        row._state.adding, row._state.db = False, alias
