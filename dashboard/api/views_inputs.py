"""Manual inputs for scripts: sentiment readings and ETF-flow / liquidation-zone JSON uploads.

Uploads go through market.manual.services, the same check-then-write-atomically path as the
dashboard's Inputs page: a file with any problem writes nothing and comes back as 400 with each
problem's JSON pointer and reason; the same bytes uploaded twice write nothing (409).
"""
from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.parsers import BaseParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from dashboard.api import serializers_market as s
from dashboard.api.errors import BAD_REQUEST, FORBIDDEN, ErrorSerializer
from dashboard.api.pagination import BoundedPagination
from dashboard.views_inputs import already_uploaded
from market.manual import services
from market.manual.parse import size_problem
from market.manual.schemas import Problem
from market.models import ManualUpload, SentimentInput

SENTIMENT_FIELDS = ("score", "known_at", "valid_until")


@extend_schema_view(get=extend_schema(summary="List sentiment readings, newest first"),
                    post=extend_schema(summary="Record a sentiment reading (operator)",
                                       request=s.SentimentInputSerializer,
                                       responses={201: s.SentimentSerializer, 400: BAD_REQUEST, 403: FORBIDDEN}))
class SentimentApi(generics.ListAPIView):
    """Manual sentiment readings from -1 (fear) to +1 (greed); corrections are new rows."""

    queryset = SentimentInput.objects.select_related("created_by").order_by("-known_at", "-pk")
    serializer_class = s.SentimentSerializer
    pagination_class = BoundedPagination
    filterset_fields = ("asset", "source")
    ordering_fields = ("known_at", "created_at", "id")

    def post(self, request):
        form = s.SentimentInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            reading = services.sentiment_record(**form.validated_data, user=request.user, now=timezone.now())
        except ValueError as exc:
            # The service's messages start with the field they are about ("score must be ...").
            field = str(exc).split(" ", 1)[0]
            raise serializers.ValidationError({field if field in SENTIMENT_FIELDS else "non_field_errors": [str(exc)]})
        return Response(s.SentimentSerializer(reading).data, status=status.HTTP_201_CREATED)


class RawJsonParser(BaseParser):
    """Keep a JSON body as the bytes sent: the upload stores and hashes the file exactly."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        # One byte past the limit is enough to refuse it without holding a huge body in memory.
        return RawFile(stream.read(services.max_upload_bytes() + 1) if stream is not None else b"", None)


@dataclass(frozen=True)
class RawFile:
    content: bytes
    filename: str | None


def _problems(problems, what: str = "the file was not saved") -> Response:
    rows = [{"path": p.path, "reason": p.reason} for p in problems]
    return Response({"detail": f"{what}: {'; '.join(str(p) for p in problems)}", "problems": rows},
                    status=status.HTTP_400_BAD_REQUEST)


UPLOAD_PARAMETERS = [
    OpenApiParameter("filename", OpenApiTypes.STR, description="name kept with the upload (JSON body only)"),
    OpenApiParameter("dry_run", OpenApiTypes.BOOL, description="check and preview only; write nothing"),
]
UPLOAD_RESPONSES = {
    201: s.UploadSerializer,
    200: OpenApiResponse(s.UploadPreviewSerializer, description="dry run: what the upload would write"),
    400: OpenApiResponse(s.UploadProblemsSerializer, description="refused: each problem, nothing written"),
    403: FORBIDDEN,
    409: OpenApiResponse(ErrorSerializer, description="the same file was uploaded before; nothing written"),
}


class UploadApi(APIView):
    """POST a JSON document (as the body, or as multipart `file`); check it, then write all rows or none."""

    parser_classes = (RawJsonParser, MultiPartParser)
    kind = ""
    preview = upload = None

    def _file(self, request) -> tuple[RawFile | None, Problem | None]:
        data = request.data
        if not isinstance(data, RawFile) and request.content_type.startswith("application/json"):
            data = RawFile(b"", None)  # an empty body reaches no parser
        if isinstance(data, RawFile):
            name = request.query_params.get("filename") or f"{self.kind}.json"
            return RawFile(data.content, name[:255]), size_problem(len(data.content), services.max_upload_bytes())
        uploaded = data.get("file") if hasattr(data, "get") else None
        if uploaded is None or not hasattr(uploaded, "read"):
            return None, Problem("file", "send the JSON document as the body or as the multipart field `file`")
        # Refuse before reading: an oversized file never enters memory.
        problem = size_problem(uploaded.size, services.max_upload_bytes())
        return (None, problem) if problem else (RawFile(uploaded.read(), uploaded.name), None)

    def post(self, request):
        file, problem = self._file(request)
        if problem is not None:
            return _problems([problem])
        now = timezone.now()
        if request.query_params.get("dry_run", "").lower() in ("1", "true", "yes"):
            return self._preview(self.preview(content=file.content, now=now))
        result = self.upload(content=file.content, filename=file.filename, user=request.user, now=now)
        if result.status == "invalid":
            return _problems(result.problems)
        if result.status == "duplicate":
            return Response({"detail": already_uploaded(result.upload)}, status=status.HTTP_409_CONFLICT)
        return Response(s.UploadSerializer(result.upload).data, status=status.HTTP_201_CREATED)

    def _preview(self, preview: services.Preview) -> Response:
        if preview.duplicate_of is not None:
            return Response({"detail": already_uploaded(preview.duplicate_of)}, status=status.HTTP_409_CONFLICT)
        if preview.problems:
            return _problems(preview.problems, "the file would not be saved")
        rows = [{"values": list(r.values), "action": r.action, "note": r.note} for r in preview.rows]
        body = {"kind": preview.kind, "sha256": preview.sha256, "size_bytes": preview.size_bytes,
                "columns": list(preview.columns), "rows": rows, "counts": preview.counts,
                "rows_superseded": preview.rows_superseded}
        return Response(s.UploadPreviewSerializer(body).data)


UPLOAD_REQUEST = {"application/json": OpenApiTypes.OBJECT, "multipart/form-data": s.UploadFileSerializer}


@extend_schema(summary="Upload ETF flows (operator)", request=UPLOAD_REQUEST, parameters=UPLOAD_PARAMETERS,
               responses=UPLOAD_RESPONSES)
class EtfFlowsUploadApi(UploadApi):
    """Upload daily ETF flows (docs/MANUAL_INPUTS.md); revisions supersede stored figures."""

    kind = ManualUpload.Kind.ETF_FLOWS
    preview = staticmethod(services.etf_flows_preview)
    upload = staticmethod(services.etf_flows_upload)


@extend_schema(summary="Upload liquidation zones (operator)", request=UPLOAD_REQUEST, parameters=UPLOAD_PARAMETERS,
               responses=UPLOAD_RESPONSES)
class LiquidationZonesUploadApi(UploadApi):
    """Upload a liquidation-zone map of one instrument (docs/MANUAL_INPUTS.md)."""

    kind = ManualUpload.Kind.LIQUIDATION_ZONES
    preview = staticmethod(services.liquidation_zones_preview)
    upload = staticmethod(services.liquidation_zones_upload)


@extend_schema(summary="List manual uploads, newest first")
class UploadListApi(generics.ListAPIView):
    """Uploads of manual inputs with who sent them and what they wrote (without the file bytes)."""

    queryset = ManualUpload.objects.defer("content").select_related("uploaded_by").order_by("-uploaded_at", "-pk")
    serializer_class = s.UploadSerializer
    pagination_class = BoundedPagination
    filterset_fields = ("kind",)
