"""Page sizes of the API: LimitOffset everywhere, with a ceiling so one request cannot read a table."""
from rest_framework.pagination import LimitOffsetPagination


class BoundedPagination(LimitOffsetPagination):
    """`?limit=` (default 100, at most 1000) and `?offset=`; the answer carries count, next and previous."""

    default_limit = 100
    max_limit = 1000


class KeysFirstPagination(BoundedPagination):
    """Sort and slice the primary keys, then load only the page's rows.

    MariaDB sorts whole rows, JSON columns included, when ORDER BY has no index to follow: the
    decision journal (20,000 rows, ordered by as_of) took 0.5 s a page that way and takes a few
    milliseconds when only (as_of, id) are sorted.
    """

    def paginate_queryset(self, queryset, request, view=None):
        keys = super().paginate_queryset(queryset.values_list("pk", flat=True), request, view)
        if keys is None:
            return None
        rows = {row.pk: row for row in queryset.order_by().filter(pk__in=keys)}
        return [rows[key] for key in keys if key in rows]


class CandlePagination(BoundedPagination):
    """Candles come in larger pages (default 500, at most 5000): a chart reads hundreds of bars at once."""

    default_limit = 500
    max_limit = 5000
