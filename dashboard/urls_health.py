"""Dashboard routes of the health page (included by dashboard/urls.py under the dashboard namespace)."""

urlpatterns: list = []
