"""Logged-in clients the dashboard pages' tests share: an operator (staff) and a viewer."""
import pytest


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("operator", password="pw", is_staff=True))
    return client


@pytest.fixture
def viewer_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("viewer", password="pw"))
    return client
