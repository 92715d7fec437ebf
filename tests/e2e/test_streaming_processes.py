"""Live events across processes: a worker's commit reaches a dashboard client in another process.

Two transports, as in production: channels-redis (the worker sends to Redis, the web process's
consumer receives from it) and the in-memory layer (the worker writes the LiveEvent outbox and
rings the doorbell; the web process's relay forwards). The last tests run the whole topology:
daphne as the web process, a worker process, and a websocket client logged in by session cookie.
"""
import asyncio
import datetime as dt
from decimal import Decimal

import aiohttp
import pytest
from channels_redis.core import RedisChannelLayer
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client

from dashboard import relay
from dashboard.consumers import LiveConsumer
from dashboard.events import ROLE_ENV, broadcast, doorbell_ring
from dashboard.models import LiveEvent
from execution.models import EquityPoint, Position
from execution.services import account_ensure
from tests.approval_fixtures import pending_decision_create
from tests.dashboard.conftest import user_with_role
from tests.dashboard.factories import TradingConfigFactory
from tests.e2e.processes import daphne_start, production_channel_layers, worker_run

pytestmark = pytest.mark.django_db(transaction=True)

# A Wednesday afternoon, inside the default trading hours (07:00-23:00 Warsaw).
NOW = dt.datetime(2026, 11, 25, 14, 10, tzinfo=dt.UTC)


@database_sync_to_async
def paper_account():
    TradingConfigFactory(mode="HYBRID")
    return account_ensure(name="paper")


@database_sync_to_async
def pending_decision():
    """Store a HYBRID decision waiting for approval, priced by closed 1m candles inside its entry zone."""
    return pending_decision_create(NOW)


async def connect() -> WebsocketCommunicator:
    user = await database_sync_to_async(user_with_role)(get_user_model(), "viewer", None)
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    communicator.scope["user"] = user
    assert (await communicator.connect())[0]
    assert (await communicator.receive_json_from())["event"] == "state"
    return communicator


async def next_event(communicator, name: str) -> dict:
    """Return the data of the next `name` event, skipping others (the relay's readiness probes)."""
    while (message := await communicator.receive_json_from(timeout=10))["event"] != name:
        pass
    return message["data"]


async def layer_closed() -> None:
    """Close this loop's Redis connections (the core layer pools them; the pub/sub layer flushes)."""
    layer = get_channel_layer()
    await (layer.close_pools() if hasattr(layer, "close_pools") else layer.flush())


async def test_redis_layer_event_committed_in_worker_process_reaches_client(redis_url, settings):
    settings.CHANNEL_LAYERS = production_channel_layers(redis_url)
    account = await paper_account()
    communicator = await connect()

    output = await sync_to_async(worker_run)("equity", "paper", NOW.isoformat(), redis_url=redis_url)

    equity = await next_event(communicator, "equity")
    stored = await database_sync_to_async(EquityPoint.objects.get)(account=account, ts=NOW)
    assert output.startswith(f"equity {stored.pk} ")
    assert (equity["account_id"], Decimal(equity["equity_usdt"]), equity["ts"]) == \
        (account.pk, stored.equity_usdt, "2026-11-25T14:10:00Z")
    assert not await database_sync_to_async(LiveEvent.objects.exists)()  # straight through Redis
    await communicator.disconnect()
    await layer_closed()


async def test_redis_layer_client_idle_longer_than_the_layers_blocking_read_still_receives(redis_url, settings):
    # channels-redis blocks BZPOPMIN for brpop_timeout seconds; a client socket timeout no longer
    # than that (redis-py 8 defaults to 5 s, the same) ends the consumer on its first idle wait.
    settings.CHANNEL_LAYERS = production_channel_layers(redis_url)
    communicator = await connect()
    await asyncio.sleep(RedisChannelLayer.brpop_timeout + 1)

    await get_channel_layer().group_send("live", {"type": "live.event", "event": "status", "data": {"mode": "SAFE"}})

    assert await communicator.receive_json_from(timeout=10) == {"event": "status", "data": {"mode": "SAFE"}}
    await communicator.disconnect()
    await layer_closed()


async def test_redis_layer_many_pages_connecting_at_once_all_join_and_receive(redis_url, settings):
    # After a restart every open page reconnects at once: each join is a Redis command, and redis-py 8's
    # pool refuses the 101st concurrent connection instead of waiting for one.
    settings.CHANNEL_LAYERS = production_channel_layers(redis_url)
    user = await database_sync_to_async(user_with_role)(get_user_model(), "viewer", None)
    pages = [WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/") for _ in range(150)]
    for page in pages:
        page.scope["user"] = user

    joined = await asyncio.gather(*(page.connect(timeout=30) for page in pages))
    assert all(accepted for accepted, _ in joined)
    states = await asyncio.gather(*(page.receive_json_from(timeout=30) for page in pages))
    assert {state["event"] for state in states} == {"state"}
    await get_channel_layer().group_send("live", {"type": "live.event", "event": "status", "data": {"n": 1}})

    events = await asyncio.gather(*(page.receive_json_from(timeout=30) for page in pages))
    assert events == [{"event": "status", "data": {"n": 1}}] * len(pages)
    await asyncio.gather(*(page.disconnect() for page in pages))
    await layer_closed()


async def relay_ready(communicator, monkeypatch) -> None:
    """Start this process's relay and return once it forwards (it skips rows older than its first read)."""
    relay.ensure_relay_running()
    monkeypatch.setenv(ROLE_ENV, "worker")
    while True:
        await sync_to_async(broadcast)("ready", {})
        if not await communicator.receive_nothing(timeout=0.2):
            break
    monkeypatch.delenv(ROLE_ENV)


async def test_outbox_event_committed_in_worker_process_reaches_client_through_relay(monkeypatch):
    monkeypatch.setattr(relay, "POLL_SECONDS", 60)  # the worker's doorbell, not the poll, must wake the relay
    account = await paper_account()
    communicator = await connect()
    await relay_ready(communicator, monkeypatch)

    await sync_to_async(worker_run)("equity", "paper", NOW.isoformat())

    equity = await next_event(communicator, "equity")
    stored = await database_sync_to_async(EquityPoint.objects.get)(account=account, ts=NOW)
    assert (equity["account_id"], Decimal(equity["equity_usdt"])) == (account.pk, stored.equity_usdt)
    assert await database_sync_to_async(LiveEvent.objects.filter(event="equity").count)() == 1
    await communicator.disconnect()
    relay._task.cancel()


@sync_to_async
def session_cookie() -> str:
    client = Client()
    client.force_login(user_with_role(get_user_model(), "watcher", None))
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


async def receive_until(socket, wanted: set[str]) -> dict[str, dict]:
    seen = {}
    while not wanted <= seen.keys():
        message = await socket.receive_json(timeout=10)
        seen.setdefault(message["event"], message["data"])
    return seen


@pytest.fixture(params=["in-memory", "redis"])
def live_site(request, tmp_path):
    """Yield (daphne's URL, the Redis URL or "") for each channel layer."""
    if request.param == "in-memory":
        yield request.getfixturevalue("web_server"), ""
        return
    redis_url = request.getfixturevalue("redis_url")
    server, url = daphne_start(tmp_path, redis_url=redis_url)
    yield url, redis_url
    server.stop()


async def daphne_relay_ready(socket) -> None:
    """Return once daphne's relay forwards outbox rows (it skips the rows older than its first read)."""
    while True:
        await sync_to_async(outbox_write)("ready")
        try:
            if (await socket.receive_json(timeout=0.5))["event"] == "ready":
                return
        except asyncio.TimeoutError:
            continue


def outbox_write(event: str) -> None:
    LiveEvent.objects.create(event=event, data={})
    doorbell_ring()


async def test_browser_client_on_daphne_receives_events_of_approval_in_worker_process(live_site):
    url, redis_url = live_site
    decision = await pending_decision()
    cookie = await session_cookie()
    async with aiohttp.ClientSession() as http:
        headers = {"Origin": url, "Cookie": f"{django_settings.SESSION_COOKIE_NAME}={cookie}"}
        async with http.ws_connect(url.replace("http", "ws") + "/ws/live/", headers=headers) as socket:
            state = await socket.receive_json(timeout=10)
            assert state["event"] == "state" and state["data"]["positions"] == []
            if not redis_url:
                await daphne_relay_ready(socket)

            await sync_to_async(worker_run)("approve", str(decision.pk), NOW.isoformat(), redis_url=redis_url)

            seen = await receive_until(socket, {"decision", "order", "fill", "position"})
    position = await database_sync_to_async(Position.objects.get)(decision=decision)
    assert seen["position"]["id"] == position.pk
    assert seen["decision"]["outcome"] == "executed"
    assert Decimal(seen["fill"]["quantity"]) == position.quantity
