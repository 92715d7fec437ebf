"""Publish live events to websocket clients once the database has committed them.

Inside the web process, or with channels-redis, an event goes straight to the channel layer.
A worker process (engine, django-q2) on the in-memory layer cannot reach the web process's
memory, so it writes the event to the LiveEvent outbox instead and the web process relays it
(dashboard/relay.py). After each outbox write the worker rings a doorbell, a one-byte datagram
to every web process's Unix socket, so a relay forwards the row at once instead of at its next
poll; the poll stays as the safety net for a ring that never arrives (and the only way for a
web process on another machine sharing the database).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

logger = logging.getLogger(__name__)

LIVE_GROUP = "live"
ROLE_ENV = "TRADINGBOT_PROCESS_ROLE"   # "web" or "worker"; set by run_bot for its children


def _jsonable(payload: dict) -> dict:
    # Decimals and datetimes become strings exactly as the API would render them.
    return json.loads(json.dumps(payload, cls=DjangoJSONEncoder))


def layer_in_memory() -> bool:
    """Return True when the channel layer is the in-memory one (one process; no Redis)."""
    return "InMemory" in settings.CHANNEL_LAYERS["default"]["BACKEND"]


def uses_outbox() -> bool:
    """Return True when this process must hand its events to the web processes through the DB.

    A worker always must on the in-memory layer. So must a web process that has siblings
    (WEB_PROCESSES > 1): an approval it serves has to reach the dashboards connected to the
    others, and every web process's relay reads the outbox, its own included.
    """
    if not layer_in_memory():
        return False
    role = os.environ.get(ROLE_ENV)
    return role == "worker" or (role == "web" and settings.WEB_PROCESSES > 1)


def doorbell_dir() -> Path:
    """Return the directory holding the doorbell sockets of the web processes sharing this outbox.

    Keyed by the database: the processes that share an outbox share the directory, and two
    deployments (or two test runs) on one machine never ring each other.
    """
    db = settings.DATABASES["default"]
    key = "|".join(str(db.get(part) or "") for part in ("ENGINE", "HOST", "PORT", "NAME"))
    return Path(tempfile.gettempdir()) / f"tradingbot-live-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def doorbell_ring() -> None:
    """Wake every listening relay now; a missing or dead listener only costs its next poll."""
    if not hasattr(socket, "AF_UNIX"):
        return
    try:
        paths = list(doorbell_dir().glob("*.sock"))
    except OSError:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for path in paths:
            try:
                sock.sendto(b"!", str(path))
            except (ConnectionRefusedError, FileNotFoundError):
                path.unlink(missing_ok=True)  # left by a web process that is gone
            except OSError:
                pass  # a full queue: that relay is awake already


# The events of the current batch (inside events_batched() only), sent together when it ends.
_batch: ContextVar[list | None] = ContextVar("live_batch", default=None)


@contextmanager
def events_batched() -> Iterator[None]:
    """Gather the events broadcast inside the block and send them together when it ends.

    For one engine cycle: its 6-7 events reach the channel layer in one hop from this thread
    into the event loop (or the outbox in one insert) instead of one each, a few ms per event.
    They are sent even when the block raises: each was committed before it was broadcast.
    """
    batch: list[tuple[str, dict]] = []
    token = _batch.set(batch)
    try:
        yield
    finally:
        _batch.reset(token)
        if batch:
            _send(batch)


def broadcast(event: str, payload: dict) -> None:
    """Send `payload` as an `event` message to every subscribed dashboard now (or with its batch)."""
    item = (event, _jsonable(payload))
    batch = _batch.get()
    if batch is not None:
        batch.append(item)
        return
    _send([item])


def _send(items: list[tuple[str, dict]]) -> None:
    try:
        if uses_outbox():
            from dashboard.models import LiveEvent

            LiveEvent.objects.bulk_create([LiveEvent(event=event, data=data) for event, data in items])
            doorbell_ring()
            return
        layer = get_channel_layer()
        if layer is not None:
            _run_async(_group_send_all, layer, items)
    except Exception:  # a dashboard outage must never break trading
        logger.exception("broadcast of %s failed", ", ".join(event for event, _ in items))


def _run_async(function, *args) -> None:
    """Run the coroutine `function(*args)` to its end from sync code.

    Called from async code through sync_to_async (a web process's views), it runs on that code's
    event loop, as async_to_sync does: the in-memory layer's queues belong to it. Anywhere else
    (the engine, django-q2 tasks, commands) async_to_sync would start a new thread and a new event
    loop for every call, about 1-3 ms an engine cycle, and channels-redis a new connection with
    each loop; this thread's own loop is run instead, kept between calls.
    """
    if _caller_loop() is not None:
        async_to_sync(function)(*args)
        return
    _thread_loop().run_until_complete(function(*args))


def _caller_loop() -> asyncio.AbstractEventLoop | None:
    # Where async_to_sync looks for it: sync_to_async marks its threads with the calling loop
    # (and the process: a forked child's copy names the parent's loop).
    local = SyncToAsync.threadlocal
    if getattr(local, "main_event_loop_pid", None) != os.getpid():
        return None
    return getattr(local, "main_event_loop", None)


_loops = threading.local()


def _thread_loop() -> asyncio.AbstractEventLoop:
    """Return this thread's sender loop, made on first use (and again in a forked child)."""
    pid, loop = getattr(_loops, "loop", (None, None))
    if pid != os.getpid() or loop.is_closed():
        # A child of a fork must not share the parent's loop: its selector's file descriptor is the parent's.
        loop = asyncio.new_event_loop()
        _loops.loop = (os.getpid(), loop)
    return loop


async def _group_send_all(layer, items: list[tuple[str, dict]]) -> None:
    for event, data in items:   # in order: a page applies them as they come
        await layer.group_send(LIVE_GROUP, {"type": "live.event", "event": event, "data": data})


def broadcast_on_commit(event: str, payload: dict) -> None:
    """Send `payload` after the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: broadcast(event, payload))
