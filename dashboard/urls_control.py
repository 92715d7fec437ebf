"""Dashboard routes of the control page (included by dashboard/urls.py under the dashboard namespace)."""
from django.urls import path

from dashboard import views_control

urlpatterns: list = [
    path("control/", views_control.control_page, name="control"),
    path("control/mode/", views_control.mode_switch, name="control-mode"),
    path("control/pause/", views_control.pause, name="control-pause"),
    path("control/resume/", views_control.resume, name="control-resume"),
    path("control/stop/", views_control.stop, name="control-stop"),
    path("control/kill/", views_control.kill, name="control-kill"),
]
