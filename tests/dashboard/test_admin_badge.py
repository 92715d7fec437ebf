"""The admin index's live badge: its markup and script, and the websocket messages that fill it."""
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.staticfiles import finders
from django.contrib.auth import get_user_model
from django.urls import reverse

from dashboard.consumers import LiveConsumer
from dashboard.tasks import health_run, heartbeat_beat
from tests.dashboard.factories import AccountFactory, InstrumentFactory, PositionFactory, TradingConfigFactory


@pytest.mark.django_db
def test_admin_index_shows_the_live_badge_above_the_app_list(admin_client):
    response = admin_client.get(reverse("admin:index"))

    body = response.content.decode()
    assert response.status_code == 200
    assert "data-live-badge" in body
    for part in ("mode", "positions", "health", "conn"):
        assert f'data-badge="{part}"' in body
    assert "dashboard/admin_badge.js" in body and "dashboard/health.css" in body
    assert f'href="{reverse("dashboard:health")}"' in body
    # The stock index is still there, below the badge.
    assert body.index("data-live-badge") < body.index('id="content-main"')


def test_admin_badge_script_and_styles_are_served():
    script = open(finders.find("dashboard/admin_badge.js")).read()

    assert "/ws/live/" in script and "'health'" in script and "'state'" in script
    assert finders.find("dashboard/health.css")


# -- what the badge receives over ws/live/ ---------------------------------------------------------------

@database_sync_to_async
def _admin_with_market():
    TradingConfigFactory(mode="HYBRID")
    instrument = InstrumentFactory(data_source="simulated")
    account = AccountFactory(name="paper-simulated", balance_usdt=Decimal("10000"))
    PositionFactory(account=account, instrument=instrument)
    heartbeat_beat()
    return get_user_model().objects.create_superuser("boss", password="pw")


async def _connect(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


@pytest.mark.django_db(transaction=True)
async def test_live_state_gives_the_badge_mode_open_positions_and_health():
    user = await _admin_with_market()
    await sync_to_async(health_run)()
    communicator = await _connect(user)

    state = (await communicator.receive_json_from())["data"]

    assert state["mode"] == "HYBRID"
    assert len(state["positions"]) == 1
    assert state["health"]["label"] == "ok" and state["health"]["ok"] is True
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_health_task_pushes_its_summary_to_a_connected_badge():
    user = await _admin_with_market()
    communicator = await _connect(user)
    await communicator.receive_json_from()  # the state

    await sync_to_async(health_run)()

    message = await communicator.receive_json_from(timeout=5)
    assert message["event"] == "health"
    assert message["data"]["summary"]["label"] == "ok"
    assert {c["group"] for c in message["data"]["checks"]} >= {"database", "channels", "workers"}
    await communicator.disconnect()
