"""Dashboard pages and their JSON and CSV endpoints."""
from django.urls import include, path

from dashboard import views, views_decisions, views_inputs, views_reconciliation

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("equity/", views.equity, name="equity"),
    path("equity/data.json", views.equity_data, name="equity-data"),
    path("equity/export.csv", views.equity_export, name="equity-export"),
    path("decisions/", views_decisions.decisions, name="decisions"),
    path("decisions/<int:pk>/", views_decisions.decision, name="decision"),
    path("decisions/<int:pk>/approve/", views_decisions.decision_approve, name="decision-approve"),
    path("decisions/<int:pk>/reject/", views_decisions.decision_reject, name="decision-reject"),
    path("decisions/<int:pk>/snooze/", views_decisions.decision_snooze, name="decision-snooze"),
    path("decisions/overrides/", views_decisions.override_create, name="override-create"),
    path("decisions/overrides/<int:pk>/revoke/", views_decisions.override_revoke, name="override-revoke"),
    path("reconciliation/", views_reconciliation.reconciliations, name="reconciliations"),
    path("reconciliation/<int:pk>/", views_reconciliation.reconciliation, name="reconciliation"),
    path("reconciliation/<int:pk>/acknowledge/", views_reconciliation.reconciliation_acknowledge,
         name="reconciliation-acknowledge"),
    path("inputs/", views_inputs.inputs, name="inputs"),
    path("inputs/sentiment/", views_inputs.sentiment_add, name="inputs-sentiment"),
    path("inputs/uploads/<int:pk>/original", views_inputs.upload_original, name="inputs-original"),
    path("inputs/<slug:kind>/preview/", views_inputs.upload_preview, name="inputs-preview"),
    path("inputs/<slug:kind>/confirm/", views_inputs.upload_confirm, name="inputs-confirm"),
    path("inputs/<slug:kind>/cancel/", views_inputs.upload_cancel, name="inputs-cancel"),
    path("inputs/<slug:kind>/schema.json", views_inputs.upload_schema, name="inputs-schema"),
    path("inputs/<slug:kind>/example.json", views_inputs.upload_example, name="inputs-example"),
    # Each page below keeps its routes in its own module.
    path("", include("dashboard.urls_chart")),
    path("", include("dashboard.urls_control")),
    path("", include("dashboard.urls_backtests")),
    path("", include("dashboard.urls_drift")),
    path("", include("dashboard.urls_health")),
    path("", include("dashboard.urls_logs")),
]
