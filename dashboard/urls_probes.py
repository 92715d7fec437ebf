"""Probes at the site root: /health (liveness), /ready (readiness) and /metrics (Prometheus)."""

urlpatterns: list = []
