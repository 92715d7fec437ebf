"""Dashboard routes of the health page (included by dashboard/urls.py under the dashboard namespace)."""
from django.urls import path

from dashboard import views_health

urlpatterns = [
    path("system/health/", views_health.health, name="health"),
    path("system/health/report.json", views_health.health_data, name="health-data"),
]
