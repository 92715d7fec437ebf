"""Several ordered, limited reads as one query where the database allows it."""
from __future__ import annotations

from django.db import connections
from django.db.models import QuerySet


def rows_union_all(parts: list[QuerySet]) -> list:
    """Return the rows of every part (ordered, sliced querysets of one model), in one UNION ALL where possible.

    MariaDB runs the parts as one compound select; SQLite cannot limit the parts of a compound
    select, so there each part is its own query. The rows come in no particular order across parts.
    """
    if len(parts) > 1 and limited_parts_union(parts[0].db):
        return list(union_all(parts))
    return [row for part in parts for row in part]


def limited_parts_union(alias: str) -> bool:
    """True when the database `alias` can run ordered, limited selects as parts of one compound select."""
    return connections[alias].features.supports_slicing_ordering_in_compound


def union_all(parts: list[QuerySet]) -> QuerySet:
    """The parts (querysets of one column layout) as one UNION ALL queryset."""
    return parts[0].union(*parts[1:], all=True)
