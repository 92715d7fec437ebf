"""Dashboard routes of the chart page (included by dashboard/urls.py under the dashboard namespace)."""
from django.urls import path

from dashboard import views_chart

urlpatterns: list = [
    path("chart/", views_chart.chart, name="chart"),
    path("chart/data.json", views_chart.chart_json, name="chart-data"),
]
