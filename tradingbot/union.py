"""Several ordered, limited reads as one query where the database allows it."""
from __future__ import annotations

from django.db import connections
from django.db.models import QuerySet


def rows_union_all(parts: list[QuerySet]) -> list:
    """Return the rows of every part (ordered, sliced querysets of one model), in one UNION ALL where possible.

    MariaDB runs the parts as one compound select; SQLite cannot limit the parts of a compound
    select, so there each part is its own query. The rows come in no particular order across parts.
    """
    if len(parts) > 1 and connections[parts[0].db].features.supports_slicing_ordering_in_compound:
        return list(parts[0].union(*parts[1:], all=True))
    return [row for part in parts for row in part]
