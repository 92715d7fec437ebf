"""Dashboard routes of the logs page (included by dashboard/urls.py under the dashboard namespace)."""
from django.urls import path

from dashboard import views_logs

urlpatterns: list = [
    path("logs/", views_logs.logs_page, name="logs"),
    path("logs/audit-chain.json", views_logs.audit_chain_json, name="logs-audit-chain"),
]
