"""Throttling: the per-user request rate from REST_FRAMEWORK, answered with 429 and Retry-After.

Anonymous requests are refused (401) by the permission check, which DRF runs before the throttles.
"""
import pytest
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

pytestmark = pytest.mark.django_db


@pytest.fixture
def low_rates(settings, monkeypatch):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"user": "3/minute", "anon": "2/minute"}}
    # DRF binds the rates when its throttle classes are defined; read them again from the new settings.
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", api_settings.DEFAULT_THROTTLE_RATES)


def test_user_over_the_rate_gets_429_with_retry_after(low_rates, viewer_api):
    codes = [viewer_api.get("/api/instruments/").status_code for _ in range(4)]
    last = viewer_api.get("/api/instruments/")

    assert codes == [200, 200, 200, 429]
    assert last.status_code == 429 and int(last["Retry-After"]) > 0
    assert last.json()["detail"].startswith("Request was throttled.")


def test_each_user_has_its_own_budget(low_rates, api):
    first, second = api("viewer"), api("operator")
    for _ in range(3):
        first.get("/api/instruments/")

    assert first.get("/api/instruments/").status_code == 429
    assert second.get("/api/instruments/").status_code == 200
