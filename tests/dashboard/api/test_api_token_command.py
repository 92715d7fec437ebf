"""The api_token command: prints a user's token, creates it once, rotates on request."""
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

from dashboard import roles

pytestmark = pytest.mark.django_db


def token_of(*args) -> str:
    out = StringIO()
    call_command("api_token", *args, stdout=out, stderr=StringIO())
    return out.getvalue().strip()


def test_api_token_creates_the_user_with_a_role_then_prints_the_same_token(django_user_model):
    first = token_of("--user", "script", "--create", "--role", "operator")
    again = token_of("--user", "script")

    user = django_user_model.objects.get(username="script")
    assert first == again == Token.objects.get(user=user).key and len(first) == 40
    assert roles.role_of(user) == "operator" and not user.has_usable_password()


def test_api_token_rotate_replaces_the_token(django_user_model):
    old = token_of("--user", "script", "--create")

    new = token_of("--user", "script", "--rotate")

    assert new != old and not Token.objects.filter(key=old).exists()


def test_api_token_unknown_user_without_create_is_refused():
    with pytest.raises(CommandError, match="no user 'ghost'; pass --create"):
        token_of("--user", "ghost")


def test_api_token_printed_token_authenticates(api):
    key = token_of("--user", "script", "--create")
    client = api(None)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")

    assert client.get("/api/control/").status_code == 200
