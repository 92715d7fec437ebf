"""Mode, pause, resume and stop over the API: decisions.control does the work, the API enforces the roles."""
import pytest

from decisions.models import AuditRecord, Mode
from decisions.selectors import trading_config_get

pytestmark = pytest.mark.django_db


def mode_post(client, **body):
    return client.post("/api/control/mode/", body, format="json")


def test_mode_safe_by_operator_is_saved_and_audited(operator_api):
    config = trading_config_get()
    config.mode = Mode.HYBRID
    config.save()

    response = mode_post(operator_api, mode="SAFE", reason="volatile open")

    assert response.status_code == 200
    assert (response.json()["mode"], response.json()["configured_mode"]) == ("SAFE", "SAFE")
    record = AuditRecord.objects.get(kind="mode_change")
    assert record.actor == "api-operator" and "volatile open" in str(record.body)


def test_mode_hybrid_by_admin_is_saved(admin_api):
    response = mode_post(admin_api, mode="HYBRID", reason="approvals from now on")

    assert response.status_code == 200
    assert trading_config_get().mode == Mode.HYBRID


def test_mode_on_without_confirm_is_400_naming_confirm_and_changes_nothing(admin_api):
    response = mode_post(admin_api, mode="ON", reason="go")

    assert response.status_code == 400
    assert list(response.json()) == ["confirm"] and "confirm" in response.json()["confirm"][0]
    assert trading_config_get().mode == Mode.SAFE and not AuditRecord.objects.exists()


def test_mode_on_with_confirm_by_admin_is_saved(admin_api):
    response = mode_post(admin_api, mode="ON", reason="strategy reviewed", confirm=True)

    assert response.status_code == 200 and response.json()["mode"] == "ON"


def test_mode_on_by_operator_is_403_even_confirmed(operator_api):
    response = mode_post(operator_api, mode="ON", reason="go", confirm=True)

    assert response.status_code == 403
    assert trading_config_get().mode == Mode.SAFE


@pytest.mark.parametrize("body, field", [
    ({"mode": "TURBO", "reason": "x"}, "mode"),
    ({"mode": "SAFE"}, "reason"),
    ({"mode": "SAFE", "reason": ""}, "reason"),
    ({"mode": "SAFE", "reason": "x" * 300}, "reason"),
])
def test_mode_bad_body_is_400_naming_the_field(operator_api, body, field):
    response = operator_api.post("/api/control/mode/", body, format="json")

    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_pause_then_resume_by_operator(operator_api):
    paused = operator_api.post("/api/control/pause/", {"reason": "CPI at 14:30"}, format="json")
    resumed = operator_api.post("/api/control/resume/", format="json")

    assert (paused.status_code, paused.json()["paused"]) == (200, True)
    assert (resumed.status_code, resumed.json()["paused"]) == (200, False)
    assert AuditRecord.objects.filter(actor="api-operator").count() == 2


def test_stop_pauses_and_reports_what_it_cancelled(operator_api):
    response = operator_api.post("/api/control/stop/", {"reason": "end of day"}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["paused"] is True and (body["cancelled"], body["errors"]) == ([], [])
    assert trading_config_get().paused


def test_pause_reason_too_long_is_400(operator_api):
    response = operator_api.post("/api/control/pause/", {"reason": "x" * 300}, format="json")

    assert response.status_code == 400 and list(response.json()) == ["reason"]
    assert not trading_config_get().paused


def test_viewer_cannot_pause(viewer_api):
    assert viewer_api.post("/api/control/pause/", format="json").status_code == 403
    assert not trading_config_get().paused
