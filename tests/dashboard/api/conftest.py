"""API clients authenticated by token, one per role, and clean throttle and equity caches for every test."""
import pytest
from django.core.cache import cache

from dashboard import equity_curve
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.dashboard.conftest import user_with_role

ROLES = {"viewer": None, "operator": "operator", "admin": "admin"}


@pytest.fixture(autouse=True)
def throttle_cache_clear():
    # The throttles count requests in the default cache; each test starts from zero.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def equity_cache_clear():
    # The equity curves kept in this process belong to the test that computed them.
    equity_curve.cache_clear()
    yield
    equity_curve.cache_clear()


@pytest.fixture
def api(django_user_model):
    """Return api(role): an APIClient sending the token of a new user with that role; api(None) is anonymous."""
    def make(role: str | None) -> APIClient:
        client = APIClient()
        if role is not None:
            user = user_with_role(django_user_model, f"api-{role}", ROLES[role])
            client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        return client
    return make


@pytest.fixture
def viewer_api(api):
    return api("viewer")


@pytest.fixture
def operator_api(api):
    return api("operator")


@pytest.fixture
def admin_api(api):
    return api("admin")
