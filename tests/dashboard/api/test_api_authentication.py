"""Token authentication reads the token, its user and the user's role in one query, with DRF's refusals."""
import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.test import APIClient

from dashboard.api.authentication import TokenRoleAuthentication
from dashboard.roles import ADMIN, OPERATOR, VIEWER, role_of
from tests.dashboard.conftest import user_with_role

pytestmark = pytest.mark.django_db


def _token(django_user_model, name: str, *groups: str) -> Token:
    user = user_with_role(django_user_model, name, None)
    for group in groups:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    return Token.objects.create(user=user)


@pytest.mark.parametrize("groups, role", [
    ((), VIEWER), ((OPERATOR,), OPERATOR), ((ADMIN,), ADMIN), ((OPERATOR, ADMIN), ADMIN), (("traders",), VIEWER),
])
def test_one_query_gives_the_user_its_token_and_its_role(django_user_model, groups, role):
    stored = _token(django_user_model, "script", *groups)

    with CaptureQueriesContext(connection) as queries:
        user, token = TokenRoleAuthentication().authenticate_credentials(stored.key)
        held = role_of(user)      # the permission check: no query of its own now

    assert len(queries.captured_queries) == 1
    assert held == role
    assert (user.pk, user.username, user.is_active) == (stored.user.pk, "script", True)
    assert user.date_joined == stored.user.date_joined and user.password == stored.user.password
    assert (token.key, token.user_id, token.created) == (stored.key, stored.user.pk, stored.created)


def test_a_superuser_is_an_admin_whatever_the_groups(django_user_model):
    stored = _token(django_user_model, "root")
    stored.user.is_superuser = True
    stored.user.save()

    user, _ = TokenRoleAuthentication().authenticate_credentials(stored.key)

    assert user.is_superuser and role_of(user) == ADMIN


def test_unknown_key_and_inactive_user_are_refused_as_drf_refuses_them(django_user_model):
    stored = _token(django_user_model, "gone", OPERATOR)
    with pytest.raises(AuthenticationFailed, match="Invalid token."):
        TokenRoleAuthentication().authenticate_credentials("0" * 40)

    stored.user.is_active = False
    stored.user.save()
    with pytest.raises(AuthenticationFailed, match="User inactive or deleted."):
        TokenRoleAuthentication().authenticate_credentials(stored.key)


def test_revoked_tokens_and_changed_groups_count_from_the_next_request(django_user_model):
    stored = _token(django_user_model, "ops")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {stored.key}")

    assert client.post("/api/control/pause/", {"reason": "x"}, format="json").status_code == 403   # a viewer
    stored.user.groups.add(Group.objects.get_or_create(name=OPERATOR)[0])
    assert client.post("/api/control/pause/", {"reason": "x"}, format="json").status_code == 200   # now operator
    stored.delete()
    refused = client.get("/api/decisions/")
    assert refused.status_code == 401 and refused.json() == {"detail": "Invalid token."}
