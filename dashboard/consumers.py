"""The dashboard's live websocket: current state on connect, then every pipeline event."""
from __future__ import annotations

import json
import os

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.core.serializers.json import DjangoJSONEncoder

from dashboard import relay, selectors
from dashboard.events import LIVE_GROUP, ROLE_ENV

# Application close code for "log in first", in the 4000-4999 range RFC 6455 leaves to applications.
CLOSE_UNAUTHENTICATED = 4401


class LiveConsumer(AsyncJsonWebsocketConsumer):
    """Forward `live.event` group messages to one logged-in browser as {"event", "data"}."""

    joined = False

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Accept, then close: a close before accept reaches the browser as a bare 1006,
            # and the page needs 4401 to stop reconnecting and send the user to log in.
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if os.environ.get(ROLE_ENV) == "web":
            # Worker processes on the in-memory layer write events to the outbox; this web
            # process forwards them. Started here because a consumer runs inside daphne's loop.
            relay.ensure_relay_running()
        # Join before reading the state so no event falls between the state and the stream.
        await self.channel_layer.group_add(LIVE_GROUP, self.channel_name)
        self.joined = True
        await self.accept()
        await self.send_state()

    async def disconnect(self, code):
        if self.joined:
            await self.channel_layer.group_discard(LIVE_GROUP, self.channel_name)

    async def receive_json(self, content, **kwargs):
        # The page asks for a fresh state after events that change several panels at once.
        if isinstance(content, dict) and content.get("type") == "refresh":
            await self.send_state()

    async def send_state(self):
        """Send the overview state as a `state` event."""
        state = await database_sync_to_async(selectors.overview_state)()
        await self.send_json({"event": "state", "data": state})

    async def live_event(self, message):
        await self.send_json({"event": message["event"], "data": message["data"]})

    @classmethod
    async def encode_json(cls, content):
        # Decimals and datetimes render as the API and dashboard.events render them.
        return json.dumps(content, cls=DjangoJSONEncoder)
