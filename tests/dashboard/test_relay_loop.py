"""The relay's loop: a ring is never lost to a fetch in flight, and a web process's start-up heap
is kept out of the full garbage collections that stalled deliveries (bench/README.md, fan-out)."""
import asyncio
import gc
import weakref

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from dashboard import events, relay
from dashboard.events import LIVE_GROUP, ROLE_ENV
from dashboard.models import LiveEvent
from tradingbot.heap import heap_freeze


class Node:
    """A garbage-collector-tracked object that can hold a reference to itself."""

    me = None


@pytest.fixture
def unfrozen():
    """Leave this process's collector as found: nothing frozen before or after the test."""
    gc.unfreeze()
    yield
    gc.unfreeze()


async def until(predicate) -> None:
    """Return once `predicate()` holds; the deadline only stops a broken relay from hanging the run."""
    async def poll():
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), 10)


async def relay_stopped() -> None:
    relay._task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await relay._task


def test_heap_freeze_collects_garbage_then_freezes_objects_alive(unfrozen):
    alive = Node()
    garbage = Node()
    garbage.me = garbage
    garbage_ref = weakref.ref(garbage)
    del garbage
    gc.disable()  # only heap_freeze's own collection may free the cycle
    try:
        assert heap_freeze() is True
    finally:
        gc.enable()

    assert garbage_ref() is None
    assert gc.get_freeze_count() > 0
    assert not any(obj is alive for obj in gc.get_objects())  # in no generation: collections skip it


def test_heap_freeze_objects_made_later_are_collected_and_not_frozen_again(unfrozen):
    heap_freeze()
    frozen = gc.get_freeze_count()
    later = Node()
    cycle = Node()
    cycle.me = cycle
    cycle_ref = weakref.ref(cycle)
    del cycle

    assert heap_freeze() is False
    assert gc.get_freeze_count() == frozen
    assert any(obj is later for obj in gc.get_objects())
    gc.collect()
    assert cycle_ref() is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("role", "frozen"), [("web", True), ("worker", False)])
async def test_relay_freezes_heap_only_in_web_process_before_first_fetch(monkeypatch, unfrozen, role, frozen):
    monkeypatch.setenv(ROLE_ENV, role)
    freeze_counts = []

    def fetch_noting_freeze(cursor):
        freeze_counts.append(gc.get_freeze_count())
        return []

    monkeypatch.setattr(relay, "outbox_fetch", fetch_noting_freeze)
    relay.ensure_relay_running()
    await until(lambda: freeze_counts)

    assert (freeze_counts[0] > 0) is frozen
    await relay_stopped()


@pytest.mark.django_db(transaction=True)
async def test_relay_ring_arriving_during_fetch_causes_another_fetch(monkeypatch):
    """The worker commits and rings after the relay's query has read: the ring, not the poll, delivers."""
    monkeypatch.setattr(relay, "POLL_SECONDS", 60)  # only a ring can wake the relay within the test
    monkeypatch.delenv(ROLE_ENV, raising=False)
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(LIVE_GROUP, channel)
    fetched: list[list[int]] = []
    outbox_fetch = relay.outbox_fetch

    def fetch_then_worker_commits(cursor):
        rows = outbox_fetch(cursor)
        fetched.append([pk for pk, _, _ in rows])
        if len(fetched) == 2:  # this fetch's query has read the outbox: the row comes too late for it
            LiveEvent.objects.create(event="equity", data={"n": 1})
            events.doorbell_ring()
        return rows

    monkeypatch.setattr(relay, "outbox_fetch", fetch_then_worker_commits)
    relay.ensure_relay_running()
    await until(lambda: fetched)  # the first fetch only sets the cursor; the doorbell is bound
    await asyncio.to_thread(events.doorbell_ring)

    message = await asyncio.wait_for(layer.receive(channel), 10)

    assert (message["event"], message["data"]) == ("equity", {"n": 1})
    row = await database_sync_to_async(lambda: LiveEvent.objects.get(event="equity").pk)()
    assert fetched == [[], [], [row]]
    await relay_stopped()
