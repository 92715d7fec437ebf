"""Publish live events to websocket clients once the database has committed them.

Inside the web process, or with channels-redis, an event goes straight to the channel layer.
A worker process (engine, django-q2) on the in-memory layer cannot reach the web process's
memory, so it writes the event to the LiveEvent outbox instead and the web process relays it
(dashboard/relay.py).
"""
from __future__ import annotations

import json
import logging
import os

from asgiref.sync import async_to_sync
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


def uses_outbox() -> bool:
    """Return True when this process must hand its events to the web process through the DB."""
    in_memory = "InMemory" in settings.CHANNEL_LAYERS["default"]["BACKEND"]
    return in_memory and os.environ.get(ROLE_ENV) == "worker"


def broadcast(event: str, payload: dict) -> None:
    """Send `payload` as an `event` message to every subscribed dashboard now."""
    data = _jsonable(payload)
    try:
        if uses_outbox():
            from dashboard.models import LiveEvent

            LiveEvent.objects.create(event=event, data=data)
            return
        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(LIVE_GROUP, {"type": "live.event", "event": event, "data": data})
    except Exception:  # a dashboard outage must never break trading
        logger.exception("broadcast of %s failed", event)


def broadcast_on_commit(event: str, payload: dict) -> None:
    """Send `payload` after the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: broadcast(event, payload))
