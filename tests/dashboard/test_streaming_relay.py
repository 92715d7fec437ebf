"""The outbox relay: worker events reach this process's clients, in order, woken by the doorbell."""
import asyncio
import os
import socket

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from dashboard import events, relay
from dashboard.consumers import LiveConsumer
from dashboard.events import ROLE_ENV, broadcast, broadcast_on_commit
from dashboard.models import LiveEvent

pytestmark = pytest.mark.django_db(transaction=True)


class FakeClock:
    """time.monotonic for the relay's hole deadlines, moved by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(relay.time, "monotonic", fake)
    return fake


def outbox_row(pk: int | None = None, event: str = "order") -> int:
    return LiveEvent.objects.create(pk=pk, event=event, data={"n": pk}).pk


def test_outbox_fetch_starts_after_newest_row_then_returns_new_rows_in_order(clock):
    outbox_row(event="old")
    cursor = relay.Cursor()

    assert relay.outbox_fetch(cursor) == []
    first, second = outbox_row(event="a"), outbox_row(event="b")

    assert [(pk, event) for pk, event, _ in relay.outbox_fetch(cursor)] == [(first, "a"), (second, "b")]
    assert relay.outbox_fetch(cursor) == []


def test_outbox_fetch_row_committed_after_a_higher_id_is_still_forwarded(clock):
    cursor = relay.Cursor()
    base = outbox_row(event="start")
    relay.outbox_fetch(cursor)
    outbox_row(base + 2, "later id, committed first")

    assert [pk for pk, _, _ in relay.outbox_fetch(cursor)] == [base + 2]
    outbox_row(base + 1, "lower id, committed second")
    clock.now += relay.HOLE_SECONDS - 1

    assert [(pk, event) for pk, event, _ in relay.outbox_fetch(cursor)] == [(base + 1, "lower id, committed second")]
    assert relay.outbox_fetch(cursor) == [] and cursor.holes == {}


def test_outbox_fetch_gives_up_a_skipped_id_after_hole_seconds(clock):
    cursor = relay.Cursor()
    base = outbox_row(event="start")
    relay.outbox_fetch(cursor)
    outbox_row(base + 2)
    relay.outbox_fetch(cursor)

    clock.now += relay.HOLE_SECONDS + 1
    outbox_row(base + 1, "too late")

    assert relay.outbox_fetch(cursor) == []
    assert cursor.holes == {}


def test_doorbell_ring_removes_socket_of_a_process_that_is_gone(tmp_path, monkeypatch):
    monkeypatch.setattr(events, "doorbell_dir", lambda: tmp_path)
    dead = tmp_path / "4242.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(dead))  # closed at once: the file stays, nobody listens

    events.doorbell_ring()

    assert not dead.exists()


async def client() -> WebsocketCommunicator:
    user = await database_sync_to_async(get_user_model().objects.create_user)("trader", password="pw")
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    communicator.scope["user"] = user
    assert (await communicator.connect())[0]
    assert (await communicator.receive_json_from())["event"] == "state"
    return communicator


async def relay_ready(communicator) -> None:
    """Start the relay and return once it forwards: it skips what the outbox held before its first read."""
    relay.ensure_relay_running()
    while True:
        await sync_to_async(broadcast)("ready", {})
        # receive_nothing, not a receive with a timeout: a timed-out receive stops the consumer.
        if not await communicator.receive_nothing(timeout=0.2):
            assert (await communicator.receive_json_from())["event"] == "ready"
            return


async def next_event(communicator) -> dict:
    """Return the next message that is not one of relay_ready's probes (a second one may follow late)."""
    while (message := await communicator.receive_json_from(timeout=5))["event"] == "ready":
        pass
    return message


async def relay_stopped() -> None:
    relay._task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await relay._task


async def test_relay_worker_event_wakes_relay_by_doorbell_before_its_poll(monkeypatch):
    monkeypatch.setattr(relay, "POLL_SECONDS", 60)  # only the doorbell can deliver within the test
    monkeypatch.setenv(ROLE_ENV, "worker")
    communicator = await client()
    await relay_ready(communicator)

    await sync_to_async(broadcast_on_commit)("order", {"client_order_id": "abc", "status": "filled"})

    assert await next_event(communicator) == {
        "event": "order", "data": {"client_order_id": "abc", "status": "filled"}}
    assert await database_sync_to_async(LiveEvent.objects.filter(event="order").count)() == 1
    await communicator.disconnect()
    await relay_stopped()


async def test_doorbell_wait_returns_on_a_ring_and_not_before(monkeypatch):
    monkeypatch.setattr(relay, "POLL_SECONDS", 60)
    bell = relay.doorbell_open()
    try:
        waiting = asyncio.ensure_future(relay._wait(bell))
        await asyncio.sleep(0.2)
        assert not waiting.done()

        await asyncio.to_thread(events.doorbell_ring)

        await asyncio.wait_for(waiting, 5)
    finally:
        bell.close()


async def test_relay_without_unix_sockets_forwards_by_polling(monkeypatch):
    monkeypatch.setattr(relay, "doorbell_open", lambda: None)
    communicator = await client()
    relay.ensure_relay_running()
    await asyncio.sleep(relay.POLL_SECONDS * 2)
    monkeypatch.setenv(ROLE_ENV, "worker")

    await sync_to_async(broadcast_on_commit)("fill", {"trade_id": "t1"})

    assert await next_event(communicator) == {"event": "fill", "data": {"trade_id": "t1"}}
    await communicator.disconnect()
    await relay_stopped()


async def test_relay_stopped_removes_its_doorbell_socket():
    communicator = await client()
    await relay_ready(communicator)
    path = events.doorbell_dir() / f"{os.getpid()}.sock"
    assert path.exists()

    await relay_stopped()

    assert not path.exists()
    await communicator.disconnect()
