"""Settings of the processes a cross-process test starts: the test settings on the test's own database.

The pytest process passes its test database (after pytest-django created it) as JSON in
TRADINGBOT_TEST_DATABASE. With TRADINGBOT_TEST_REDIS_URL the channel layer is the one production
builds from REDIS_URL (tradingbot/settings.py), not a copy of it, so the tests run its real shape.
"""
import json
import os

if os.environ.get("TRADINGBOT_TEST_REDIS_URL"):
    os.environ["REDIS_URL"] = os.environ["TRADINGBOT_TEST_REDIS_URL"]

from tests.settings import *  # noqa: E402,F401,F403
from tradingbot import settings as production  # noqa: E402

DATABASES = {"default": json.loads(os.environ["TRADINGBOT_TEST_DATABASE"])}
if os.environ.get("TRADINGBOT_TEST_REDIS_URL"):
    CHANNEL_LAYERS = production.CHANNEL_LAYERS
    Q_CLUSTER = {**production.Q_CLUSTER, "sync": True}
