"""Dashboard routes of the backtests page (included by dashboard/urls.py under the dashboard namespace)."""
from django.urls import path

from dashboard import views_backtests

urlpatterns = [
    path("backtests/", views_backtests.backtests, name="backtests"),
    path("backtests/start/", views_backtests.backtest_start, name="backtest-start"),
    path("backtests/walk-forward/", views_backtests.walkforward_start, name="backtest-walkforward"),
    path("backtests/sweep/", views_backtests.sweep_start, name="backtest-sweep"),
    path("backtests/<int:pk>/", views_backtests.backtest, name="backtest"),
    path("backtests/<int:pk>/progress.json", views_backtests.backtest_progress, name="backtest-progress"),
    path("backtests/<int:pk>/report.html", views_backtests.backtest_export, name="backtest-export"),
]
