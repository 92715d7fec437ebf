"""Dashboard pages and their JSON and CSV endpoints."""
from django.urls import path

from dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("equity/", views.equity, name="equity"),
    path("equity/data.json", views.equity_data, name="equity-data"),
    path("equity/export.csv", views.equity_export, name="equity-export"),
]
