"""The HTTP face of the venue: Binance USD-M REST routes and the user-stream websocket (aiohttp).

Request handling follows Binance: parameters come from the query string and the form body (the query
wins), signed endpoints need X-MBX-APIKEY, an HMAC-SHA256 signature and a fresh timestamp, errors are
`{"code", "msg"}` with an HTTP 4xx/5xx status. Every request is recorded, then meets its injected fault.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from urllib.parse import parse_qsl

from aiohttp import web

from execution.emulator import auth, errors, rest_account, rest_trade
from execution.emulator.faults import FaultPlan
from execution.emulator.userstream import StreamHub
from execution.emulator.venue import Venue

PUBLIC, USER_STREAM, SIGNED = "public", "user_stream", "signed"
ROUTES = {
    **{key: (PUBLIC, fn) for key, fn in rest_account.ROUTES.items()},
    **{key: (SIGNED, fn) for key, fn in rest_account.SIGNED_ROUTES.items()},
    **{key: (USER_STREAM, fn) for key, fn in rest_account.USER_STREAM_ROUTES.items()},
    **{key: (SIGNED, fn) for key, fn in rest_trade.ROUTES.items()},
}


class RestServer:
    """Build the aiohttp application for one venue; record requests and apply faults."""

    def __init__(self, venue: Venue, faults: FaultPlan):
        self.venue = venue
        self.faults = faults
        self.hub = StreamHub(venue)
        self.requests: list[tuple[str, dict]] = []
        self._requests_lock = threading.Lock()

    def app(self) -> web.Application:
        """Return the application: websocket routes first, then every REST path."""
        application = web.Application()
        application.router.add_get("/ws/{listen_key}", self.hub.handle)
        application.router.add_get("/private/ws", self.hub.handle)
        application.router.add_route("*", "/{tail:.*}", self.handle)
        application.on_startup.append(self._on_startup)
        application.on_shutdown.append(self.hub.close_all)
        return application

    async def _on_startup(self, application: web.Application) -> None:
        self.hub.attach(asyncio.get_running_loop())
        task = asyncio.ensure_future(self.hub.expire_periodically())

        async def stop_task(_app: web.Application) -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        application.on_cleanup.append(stop_task)

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one REST request."""
        raw_query = request.rel_url.raw_query_string
        raw_body = await request.text() if request.can_read_body else ""
        params = dict(parse_qsl(raw_body, keep_blank_values=True))
        params.update(parse_qsl(raw_query, keep_blank_values=True))
        method, path = request.method, request.path
        with self._requests_lock:
            self.requests.append((path, params))
        fault = self.faults.take(method, path, self.venue.now_ms())
        if fault and fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        failure = fault.error() if fault else None
        if failure is not None:
            if failure.status == 418 and fault.ban_until_ms == 0:
                failure = errors.ip_banned(self.venue.now_ms() + 120_000)
            return _error_response(failure, fault.retry_after_s)
        try:
            body = self._dispatch(request, method, path, params, raw_query, raw_body)
        except errors.BinanceError as exc:
            return _error_response(exc)
        if fault and fault.after_apply_s:
            await asyncio.sleep(fault.after_apply_s)  # applied, but the client gives up before the reply
        return _json_response(200, body)

    def _dispatch(self, request: web.Request, method: str, path: str, params: dict, raw_query: str,
                  raw_body: str) -> object:
        route = ROUTES.get((method, path))
        if route is None:
            raise errors.unknown_path(method, path)
        security, handler = route
        if security in (USER_STREAM, SIGNED):
            secret = auth.api_key_secret(self.venue.config.api_keys, request.headers.get("X-MBX-APIKEY"))
        if security == SIGNED:
            auth.verify_signature(secret, raw_query, raw_body)
            auth.verify_timestamp(params, self.venue.now_ms())
        try:
            return handler(self.venue, params)
        except ValueError as exc:
            raise errors.BinanceError(-1130, f"Data sent for parameter is not valid. ({exc})") from exc


def _json_response(status: int, body: object, retry_after_s: int | None = None) -> web.Response:
    headers = {"X-MBX-USED-WEIGHT-1M": "1"}
    if retry_after_s is not None:
        headers["Retry-After"] = str(retry_after_s)
    return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=headers)


def _error_response(error: errors.BinanceError, retry_after_s: int | None = None) -> web.Response:
    return _json_response(error.status, error.body(), retry_after_s)
