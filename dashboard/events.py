"""Publish live events to websocket clients once the database has committed them."""
from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
import json

logger = logging.getLogger(__name__)

LIVE_GROUP = "live"


def _jsonable(payload: dict) -> dict:
    # Decimals and datetimes become strings exactly as the API would render them.
    return json.loads(json.dumps(payload, cls=DjangoJSONEncoder))


def broadcast(event: str, payload: dict) -> None:
    """Send `payload` as a `event` message to every subscribed dashboard now."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(LIVE_GROUP, {"type": "live.event", "event": event, "data": _jsonable(payload)})
    except Exception:  # a dashboard outage must never break trading
        logger.exception("broadcast of %s failed", event)


def broadcast_on_commit(event: str, payload: dict) -> None:
    """Send `payload` after the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: broadcast(event, payload))
