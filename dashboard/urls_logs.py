"""Dashboard routes of the logs page (included by dashboard/urls.py under the dashboard namespace)."""

urlpatterns: list = []
