"""Relay outbox events from worker processes to this web process's channel layer.

The relay listens on a doorbell socket (dashboard.events.doorbell_dir) and reads the outbox as
soon as a worker rings; without a ring it still reads every POLL_SECONDS. Rows are forwarded in
id order. An id can commit after a higher one (two workers inserting at once on MariaDB), so
the ids skipped over are looked for again for HOLE_SECONDS before they count as rolled back.

In a web process the relay also freezes the start-up heap (tradingbot.heap.heap_freeze): a full
garbage collection of it stopped the event loop, and every delivery, for 200-300 ms.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db.models import Q
from django.utils import timezone

from dashboard.events import LIVE_GROUP, ROLE_ENV, doorbell_dir
from tradingbot.heap import heap_freeze

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.25
HOLE_SECONDS = 5.0
MAX_HOLES = 100
BATCH = 500
KEEP = timedelta(hours=1)
_task: asyncio.Task | None = None


@dataclass
class Cursor:
    """Where the relay is in the outbox: the highest id forwarded and the lower ids still awaited."""

    last_id: int | None = None
    holes: dict[int, float] = field(default_factory=dict)  # id -> time.monotonic() it is given up at


def _start(cursor: Cursor) -> None:
    from dashboard.models import LiveEvent

    # Start from now: the consumer sends the current state on connect, old events add nothing.
    cursor.last_id = LiveEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    LiveEvent.objects.filter(created_at__lt=timezone.now() - KEEP).delete()


def outbox_fetch(cursor: Cursor) -> list[tuple[int, str, dict]]:
    """Return the outbox rows the relay has not forwarded yet, oldest first, and advance `cursor`."""
    from dashboard.models import LiveEvent

    if cursor.last_id is None:
        _start(cursor)
        return []
    now = time.monotonic()
    cursor.holes = {pk: until for pk, until in cursor.holes.items() if until > now}
    wanted = Q(id__gt=cursor.last_id) | Q(id__in=list(cursor.holes)) if cursor.holes else Q(id__gt=cursor.last_id)
    rows = list(LiveEvent.objects.filter(wanted).order_by("id").values_list("id", "event", "data")[:BATCH])
    for pk, _, _ in rows:
        cursor.holes.pop(pk, None)
        if pk > cursor.last_id:
            skipped = range(max(cursor.last_id + 1, pk - MAX_HOLES), pk)
            cursor.holes.update({hole: now + HOLE_SECONDS for hole in skipped})
            cursor.last_id = pk
    return rows


@dataclass
class Doorbell:
    """This process's doorbell: a non-blocking Unix datagram socket bound in doorbell_dir()."""

    sock: socket.socket
    path: Path
    inode: int

    def close(self) -> None:
        """Close the socket and remove its file, unless a newer relay of this process has bound the path."""
        self.sock.close()
        try:
            if self.path.stat().st_ino == self.inode:
                self.path.unlink()
        except OSError:
            pass


def doorbell_open() -> Doorbell | None:
    """Bind this process's doorbell; None where Unix sockets are unavailable (the relay then only polls)."""
    if not hasattr(socket, "AF_UNIX"):
        return None
    path = doorbell_dir() / f"{os.getpid()}.sock"
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(str(path))
        return Doorbell(sock, path, path.stat().st_ino)
    except OSError:
        logger.exception("live-event doorbell unavailable at %s; polling every %s s", path, POLL_SECONDS)
        return None


async def _wait(bell: Doorbell | None) -> None:
    """Return when a worker rings, or after POLL_SECONDS."""
    if bell is None:
        await asyncio.sleep(POLL_SECONDS)
        return
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_recv(bell.sock, 16), POLL_SECONDS)
    except asyncio.TimeoutError:
        # A ring read just as the timeout fell is dropped with the cancelled read. Harmless: the
        # caller reads the outbox after a timeout as after a ring, and the ring followed its commit.
        return
    except OSError:  # the socket broke: fall back to the poll's pace
        await asyncio.sleep(POLL_SECONDS)
        return
    while True:  # one read of the outbox answers every ring queued meanwhile
        try:
            bell.sock.recv(16)
        except OSError:
            return


async def relay_forever() -> None:
    """Forward each new outbox row to the live group, woken by the doorbell or the poll."""
    if os.environ.get(ROLE_ENV) == "web":
        heap_freeze()  # the process has started: its first page is connecting
    layer = get_channel_layer()
    cursor = Cursor()
    bell = doorbell_open()
    try:
        while True:
            try:
                for _, event, data in await database_sync_to_async(outbox_fetch)(cursor):
                    await layer.group_send(LIVE_GROUP, {"type": "live.event", "event": event, "data": data})
            except Exception:
                logger.exception("live-event relay failed; retrying")
            await _wait(bell)
    finally:
        if bell is not None:
            bell.close()


def ensure_relay_running() -> None:
    """Start the relay once per web process and event loop (call from inside the loop)."""
    global _task
    loop = asyncio.get_running_loop()
    if _task is None or _task.done() or _task.get_loop() is not loop:
        _task = loop.create_task(relay_forever())
