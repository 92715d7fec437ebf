"""Probes at the site root: /health answers while the process serves, /ready only when its dependencies are up."""
import pytest
from django.test import override_settings
from django_q.models import Schedule
from django_q.scheduler import scheduler

from dashboard.tasks import heartbeat_beat

pytestmark = pytest.mark.django_db


def test_health_probe_answers_ok_without_login(client):
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_ready_probe_without_workers_is_503_then_200_once_the_heartbeat_schedule_runs(client):
    before = client.get("/ready")
    # The heartbeat schedule as setup_schedules creates it; the scheduler hands due schedules to the
    # cluster, which in tests runs each task inline.
    Schedule.objects.create(name="dashboard: worker heartbeat", func="dashboard.tasks.heartbeat_beat",
                            schedule_type=Schedule.MINUTES, minutes=1, repeats=-1)
    scheduler()
    after = client.get("/ready")

    assert before.status_code == 503
    assert before.json()["status"] == "not ready"
    assert before.json()["failing"] == ["django-q2 workers"]
    assert after.status_code == 200, after.json()
    assert after.json()["status"] == "ready"
    assert [c["name"] for c in after.json()["checks"]] == ["database", "channel layer", "django-q2 workers"]


def test_ready_probe_with_a_channel_layer_that_drops_messages_is_503_naming_it(client):
    heartbeat_beat()

    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer",
                                                       "CONFIG": {"expiry": -1}}}):
        response = client.get("/ready")

    assert response.status_code == 503
    assert response.json()["failing"] == ["channel layer"]
    detail = {c["name"]: c["detail"] for c in response.json()["checks"]}["channel layer"]
    assert "did not come back" in detail


def test_ready_probe_refuses_writes(client):
    assert client.post("/ready").status_code == 405
