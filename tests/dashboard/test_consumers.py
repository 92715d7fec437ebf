from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.test import Client

from dashboard.consumers import LiveConsumer
from dashboard.events import layer_in_memory, uses_outbox
from dashboard.events import broadcast
from tests.dashboard.factories import AccountFactory, InstrumentFactory, TradingConfigFactory

# The consumer reads the database from a worker thread, which a rolled-back test transaction would hide.
pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def make_user():
    return get_user_model().objects.create_user("trader", password="pw")


@database_sync_to_async
def make_market():
    TradingConfigFactory(mode="ON")
    InstrumentFactory(data_source="simulated")
    AccountFactory(balance_usdt=Decimal("10000"))


async def connect_as(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def test_live_consumer_connect_sends_current_state():
    await make_market()
    communicator = await connect_as(await make_user())

    message = await communicator.receive_json_from()

    assert message["event"] == "state"
    assert message["data"]["mode"] == "ON"
    assert message["data"]["broker"] == "paper"
    assert message["data"]["data_source"]["label"] == "SIMULATED market - not real prices"
    assert message["data"]["account"]["equity_usdt"] == "10000.00"
    await communicator.disconnect()


async def test_live_consumer_broadcast_is_forwarded():
    communicator = await connect_as(await make_user())
    await communicator.receive_json_from()  # the state

    price = {"instrument_id": 1, "price": Decimal("65000.1"), "ts": "2024-03-01T12:00:00Z"}
    await sync_to_async(broadcast)("price", price)

    message = await communicator.receive_json_from()
    assert message == {"event": "price", "data": {"instrument_id": 1, "price": "65000.1", "ts": "2024-03-01T12:00:00Z"}}
    await communicator.disconnect()


async def test_live_consumer_refresh_request_resends_state():
    communicator = await connect_as(await make_user())
    await communicator.receive_json_from()

    await communicator.send_json_to({"type": "refresh"})

    assert (await communicator.receive_json_from())["event"] == "state"
    await communicator.disconnect()


async def test_live_consumer_web_process_starts_outbox_relay(monkeypatch):
    started = []
    monkeypatch.setenv("TRADINGBOT_PROCESS_ROLE", "web")
    monkeypatch.setattr("dashboard.relay.ensure_relay_running", lambda: started.append(True))

    communicator = await connect_as(await make_user())

    assert started
    await communicator.disconnect()


async def test_live_consumer_on_a_redis_layer_starts_no_outbox_relay(monkeypatch, settings):
    # On Redis every process sends to the layer itself: there is no outbox to read 4 times a second.
    started = []
    monkeypatch.setenv("TRADINGBOT_PROCESS_ROLE", "web")
    monkeypatch.setattr("dashboard.relay.ensure_relay_running", lambda: started.append(True))
    redis = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer"}}
    monkeypatch.setattr("dashboard.consumers.layer_in_memory",
                        lambda: "InMemory" in redis["default"]["BACKEND"])  # the page itself stays in memory

    communicator = await connect_as(await make_user())

    assert (await communicator.receive_json_from())["event"] == "state"
    assert started == []
    await communicator.disconnect()
    settings.CHANNEL_LAYERS = redis
    assert not layer_in_memory() and not uses_outbox()


async def test_live_consumer_anonymous_is_closed_with_4401():
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    communicator.scope["user"] = AnonymousUser()

    await communicator.connect()

    assert await communicator.receive_output() == {"type": "websocket.close", "code": 4401}


async def test_live_consumer_anonymous_receives_no_broadcast():
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    communicator.scope["user"] = AnonymousUser()
    await communicator.connect()
    await communicator.receive_output()  # the close

    await sync_to_async(broadcast)("status", {"mode": "ON"})

    assert await communicator.receive_nothing()


@sync_to_async
def session_cookie() -> str:
    client = Client()
    client.force_login(get_user_model().objects.create_user("browser", password="pw"))
    return client.cookies[settings.SESSION_COOKIE_NAME].value


async def test_asgi_application_session_cookie_authenticates_websocket():
    from tradingbot.asgi import application

    cookie = await session_cookie()
    headers = [(b"origin", b"http://localhost"), (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode())]
    communicator = WebsocketCommunicator(application, "/ws/live/", headers=headers)

    connected, _ = await communicator.connect()

    assert connected
    assert (await communicator.receive_json_from())["event"] == "state"
    await communicator.disconnect()


async def test_asgi_application_without_session_closes_with_4401():
    from tradingbot.asgi import application

    communicator = WebsocketCommunicator(application, "/ws/live/", headers=[(b"origin", b"http://localhost")])

    await communicator.connect()

    assert await communicator.receive_output() == {"type": "websocket.close", "code": 4401}
