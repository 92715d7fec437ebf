"""events_batched: one engine cycle's events reach the channel layer (or the outbox) together, in order."""
import asyncio
import threading

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from dashboard.events import LIVE_GROUP, ROLE_ENV, broadcast, broadcast_on_commit, events_batched
from dashboard.models import LiveEvent

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def listener():
    """Return a function giving the (event, data) pairs the live group has received so far."""
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(LIVE_GROUP, channel)

    async def drain() -> list[tuple[str, dict]]:
        out = []
        while True:
            try:   # the in-memory layer has its messages queued already: a short wait ends the drain
                message = await asyncio.wait_for(layer.receive(channel), 0.05)
            except asyncio.TimeoutError:
                return out
            out.append((message["event"], message["data"]))

    yield async_to_sync(drain)
    async_to_sync(layer.group_discard)(LIVE_GROUP, channel)


def test_events_inside_the_block_are_sent_when_it_ends_in_order(listener, monkeypatch):
    monkeypatch.delenv(ROLE_ENV, raising=False)
    with events_batched():
        broadcast("price", {"n": 1})
        with transaction.atomic():
            broadcast_on_commit("order", {"n": 2})
        broadcast("equity", {"n": 3})
        assert listener() == []                  # nothing yet: the batch waits for the block's end

    assert listener() == [("price", {"n": 1}), ("order", {"n": 2}), ("equity", {"n": 3})]


def test_a_block_that_raises_still_sends_what_was_committed_but_not_what_rolled_back(listener, monkeypatch):
    monkeypatch.delenv(ROLE_ENV, raising=False)
    with pytest.raises(RuntimeError), events_batched():
        broadcast("price", {"n": 1})
        with transaction.atomic():
            broadcast_on_commit("order", {"n": 2})
            raise RuntimeError("the cycle failed")

    assert listener() == [("price", {"n": 1})]


def test_a_worker_batch_is_one_outbox_insert(monkeypatch):
    monkeypatch.setenv(ROLE_ENV, "worker")      # the in-memory layer: workers hand events over the outbox
    with CaptureQueriesContext(connection) as queries, events_batched():
        for n in range(4):
            broadcast("equity", {"n": n})

    inserts = [q for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 1
    assert list(LiveEvent.objects.order_by("id").values_list("event", "data")) == [("equity", {"n": n})
                                                                                   for n in range(4)]


def _sends_on_loops(monkeypatch) -> list:
    """Record the event loop each group_send of the layer runs on."""
    layer, loops = get_channel_layer(), []
    inner = layer.group_send

    async def recording(group, message):
        loops.append(asyncio.get_running_loop())
        await inner(group, message)

    monkeypatch.setattr(layer, "group_send", recording)
    return loops


def test_sends_from_a_thread_without_async_caller_reuse_one_loop_of_that_thread(listener, monkeypatch):
    monkeypatch.delenv(ROLE_ENV, raising=False)
    loops = _sends_on_loops(monkeypatch)

    broadcast("price", {"n": 1})
    broadcast("equity", {"n": 2})
    other: list = []
    worker = threading.Thread(target=lambda: (broadcast("order", {"n": 3}), other.extend(loops[2:])))
    worker.start()
    worker.join()

    assert listener() == [("price", {"n": 1}), ("equity", {"n": 2}), ("order", {"n": 3})]
    # One loop kept for this thread (async_to_sync would start a new one each time), another thread its own.
    assert loops[0] is loops[1] and not loops[0].is_closed()
    assert other and other[0] is not loops[0]


async def test_a_send_from_sync_code_called_by_async_code_runs_on_the_callers_loop(monkeypatch):
    # A web process's view: the in-memory layer's queues and the consumers waiting on them are
    # that loop's, so the send must run there, not on a loop of the view's thread.
    monkeypatch.delenv(ROLE_ENV, raising=False)
    loops = _sends_on_loops(monkeypatch)
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(LIVE_GROUP, channel)
    waiting = asyncio.ensure_future(layer.receive(channel))     # a consumer waits on the empty queue

    await sync_to_async(broadcast)("price", {"n": 1})

    message = await asyncio.wait_for(waiting, 5)
    assert (message["event"], message["data"]) == ("price", {"n": 1})
    assert loops == [asyncio.get_running_loop()]
    await layer.group_discard(LIVE_GROUP, channel)


def test_a_forked_child_makes_its_own_sender_loop(monkeypatch):
    from dashboard import events

    parent = events._thread_loop()
    assert events._thread_loop() is parent
    monkeypatch.setattr(events.os, "getpid", lambda: -1)     # as in a child of a fork: another pid

    child = events._thread_loop()
    assert child is not parent and not child.is_closed()
