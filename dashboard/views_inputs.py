"""Manual-input page: ETF-flow and liquidation-zone uploads with a preview step, sentiment readings.

Any logged-in user sees the page; uploading and recording need a staff user (roles come later).
A previewed file waits in the session until it is confirmed or cancelled; confirming checks it
again, because stored rows may have changed in between.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_POST

from dashboard import roles, selectors
from dashboard.forms import ConfirmForm, SentimentForm, UploadForm
from market.manual import selectors as manual_selectors
from market.manual import services
from market.manual.parse import format_size, size_problem
from market.manual.schemas import (
    ETF_FLOWS_EXAMPLE,
    ETF_FLOWS_SCHEMA,
    LIQUIDATION_ZONES_EXAMPLE,
    LIQUIDATION_ZONES_SCHEMA,
)
from market.models import ManualUpload

SESSION_KEY = "manual_inputs_pending"
PREVIEW_ROWS = 200


@dataclass(frozen=True)
class UploadKind:
    slug: str
    kind: str
    title: str
    schema: dict
    example: dict
    preview: Callable[..., services.Preview]
    upload: Callable[..., services.UploadResult]


KINDS = {
    "etf-flows": UploadKind("etf-flows", ManualUpload.Kind.ETF_FLOWS, "ETF flows", ETF_FLOWS_SCHEMA,
                            ETF_FLOWS_EXAMPLE, services.etf_flows_preview, services.etf_flows_upload),
    "liquidation-zones": UploadKind("liquidation-zones", ManualUpload.Kind.LIQUIDATION_ZONES, "Liquidation zones",
                                    LIQUIDATION_ZONES_SCHEMA, LIQUIDATION_ZONES_EXAMPLE,
                                    services.liquidation_zones_preview, services.liquidation_zones_upload),
}


def _kind(slug: str) -> UploadKind:
    try:
        return KINDS[slug]
    except KeyError:
        raise Http404(f"unknown input kind {slug!r}") from None


operator_required = roles.role_required(roles.OPERATOR, "enter manual inputs")


def _page(request, *, status: int = 200, previews: dict | None = None, upload_forms: dict | None = None,
          sentiment_form: SentimentForm | None = None, filename: str = ""):
    previews, upload_forms = previews or {}, upload_forms or {}
    cards = [{"spec": spec, "form": upload_forms.get(slug) or UploadForm(prefix=slug), "filename": filename,
              "preview": previews.get(slug), "preview_rows": (previews[slug].rows[:PREVIEW_ROWS]
                                                              if slug in previews else ())}
             for slug, spec in KINDS.items()]
    context = {
        "header": selectors.header_state(),
        "cards": cards,
        "preview_limit": PREVIEW_ROWS,
        "max_size": format_size(services.max_upload_bytes()),
        "history": manual_selectors.upload_history(limit=50),
        "sentiment_form": sentiment_form or SentimentForm(),
        "sentiment_recent": manual_selectors.sentiment_recent(limit=20),
        "can_enter": roles.has_role(request.user, roles.OPERATOR),
    }
    return render(request, "dashboard/inputs.html", context, status=status)


@login_required
@require_GET
def inputs(request):
    """Render the manual-input page: upload forms, sentiment entry and upload history."""
    return _page(request)


@login_required
@require_POST
@operator_required
def upload_preview(request, kind: str):
    """Check an uploaded file and show what it would write; keep it pending until confirmed."""
    spec = _kind(kind)
    form = UploadForm(request.POST, request.FILES, prefix=kind)
    if not form.is_valid():
        return _page(request, status=400, upload_forms={kind: form})
    uploaded = form.cleaned_data["file"]
    limit = services.max_upload_bytes()
    problem = size_problem(uploaded.size, limit)
    if problem:
        # Refuse before reading: an oversized file never enters memory or the session.
        preview = services.Preview(kind=spec.kind, sha256="", size_bytes=uploaded.size, problems=(problem,))
    else:
        content = uploaded.read()
        preview = spec.preview(content=content, now=timezone.now())
        if preview.ok:
            pending = request.session.get(SESSION_KEY, {})
            pending[kind] = {"sha256": preview.sha256, "filename": uploaded.name,
                             "content": base64.b64encode(content).decode("ascii")}
            request.session[SESSION_KEY] = pending
    return _page(request, previews={kind: preview}, upload_forms={kind: form}, filename=uploaded.name)


@login_required
@require_POST
@operator_required
def upload_confirm(request, kind: str):
    """Save the pending file previewed on this page, all rows or none."""
    spec = _kind(kind)
    form = ConfirmForm(request.POST)
    pending = request.session.get(SESSION_KEY, {}).get(kind)
    if not form.is_valid() or not pending or pending["sha256"] != form.cleaned_data["sha256"]:
        messages.error(request, f"{spec.title}: nothing to confirm (the preview expired or another file was "
                                "previewed since); upload the file again.")
        return redirect("dashboard:inputs")
    _pending_drop(request, kind)
    result = spec.upload(content=base64.b64decode(pending["content"]), filename=pending["filename"],
                         user=request.user, now=timezone.now())
    if result.status == "invalid":
        preview = services.Preview(kind=spec.kind, sha256=pending["sha256"], size_bytes=0, problems=result.problems)
        return _page(request, previews={kind: preview}, filename=pending["filename"])
    if result.status == "duplicate":
        messages.warning(request, already_uploaded(result.upload))
    else:
        upload = result.upload
        messages.success(request, f"{spec.title}: saved {upload.filename} as upload #{upload.pk}: "
                                  f"{upload.rows_created} new, {upload.rows_updated} superseded, "
                                  f"{upload.rows_unchanged} unchanged rows.")
    return redirect("dashboard:inputs")


def already_uploaded(upload: ManualUpload) -> str:
    """Return the sentence that names an earlier upload of the same file: when and by whom."""
    who = upload.uploaded_by.get_username() if upload.uploaded_by else "an unknown user"
    return (f"{upload.filename} was already uploaded on {upload.uploaded_at:%Y-%m-%d %H:%M} UTC by {who} "
            f"(upload #{upload.pk}); nothing was written.")


def _pending_drop(request, kind: str) -> None:
    pending = request.session.get(SESSION_KEY, {})
    if pending.pop(kind, None) is not None:
        request.session[SESSION_KEY] = pending


@login_required
@require_POST
@operator_required
def upload_cancel(request, kind: str):
    """Forget the pending file of `kind` without saving it."""
    _kind(kind)
    _pending_drop(request, kind)
    messages.info(request, "Upload cancelled; nothing was written.")
    return redirect("dashboard:inputs")


@login_required
@require_POST
@operator_required
def sentiment_add(request):
    """Record one sentiment reading entered on the page."""
    form = SentimentForm(request.POST)
    if not form.is_valid():
        return _page(request, status=400, sentiment_form=form)
    data = form.cleaned_data
    try:
        reading = services.sentiment_record(asset=data["asset"], score=data["score"], source=data["source"],
                                            note=data["note"], known_at=data["known_at"],
                                            valid_until=data["valid_until"], user=request.user, now=timezone.now())
    except ValueError as exc:
        form.add_error(None, str(exc))
        return _page(request, status=400, sentiment_form=form)
    messages.success(request, f"Sentiment {reading.asset} {reading.score} from {reading.source} recorded "
                              f"(reading #{reading.pk}).")
    return redirect("dashboard:inputs")


def _json_download(document: dict, filename: str) -> HttpResponse:
    response = HttpResponse(json.dumps(document, indent=2) + "\n", content_type="application/json")
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


@login_required
@require_GET
def upload_schema(request, kind: str):
    """Download the JSON schema of an upload kind."""
    return _json_download(_kind(kind).schema, f"{kind}.schema.json")


@login_required
@require_GET
def upload_example(request, kind: str):
    """Download a valid example file of an upload kind."""
    return _json_download(_kind(kind).example, f"{kind}.example.json")


@login_required
@require_GET
def upload_original(request, pk: int):
    """Download the bytes of an earlier upload under its original name."""
    try:
        upload = manual_selectors.upload_get(pk)
    except ManualUpload.DoesNotExist:
        raise Http404("no such upload") from None
    response = HttpResponse(bytes(upload.content), content_type="application/json")
    response["Content-Disposition"] = content_disposition_header(True, upload.filename)
    return response

