from django.urls import path

from dashboard.api import views

app_name = "api"
urlpatterns = [
    path("snapshots/<str:symbol>/latest/", views.SnapshotLatestApi.as_view(), name="snapshot-latest"),
    path("flows/<str:symbol>/latest/", views.FlowLatestApi.as_view(), name="flow-latest"),
]
