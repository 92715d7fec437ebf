"""Read endpoints of market data and analytics: instruments, candles, derivatives, snapshots, flows."""
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.generics import ListAPIView

from analytics.models import Flow, Snapshot
from dashboard.api import filters, serializers_market as s
from dashboard.api.candle_rows import candle_rows
from dashboard.api.pagination import BoundedPagination, CandlePagination, KeysFirstPagination, PageListMixin
from dashboard.api.rendering import RENDERERS, RawJSON
from market.models import Candle, DerivativesSample, Instrument

INT_ID = r"\d+"


@extend_schema_view(list=extend_schema(summary="List instruments"),
                    retrieve=extend_schema(summary="One instrument"))
class InstrumentViewSet(viewsets.ReadOnlyModelViewSet):
    """Instruments the platform knows: symbols, precision and whether the bot trades them."""

    queryset = Instrument.objects.order_by("pk")
    serializer_class = s.InstrumentSerializer
    pagination_class = BoundedPagination
    filterset_class = filters.InstrumentFilter
    filter_backends = filters.FILTER_BACKENDS
    ordering_fields = ("id", "symbol", "exchange_symbol", "created_at")
    lookup_value_regex = INT_ID


@extend_schema(summary="List the candles of one symbol and timeframe")
class CandleList(ListAPIView):
    """OHLCV bars of one instrument and timeframe, oldest first; `symbol` and `timeframe` are required."""

    # The unique (instrument, timeframe, open_time) index answers the range in order. The page's rows
    # come as JSON text (dashboard.api.candle_rows), CandleSerializer documents their shape.
    queryset = Candle.objects.order_by("open_time")
    serializer_class = s.CandleSerializer
    pagination_class = CandlePagination
    filterset_class = filters.CandleFilter
    filter_backends = filters.FILTER_BACKENDS
    ordering_fields = ("open_time",)
    renderer_classes = RENDERERS

    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        rows = self.paginator.page_rows(queryset, request, lambda offset, limit: candle_rows(queryset, offset, limit))
        return self.get_paginated_response(RawJSON("[" + ",".join(rows) + "]"))


@extend_schema_view(list=extend_schema(summary="List derivatives samples"),
                    retrieve=extend_schema(summary="One derivatives sample"))
class DerivativesViewSet(PageListMixin, viewsets.ReadOnlyModelViewSet):
    """Funding, open interest, mark/index and CVD samples."""

    queryset = DerivativesSample.objects.order_by("-ts", "-pk")
    serializer_class = s.DerivativesSampleSerializer
    pagination_class = KeysFirstPagination
    filterset_class = filters.DerivativesFilter
    filter_backends = filters.FILTER_BACKENDS
    ordering_fields = ("ts",)
    lookup_value_regex = INT_ID


@extend_schema_view(list=extend_schema(summary="List snapshots"), retrieve=extend_schema(summary="One snapshot"))
class SnapshotViewSet(PageListMixin, viewsets.ReadOnlyModelViewSet):
    """What the analytics saw at each bar close: structure, ATR, momentum and every feature."""

    queryset = Snapshot.objects.order_by("-as_of", "-pk")
    serializer_class = s.SnapshotSerializer
    pagination_class = KeysFirstPagination
    filterset_class = filters.SnapshotFilter
    filter_backends = filters.FILTER_BACKENDS
    ordering_fields = ("as_of",)
    lookup_value_regex = INT_ID


@extend_schema_view(list=extend_schema(summary="List flow views"), retrieve=extend_schema(summary="One flow view"))
class FlowViewSet(PageListMixin, viewsets.ReadOnlyModelViewSet):
    """Crowd bias, trap index, global risk and warnings, with the parts behind each."""

    queryset = Flow.objects.order_by("-as_of", "-pk")
    serializer_class = s.FlowSerializer
    pagination_class = KeysFirstPagination
    filterset_class = filters.FlowFilter
    filter_backends = filters.FILTER_BACKENDS
    ordering_fields = ("as_of",)
    lookup_value_regex = INT_ID
