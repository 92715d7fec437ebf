"""Dashboard routes of the drift page (included by dashboard/urls.py under the dashboard namespace)."""

urlpatterns: list = []
