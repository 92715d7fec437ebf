"""URLs for the canary test: the real site plus views that fail with exchange keys in the message."""
from django.conf import settings
from django.urls import include, path

from execution.models import Account
from execution.secrets import account_keys_get


def fail_with_environment_keys(request):
    raise RuntimeError(f"venue refused {settings.EXCHANGE_API_KEY} / {settings.EXCHANGE_API_SECRET}")


def fail_with_account_keys(request, pk: int):
    api_key, api_secret = account_keys_get(Account.objects.get(pk=pk))
    raise RuntimeError(f"venue refused apiKey={api_key}&secret={api_secret}")


urlpatterns = [
    path("canary/boom/", fail_with_environment_keys),
    path("canary/boom/<int:pk>/", fail_with_account_keys),
    path("", include("tradingbot.urls")),
]
