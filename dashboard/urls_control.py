"""Dashboard routes of the control page (included by dashboard/urls.py under the dashboard namespace)."""

urlpatterns: list = []
