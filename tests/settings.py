"""Test settings: the project's settings with fast, isolated overrides."""
import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")

from tradingbot.settings import *  # noqa: E402,F401,F403
from tradingbot.settings import MIDDLEWARE, Q_CLUSTER  # noqa: E402

# Tasks run inline so a test sees their effects.
Q_CLUSTER = {**Q_CLUSTER, "sync": True}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
BROKER = "paper"
DATA_SOURCE = "replay"
# WhiteNoise serves collected files in production; tests use the staticfiles finders directly.
MIDDLEWARE = [m for m in MIDDLEWARE if m != "whitenoise.middleware.WhiteNoiseMiddleware"]  # noqa: F405
