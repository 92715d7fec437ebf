"""Relay outbox events from worker processes to this web process's channel layer."""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from dashboard.events import LIVE_GROUP

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.25
KEEP = timedelta(hours=1)
_task: asyncio.Task | None = None


def _fetch_after(last_id: int | None) -> tuple[list[tuple[int, str, dict]], int]:
    from dashboard.models import LiveEvent

    if last_id is None:
        # Start from now: the consumer sends the current state on connect, old events add nothing.
        newest = LiveEvent.objects.order_by("-id").values_list("id", flat=True).first()
        LiveEvent.objects.filter(created_at__lt=timezone.now() - KEEP).delete()
        return [], newest or 0
    rows = list(LiveEvent.objects.filter(id__gt=last_id).order_by("id").values_list("id", "event", "data")[:500])
    return rows, (rows[-1][0] if rows else last_id)


async def relay_forever() -> None:
    """Poll the outbox and forward each new event to the live group."""
    layer = get_channel_layer()
    last_id = None
    while True:
        try:
            rows, last_id = await database_sync_to_async(_fetch_after)(last_id)
            for _, event, data in rows:
                await layer.group_send(LIVE_GROUP, {"type": "live.event", "event": event, "data": data})
        except Exception:
            logger.exception("live-event relay failed; retrying")
        await asyncio.sleep(POLL_SECONDS)


def ensure_relay_running() -> None:
    """Start the relay once per web process (call from inside the event loop)."""
    global _task
    if _task is None or _task.done():
        _task = asyncio.get_running_loop().create_task(relay_forever())
