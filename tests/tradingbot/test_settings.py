"""Settings read from the environment: databases, channel layer, task broker."""
import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection


def _settings_in_subprocess(**env) -> dict:
    """Return selected settings as a fresh process sees them with `env`."""
    code = (
        "import json, tradingbot.settings as s;"
        "print(json.dumps({'layer': s.CHANNEL_LAYERS['default']['BACKEND'],"
        " 'q_redis': s.Q_CLUSTER.get('redis'), 'q_orm': s.Q_CLUSTER.get('orm'),"
        " 'db': s.DATABASES['default']['ENGINE'], 'db_options': s.DATABASES['default'].get('OPTIONS', {})}))"
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, "SECRET_KEY": "x", "ENV_FILE": "/nonexistent", **env},
                         cwd=settings.BASE_DIR, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_settings_defaults_are_embedded():
    seen = _settings_in_subprocess()

    assert seen["layer"] == "channels.layers.InMemoryChannelLayer"
    assert seen["q_orm"] == "default" and seen["q_redis"] is None
    assert seen["db"] == "django.db.backends.sqlite3"
    assert seen["db_options"]["transaction_mode"] == "IMMEDIATE"


def test_settings_redis_url_switches_layer_and_broker():
    seen = _settings_in_subprocess(REDIS_URL="redis://127.0.0.1:6379/0")

    assert seen["layer"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    assert seen["q_redis"] == "redis://127.0.0.1:6379/0" and seen["q_orm"] is None


def test_settings_mysql_url_sets_utf8mb4_and_strict_mode():
    seen = _settings_in_subprocess(DATABASE_URL="mysql://u:p@127.0.0.1:3306/db")

    assert seen["db"] == "django.db.backends.mysql"
    assert seen["db_options"]["charset"] == "utf8mb4"
    assert "STRICT_TRANS_TABLES" in seen["db_options"]["init_command"]


def test_settings_missing_secret_key_refuses_to_start():
    code = "import tradingbot.settings"
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}

    result = subprocess.run([sys.executable, "-c", code], env={**env, "ENV_FILE": "/nonexistent"},
                            cwd=settings.BASE_DIR, capture_output=True, text=True)

    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "mysql", reason="MariaDB session settings")
def test_mariadb_session_is_strict_utc_utf8mb4():
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@SESSION.sql_mode, @@SESSION.time_zone, @@character_set_connection")
        sql_mode, time_zone, charset = cursor.fetchone()

    assert "STRICT_TRANS_TABLES" in sql_mode
    assert time_zone == "+00:00"
    assert charset == "utf8mb4"
