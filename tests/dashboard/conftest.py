"""Logged-in clients for the three roles (dashboard.roles), shared by the dashboard pages' tests."""
import pytest
from django.contrib.auth.models import Group


def user_with_role(django_user_model, username: str, role: str | None):
    """Create a user holding `role` (a group name), or no group at all (a viewer)."""
    user = django_user_model.objects.create_user(username, password="pw")
    if role:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


@pytest.fixture
def operator_client(client, django_user_model):
    client.force_login(user_with_role(django_user_model, "operator", "operator"))
    return client


@pytest.fixture
def admin_role_client(client, django_user_model):
    client.force_login(user_with_role(django_user_model, "chief", "admin"))
    return client


@pytest.fixture
def viewer_client(client, django_user_model):
    client.force_login(user_with_role(django_user_model, "viewer", None))
    return client
