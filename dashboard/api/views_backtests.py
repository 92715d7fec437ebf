"""Backtest runs for scripts: list them with their metrics, read one in full, start a new one (operator)."""
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from dashboard.api import filters, serializers_trading as s
from dashboard.api.errors import BAD_REQUEST, FORBIDDEN
from dashboard.api.pagination import KeysFirstPagination, PageListMixin
from execution.models import BacktestRun


@extend_schema_view(
    list=extend_schema(summary="List backtest runs with their metrics"),
    retrieve=extend_schema(summary="One backtest run with its trades and equity curve"),
    create=extend_schema(summary="Start a backtest (operator)", request=s.BacktestStartSerializer,
                         responses={201: s.BacktestSerializer, 400: BAD_REQUEST, 403: FORBIDDEN}),
)
class BacktestViewSet(PageListMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Backtest runs, newest first; a started run is queued and runs in a worker (watch bars_done)."""

    pagination_class = KeysFirstPagination
    filter_backends = filters.FILTER_BACKENDS
    filterset_class = filters.BacktestFilter
    ordering_fields = ("created_at", "id")
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        rows = BacktestRun.objects.select_related("instrument").order_by("-created_at", "-pk")
        # Trades and the equity curve can be megabytes per run: only the detail reads them.
        return rows.defer("trades", "equity", "parameters") if self.action == "list" else rows

    def get_serializer_class(self):
        return s.BacktestDetailSerializer if self.action == "retrieve" else s.BacktestSerializer

    def create(self, request, *args, **kwargs):
        from execution.backtest import jobs  # queues on django-q2: load it on use

        form = s.BacktestStartSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        try:
            run = jobs.backtest_submit(symbols=data["symbols"], timeframe=data["timeframe"], start=data["start"],
                                       end=data["end"], starting_equity=data["starting_equity"],
                                       parameters=data["parameters"], source=data["source"],
                                       market=data["market"], actor=request.user.get_username(),
                                       now=timezone.now())
        except jobs.BacktestRefused as exc:
            # "parameters.risk_per_trade_fraction": ... names the field inside the parameters.
            raise serializers.ValidationError({field: [message] for field, message in exc.errors.items()}) from None
        return Response(s.BacktestSerializer(run).data, status=status.HTTP_201_CREATED)
