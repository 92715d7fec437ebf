"""The dashboard's live websocket: current state on connect, then every pipeline event."""
from __future__ import annotations

import asyncio
import json
import os
import weakref

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.core.serializers.json import DjangoJSONEncoder

from dashboard import relay, selectors
from dashboard.events import LIVE_GROUP, ROLE_ENV, layer_in_memory

# Application close code for "log in first", in the 4000-4999 range RFC 6455 leaves to applications.
CLOSE_UNAUTHENTICATED = 4401


class StateReads:
    """Share overview_state reads among the clients of one event loop that ask at the same time.

    After a restart every open page reconnects, and after a fill every page asks for a refresh:
    without sharing, N pages cost N reads queued on Channels' one database thread, and the
    handshakes queued behind them time out. A client only shares a read that starts after it asked
    (so after it joined the group): one read runs at a time, and everyone who asks meanwhile gets
    the next one.
    """

    _per_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __init__(self):
        self.lock = asyncio.Lock()
        self.waiting: asyncio.Future | None = None
        self.reads = 0

    @classmethod
    def of_loop(cls) -> StateReads:
        loop = asyncio.get_running_loop()
        if loop not in cls._per_loop:
            cls._per_loop[loop] = cls()
        return cls._per_loop[loop]

    async def get(self) -> dict:
        """Return an overview state read that started after this call."""
        if self.waiting is None:
            self.waiting = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().create_task(self._read(self.waiting))
        return await asyncio.shield(self.waiting)

    async def _read(self, result: asyncio.Future) -> None:
        async with self.lock:
            self.waiting = None  # who asks from now on waits for the next read
            self.reads += 1
            try:
                result.set_result(await database_sync_to_async(selectors.overview_state)())
            except Exception as exc:
                result.set_exception(exc)


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
        if os.environ.get(ROLE_ENV) == "web" and layer_in_memory():
            # Worker processes on the in-memory layer write events to the outbox; this web
            # process forwards them. Started here because a consumer runs inside daphne's loop.
            # On Redis every process sends to the layer itself: no outbox to read.
            relay.ensure_relay_running()
        # Join before reading the state so no event falls between the state and the stream.
        await self.channel_layer.group_add(LIVE_GROUP, self.channel_name)
        self.joined = True
        await self.accept()
        await self.send_state()

    async def disconnect(self, code):
        if self.joined:
            await self.channel_layer.group_discard(LIVE_GROUP, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        # A bad frame is answered, not allowed to crash the consumer and drop the page's stream.
        try:
            content = json.loads(text_data) if text_data else None
        except ValueError:
            content = None
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs):
        """Answer `refresh` with the state; refuse anything else, whatever the user's role."""
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "refresh":
            # The page asks for a fresh state after events that change several panels at once.
            await self.send_state()
            return
        # The socket only reads. Actions go through the pages' forms, which check CSRF and the
        # role and write the audit trail; a second way in would have to repeat all three.
        await self.send_json({"event": "refused", "data": {
            "type": kind[:64] if isinstance(kind, str) else None,
            "reason": "the live socket is read-only; only {\"type\": \"refresh\"} is accepted"}})

    async def send_state(self):
        """Send the overview state as a `state` event."""
        await self.send_json({"event": "state", "data": await StateReads.of_loop().get()})

    async def dispatch(self, message):
        # Channels closes stale database connections before every handler, a hop through its one
        # database thread; a live event touches no database, and 200 pages would queue 200 hops.
        if message["type"] == "live.event":
            await self.live_event(message)
        else:
            await super().dispatch(message)

    async def live_event(self, message):
        await self.send_json({"event": message["event"], "data": message["data"]})

    @classmethod
    async def encode_json(cls, content):
        # Decimals and datetimes render as the API and dashboard.events render them.
        return json.dumps(content, cls=DjangoJSONEncoder)
