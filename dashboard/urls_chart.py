"""Dashboard routes of the chart page (included by dashboard/urls.py under the dashboard namespace)."""

urlpatterns: list = []
