"""API views for scripts: the latest snapshot and flow documents."""
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.exports import flow_export, snapshot_export
from dashboard.api.errors import NOT_FOUND
from market.models import Instrument


def _instrument(symbol: str) -> Instrument:
    # The active instrument wins when one symbol exists on several sources (exchange, replay, ...).
    candidates = Instrument.objects.filter(exchange_symbol=symbol.upper()).order_by("-is_active", "pk")
    return get_object_or_404(candidates[:1])


class SnapshotLatestApi(APIView):
    """GET the latest snapshot of SYMBOL (btc_snapshot.json)."""

    @extend_schema(summary="Latest snapshot document of a symbol", responses={200: OpenApiTypes.OBJECT, 404: NOT_FOUND})
    def get(self, request, symbol: str):
        document = snapshot_export(_instrument(symbol))
        if document is None:
            raise NotFound(f"no snapshot stored yet for {symbol}")
        return Response(document)


class FlowLatestApi(APIView):
    """GET the latest flow view of SYMBOL (btc_flow.json)."""

    @extend_schema(summary="Latest flow document of a symbol", responses={200: OpenApiTypes.OBJECT, 404: NOT_FOUND})
    def get(self, request, symbol: str):
        document = flow_export(_instrument(symbol))
        if document is None:
            raise NotFound(f"no flow stored yet for {symbol}")
        return Response(document)
