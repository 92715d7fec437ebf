"""The health page (any signed-in user) and the probes at the site root (/health, /ready, /metrics).

/health and /ready need no login: load balancers and orchestrators call them. /metrics needs
`Authorization: Bearer <METRICS_TOKEN>`; with METRICS_TOKEN unset it answers 403 to everyone,
so an exposed port never publishes balances and positions by default.
"""
from __future__ import annotations

import hmac
import os

import prometheus_client
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import multiprocess
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from dashboard import health as health_checks
from dashboard import selectors
from dashboard.metrics import trading_metrics_text

GROUP_TITLES = {
    "database": "Database", "channels": "Channel layer", "workers": "django-q2 workers",
    "exchange": "Exchanges", "data": "Data freshness", "reconciliation": "Reconciliation",
}


def _grouped(report: dict) -> list[dict]:
    groups: dict[str, list[dict]] = {}
    for check in report["checks"]:
        groups.setdefault(check["group"], []).append(check)
    return [{"key": key, "title": GROUP_TITLES.get(key, key), "checks": checks} for key, checks in groups.items()]


@login_required
@require_GET
@never_cache
def health(request):
    """Render a fresh self-test; the page then follows the health task's "health" events."""
    report = health_checks.health_report()
    context = {"header": selectors.header_state(), "report": report, "groups": _grouped(report),
               "summary": health_checks.summary_of(report)}
    return render(request, "dashboard/health.html", context)


@login_required
@require_GET
@never_cache
def health_data(request):
    """Return a fresh self-test as JSON."""
    return JsonResponse(health_checks.health_report())


# -- probes --------------------------------------------------------------------------------------

@require_GET
@never_cache
def liveness(request):
    """Answer 200 while this process serves requests; touches nothing else."""
    return JsonResponse({"status": "ok"})


@require_GET
@never_cache
def readiness(request):
    """Answer 200 when the database, the channel layer and the django-q2 workers are up, else 503 naming the failing."""
    report = health_checks.readiness_report()
    body = {"status": "ready" if report["ok"] else "not ready", "failing": report["failing_names"],
            "checks": [{k: check[k] for k in ("name", "ok", "detail", "latency_ms")} for check in report["checks"]]}
    return JsonResponse(body, status=200 if report["ok"] else 503)


def _metrics_refusal(request) -> HttpResponse | None:
    token = getattr(settings, "METRICS_TOKEN", "")
    if not token:
        return HttpResponse("metrics are off: set METRICS_TOKEN and send it as a bearer token\n", status=403,
                            content_type="text/plain")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        response = HttpResponse("send Authorization: Bearer <METRICS_TOKEN>\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return None


def _process_metrics() -> bytes:
    # As django_prometheus.exports.ExportToDjangoView: several server processes share a directory.
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ or "prometheus_multiproc_dir" in os.environ:
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return prometheus_client.generate_latest(registry)
    return prometheus_client.generate_latest(prometheus_client.REGISTRY)


@require_GET
@never_cache
def metrics(request):
    """Return the request metrics (django-prometheus) and the trading metrics in Prometheus text format."""
    refusal = _metrics_refusal(request)
    if refusal is not None:
        return refusal
    body = _process_metrics() + trading_metrics_text()
    # Every name here is a classic one, so the text is the 0.0.4 format every Prometheus reads.
    return HttpResponse(body, content_type=CONTENT_TYPE_PLAIN_0_0_4)
