"""Page sizes of the API: LimitOffset everywhere, with a ceiling so one request cannot read a table."""
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response

from dashboard.api.fields import value_lookups
from dashboard.api.rendering import RENDERERS, RawJSON
from dashboard.api.row_json import page_rows_json


class BoundedPagination(LimitOffsetPagination):
    """`?limit=` (default 100, at most 1000) and `?offset=`; the answer carries count, next and previous."""

    default_limit = 100
    max_limit = 1000


class PageListMixin:
    """A list view whose page may arrive as finished JSON text (KeysFirstPagination on MariaDB).

    Its renderers (dashboard.api.rendering.RENDERERS) put the text in place.
    """

    renderer_classes = RENDERERS

    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        if page is None:      # KeysFirstPagination always pages (default_limit); kept for a view without it
            return Response(self.get_serializer(queryset, many=True).data)
        if not isinstance(page, RawJSON):
            page = self.get_serializer(page, many=True).data
        return self.get_paginated_response(page)


class KeysFirstPagination(BoundedPagination):
    """Sort and slice the primary keys, then load only the page's rows.

    MariaDB sorts whole rows, JSON columns included, when ORDER BY has no index to follow: the
    decision journal (20,000 rows, ordered by as_of) took 0.5 s a page that way and takes a few
    milliseconds when only (as_of, id) are sorted. When the view's serializer prints stored columns
    only (fields.value_lookups), the rows are read as dicts of those columns, not model instances;
    on MariaDB the database writes them as JSON text (dashboard.api.row_json) and the page is a
    RawJSON, which a view with `PageListMixin` hands to the response as it is.
    """

    def paginate_queryset(self, queryset, request, view=None):
        keys = super().paginate_queryset(queryset.values_list("pk", flat=True), request, view)
        if keys is None:
            return None
        serializer_class = view.get_serializer_class() if view is not None else None
        if isinstance(view, PageListMixin) and (text := page_rows_json(queryset, keys, serializer_class)) is not None:
            return RawJSON(text)
        page = queryset.order_by().filter(pk__in=keys)
        lookups = value_lookups(serializer_class) if serializer_class is not None else None
        if lookups is None:
            rows = {row.pk: row for row in page}
        else:
            rows = {row["pk"]: row for row in page.values("pk", *lookups)}
        return [rows[key] for key in keys if key in rows]


class CandlePagination(BoundedPagination):
    """Candles come in larger pages (default 500, at most 5000): a chart reads hundreds of bars at once."""

    default_limit = 500
    max_limit = 5000

    def page_rows(self, queryset, request, read) -> list:
        """Return the page's rows as `read(offset, limit)` reads them, setting count, limit and offset as
        paginate_queryset does.

        One row past the page is read: when it is not there, the page reaches the end of the range and
        the count is offset + rows, with no COUNT query (a chart asking for a range it has room for).
        Only a page with more rows after it, or an empty page past the start, is counted.
        """
        self.request = request
        self.limit = self.get_limit(request)
        self.offset = self.get_offset(request)
        rows = read(self.offset, self.limit + 1)
        if len(rows) <= self.limit and (rows or self.offset == 0):
            self.count = self.offset + len(rows)
        else:
            self.count = self.get_count(queryset)
        if self.count > self.limit and self.template is not None:
            self.display_page_controls = True
        return rows[:self.limit]
