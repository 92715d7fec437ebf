"""Read endpoints of decisions and execution, and the operator's approve / reject / snooze actions."""
from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from dashboard.api import filters, serializers_trading as s
from dashboard.api.errors import BAD_REQUEST, CONFLICT, FORBIDDEN, NOT_FOUND, refused
from dashboard.api.pagination import KeysFirstPagination, PageListMixin
from decisions import approvals
from decisions.models import Decision
from execution.models import Account, Fill, Order, Position

INT_ID = r"\d+"
ACTED = {200: s.DecisionDetailSerializer, 400: BAD_REQUEST, 403: FORBIDDEN, 404: NOT_FOUND, 409: CONFLICT}


class ReadOnly(PageListMixin, viewsets.ReadOnlyModelViewSet):
    pagination_class = KeysFirstPagination
    filter_backends = filters.FILTER_BACKENDS
    lookup_value_regex = INT_ID


@extend_schema_view(list=extend_schema(summary="List accounts (never their keys)"),
                    retrieve=extend_schema(summary="One account"))
class AccountViewSet(ReadOnly):
    """Trading accounts and their realised balance; exchange keys are never returned."""

    queryset = Account.objects.order_by("pk")
    serializer_class = s.AccountSerializer
    filterset_fields = ("broker",)


@extend_schema_view(list=extend_schema(summary="List decisions, newest bar first"),
                    retrieve=extend_schema(summary="One decision with its gates and score parts"))
class DecisionViewSet(ReadOnly):
    """The decision journal; operators approve, reject or snooze pending ones (HYBRID)."""

    filterset_class = filters.DecisionFilter
    ordering_fields = ("as_of", "id", "confidence")

    def get_queryset(self):
        rows = Decision.objects.select_related("instrument").order_by("-as_of", "-pk")
        # The list leaves out the largest JSON columns; the detail has them.
        return rows.defer("gates", "score_parts") if self.action == "list" else rows

    def get_serializer_class(self):
        return s.DecisionSerializer if self.action == "list" else s.DecisionDetailSerializer

    def _act(self, pk: str, service, **kwargs) -> Response:
        try:
            row = service(decision_id=int(pk), actor=self.request.user.get_username(), now=timezone.now(),
                          **kwargs)
        except Decision.DoesNotExist:
            raise Http404(f"no decision {pk}") from None
        except approvals.ApprovalRefused as exc:
            return refused(f"decision {pk}: {exc}")
        return Response(s.DecisionDetailSerializer(row).data)

    @extend_schema(summary="Approve a pending decision (operator)", request=None, responses=ACTED)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Execute a pending decision now if the gates and its entry zone still allow; 409 says why not."""
        return self._act(pk, approvals.decision_approve)

    @extend_schema(summary="Reject a pending decision (operator)", request=s.RejectSerializer, responses=ACTED)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        """Refuse a pending decision; it stays in the journal as rejected, with the note."""
        form = s.RejectSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        return self._act(pk, approvals.decision_reject, note=form.validated_data["note"])

    @extend_schema(summary="Snooze a pending decision (operator)", request=s.SnoozeSerializer, responses=ACTED)
    @action(detail=True, methods=["post"])
    def snooze(self, request, pk=None):
        """Put a pending decision aside for some minutes; it still expires on time."""
        form = s.SnoozeSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        return self._act(pk, approvals.decision_snooze, minutes=form.validated_data["minutes"])


@extend_schema_view(list=extend_schema(summary="List orders, newest first"),
                    retrieve=extend_schema(summary="One order"))
class OrderViewSet(ReadOnly):
    """Orders as the OMS knows them; filter by state, instrument, account or decision."""

    queryset = Order.objects.order_by("-created_at", "-pk")
    serializer_class = s.OrderSerializer
    filterset_class = filters.OrderFilter
    ordering_fields = ("created_at", "updated_at", "id")


@extend_schema_view(list=extend_schema(summary="List fills, newest first"), retrieve=extend_schema(summary="One fill"))
class FillViewSet(ReadOnly):
    """Executions of orders, fees in USDT."""

    queryset = Fill.objects.order_by("-ts", "-pk")
    serializer_class = s.FillSerializer
    filterset_class = filters.FillFilter
    ordering_fields = ("ts", "id")


@extend_schema_view(list=extend_schema(summary="List positions, newest first"),
                    retrieve=extend_schema(summary="One position"))
class PositionViewSet(ReadOnly):
    """Positions from entry to exit; `?status=open` lists the open ones."""

    queryset = Position.objects.select_related("instrument").order_by("-opened_at", "-pk")
    serializer_class = s.PositionSerializer
    filterset_class = filters.PositionFilter
    ordering_fields = ("opened_at", "closed_at", "id")
