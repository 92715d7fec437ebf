"""events_batched: one engine cycle's events reach the channel layer (or the outbox) together, in order."""
import asyncio

import pytest
from asgiref.sync import async_to_sync
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
