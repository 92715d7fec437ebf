"""Routes of the API for scripts (docs/API.md); the schema at schema/, Swagger UI at docs/."""
from django.urls import include, path
from rest_framework.routers import SimpleRouter

from dashboard.api import (
    views,
    views_backtests,
    views_control,
    views_docs,
    views_equity,
    views_health,
    views_inputs,
    views_market,
    views_trading,
)

app_name = "api"

router = SimpleRouter()
router.register("instruments", views_market.InstrumentViewSet, basename="instrument")
router.register("derivatives", views_market.DerivativesViewSet, basename="derivatives")
router.register("snapshots", views_market.SnapshotViewSet, basename="snapshot")
router.register("flows", views_market.FlowViewSet, basename="flow")
router.register("decisions", views_trading.DecisionViewSet, basename="decision")
router.register("accounts", views_trading.AccountViewSet, basename="account")
router.register("orders", views_trading.OrderViewSet, basename="order")
router.register("fills", views_trading.FillViewSet, basename="fill")
router.register("positions", views_trading.PositionViewSet, basename="position")
router.register("backtests", views_backtests.BacktestViewSet, basename="backtest")

urlpatterns = [
    path("snapshots/<str:symbol>/latest/", views.SnapshotLatestApi.as_view(), name="snapshot-latest"),
    path("flows/<str:symbol>/latest/", views.FlowLatestApi.as_view(), name="flow-latest"),
    path("candles/", views_market.CandleList.as_view(), name="candles"),
    path("equity/", views_equity.EquityApi.as_view(), name="equity"),
    path("health/", views_health.HealthApi.as_view(), name="health"),
    path("sentiment/", views_inputs.SentimentApi.as_view(), name="sentiment"),
    path("uploads/", views_inputs.UploadListApi.as_view(), name="uploads"),
    path("uploads/etf-flows/", views_inputs.EtfFlowsUploadApi.as_view(), name="upload-etf-flows"),
    path("uploads/liquidation-zones/", views_inputs.LiquidationZonesUploadApi.as_view(),
         name="upload-liquidation-zones"),
    path("control/", views_control.ControlStateApi.as_view(), name="control"),
    path("control/mode/", views_control.ModeApi.as_view(), name="control-mode"),
    path("control/pause/", views_control.PauseApi.as_view(), name="control-pause"),
    path("control/resume/", views_control.ResumeApi.as_view(), name="control-resume"),
    path("control/stop/", views_control.StopApi.as_view(), name="control-stop"),
    path("schema/", views_docs.SchemaApi.as_view(), name="schema"),
    path("docs/", views_docs.swagger_ui(), name="docs"),
    path("", include(router.urls)),
]
