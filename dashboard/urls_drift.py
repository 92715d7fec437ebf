"""Dashboard routes of the drift page (included by dashboard/urls.py under the dashboard namespace)."""
from django.urls import path

from dashboard import views_drift

urlpatterns = [
    path("drift/", views_drift.drift_reports, name="drift"),
    path("drift/build/", views_drift.drift_build, name="drift-build"),
    path("drift/<int:pk>/", views_drift.drift_report, name="drift-report"),
]
