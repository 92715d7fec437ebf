"""Insert-or-update one row in one statement."""
from __future__ import annotations

from django.db import connections, router
from django.db.models import Model


def row_upsert(model: type[Model], *, keys: dict, values: dict) -> Model:
    """Store the row of `model` identified by the unique `keys` with `values`; return it with its pk.

    One INSERT ... ON DUPLICATE KEY UPDATE (MariaDB) or ON CONFLICT DO UPDATE (SQLite), where
    `update_or_create` takes six statements inside a transaction (two savepoints, a locking read
    and the insert): the live cycle stores a snapshot, a flow and an equity point every bar. The
    statement is atomic, so two writers of the same keys cannot both insert. No save() signals.
    """
    alias = router.db_for_write(model)
    connection = connections[alias]
    targets = list(keys) if connection.features.supports_update_conflicts_with_target else None
    row = model(**keys, **values)
    # Convert every value first (a JSON value that cannot be encoded raises here), so a bad value
    # fails before the statement and leaves the caller's transaction usable.
    for name in values:
        field = model._meta.get_field(name)
        field.get_db_prep_save(getattr(row, field.attname), connection=connection)
    model.objects.using(alias).bulk_create([row], update_conflicts=True, unique_fields=targets,
                                           update_fields=list(values))
    return row
