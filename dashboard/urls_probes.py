"""Probes at the site root: /health (liveness), /ready (readiness) and /metrics (Prometheus)."""
from django.urls import path

from dashboard import views_health

urlpatterns = [
    path("health", views_health.liveness, name="probe-health"),
    path("ready", views_health.readiness, name="probe-ready"),
    path("metrics", views_health.metrics, name="probe-metrics"),
]
