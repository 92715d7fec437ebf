"""Dashboard routes of the backtests page (included by dashboard/urls.py under the dashboard namespace)."""

urlpatterns: list = []
