"""The user data stream websocket: ws://host:port/ws/<listenKey> and /private/ws?listenKey=<key>.

ccxt.pro's binanceusdm builds the second form from urls.api.ws.linear ("…/ws" becomes
"…/private/ws?listenKey=…"); Binance's classic stream is the first. Events from the venue reach every
client of a valid key in order; an expired or deleted key gets listenKeyExpired and the socket closes.
"""
from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import WSMsgType, web

from execution.emulator.venue import Venue

_CLOSE = object()
EXPIRY_POLL_S = 1.0


class StreamHub:
    """Websocket clients per listenKey, fed from the venue's event listeners (any thread)."""

    def __init__(self, venue: Venue):
        self.venue = venue
        self.loop: asyncio.AbstractEventLoop | None = None
        self.clients: dict[str, set[asyncio.Queue]] = {}
        venue.listeners.append(self.publish)
        venue.expiry_listeners.append(self.expire)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def _call(self, fn, *args) -> None:
        if self.loop is None or self.loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            fn(*args)
        else:
            self.loop.call_soon_threadsafe(fn, *args)

    def publish(self, events: list[dict]) -> None:
        """Queue `events` for every connected client (the account has one stream)."""
        self._call(self._put_all, events)

    def expire(self, listen_key: str) -> None:
        """Tell the clients of `listen_key` it expired, then close them."""
        self._call(self._expire, listen_key)

    def drop(self) -> None:
        """Close every client without a message, as a network drop would."""
        self._call(self._drop)

    def _put_all(self, events: list[dict]) -> None:
        for queues in self.clients.values():
            for queue in queues:
                for event in events:
                    queue.put_nowait(event)

    def _expire(self, listen_key: str) -> None:
        for queue in self.clients.pop(listen_key, set()):
            queue.put_nowait(self.venue.listen_key_expired_event(listen_key))
            queue.put_nowait(_CLOSE)

    def _drop(self) -> None:
        for queues in self.clients.values():
            for queue in queues:
                queue.put_nowait(_CLOSE)
        self.clients.clear()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one websocket client of a listenKey."""
        listen_key = request.match_info.get("listen_key") or request.query.get("listenKey", "")
        if not self.venue.listen_key_valid(listen_key):
            return web.json_response({"code": -1125, "msg": "This listenKey does not exist."}, status=400)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        queue: asyncio.Queue = asyncio.Queue()
        self.clients.setdefault(listen_key, set()).add(queue)
        reader = asyncio.ensure_future(self._read_until_closed(ws, queue))
        try:
            while (item := await queue.get()) is not _CLOSE:
                await ws.send_str(json.dumps(item))
        except (ConnectionResetError, RuntimeError):
            pass  # the client went away mid-send
        finally:
            self.clients.get(listen_key, set()).discard(queue)
            reader.cancel()
            with contextlib.suppress(Exception):
                await ws.close()
        return ws

    @staticmethod
    async def _read_until_closed(ws: web.WebSocketResponse, queue: asyncio.Queue) -> None:
        async for message in ws:
            if message.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
        queue.put_nowait(_CLOSE)

    async def expire_periodically(self) -> None:
        """Expire listen keys whose TTL ran out, once a second."""
        while True:
            await asyncio.sleep(EXPIRY_POLL_S)
            self.venue.expire_listen_keys()

    async def close_all(self, _app: web.Application | None = None) -> None:
        self._drop()
