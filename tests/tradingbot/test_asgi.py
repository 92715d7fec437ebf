"""The real ASGI application: websocket routing, session authentication, origin check."""
import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from tradingbot.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def _session_cookie() -> str:
    get_user_model().objects.create_user("trader", password="pw")
    client = Client()
    assert client.login(username="trader", password="pw")
    return client.cookies["sessionid"].value


async def test_asgi_websocket_with_session_cookie_gets_state():
    cookie = await _session_cookie()
    headers = [(b"cookie", f"sessionid={cookie}".encode()), (b"origin", b"http://localhost")]
    communicator = WebsocketCommunicator(application, "/ws/live/", headers=headers)

    connected, _ = await communicator.connect()

    assert connected
    assert (await communicator.receive_json_from())["event"] == "state"
    await communicator.disconnect()


async def test_asgi_websocket_foreign_origin_is_refused():
    communicator = WebsocketCommunicator(application, "/ws/live/", headers=[(b"origin", b"http://evil.example")])

    connected, _ = await communicator.connect()

    assert not connected
