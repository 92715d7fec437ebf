"""Serve HTTP under daphne through Django's WSGI handler, in a fixed pool of threads.

Every view of this project is synchronous. Django's ASGI handler runs such a request in a new
thread (asgiref's ThreadSensitiveContext) and switches between the event loop and that thread about
20 times a request: once per async-capable middleware, for the request signals and for the view.
Database connections belong to a thread, so each request also opened a new MariaDB connection and
ran its set-up queries. Measured in daphne, one request at a time, that cost 8-10 ms of the 14-18
ms of CPU an API request took (bench/README.md, "API under load").

Here a request goes to the pool once: the thread runs the whole WSGI request (middleware, view,
`request_finished`) and hands the finished response back to the loop, which sends it. The threads
live as long as the process, so with CONN_MAX_AGE their connections are reused, checked by
Django's `close_old_connections` on every request as under any threaded WSGI server. Websockets
stay with Channels on the event loop (tradingbot/asgi.py).
"""
from __future__ import annotations

import asyncio
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from tempfile import SpooledTemporaryFile

# Request bodies up to this size stay in memory (Django's ASGI handler spools at the same size).
BODY_MEMORY_BYTES = 2**21
# A streamed response (a file, a CSV export) is sent in pieces of at least this size, not per
# chunk the iterator yields (FileResponse reads 4 KiB blocks): each piece is one hop to the loop.
STREAM_PIECE_BYTES = 2**16


class BadRequest(ValueError):
    """The request cannot be turned into a WSGI environ; answered with 400."""


class ThreadedWsgi:
    """An ASGI application for `http` scopes that runs a WSGI application in `threads` threads."""

    def __init__(self, wsgi_application, *, threads: int):
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.wsgi_application = wsgi_application
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="http")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"ThreadedWsgi serves http scopes, not {scope['type']!r}")
        with SpooledTemporaryFile(max_size=BODY_MEMORY_BYTES) as body:
            if not await _body_read(receive, body):
                return      # the client went away before its request was complete
            body.seek(0)
            loop = asyncio.get_running_loop()
            messages = await loop.run_in_executor(self.pool, self._respond, scope, body, send, loop)
        for message in messages:
            await send(message)

    def _respond(self, scope, body, send, loop) -> list[dict]:
        """Run the request in this pool thread; return the messages left to send from the loop."""
        try:
            environ = wsgi_environ(scope, body)
        except BadRequest as error:
            return [_start(400, [(b"content-type", b"text/plain; charset=utf-8")]),
                    {"type": "http.response.body", "body": f"Bad Request: {error}".encode()}]
        response = _Response()
        result = self.wsgi_application(environ, response.start_response)
        try:
            if getattr(result, "streaming", True) is False or isinstance(result, (list, tuple)):
                content = b"".join(result)
                return [response.start_message(), {"type": "http.response.body", "body": content}]
            _stream(result, response, send, loop)
            return []
        finally:
            # WSGI's close(): Django sends request_finished here, which returns this thread's
            # database connection (or closes it when it is too old or broken).
            close = getattr(result, "close", None)
            if close is not None:
                close()


def _stream(result, response, send, loop) -> None:
    """Send a streamed response from this thread, in pieces of at least STREAM_PIECE_BYTES."""
    def send_now(message: dict) -> None:
        asyncio.run_coroutine_threadsafe(send(message), loop).result()

    send_now(response.start_message())
    piece = bytearray()
    for chunk in result:
        piece += chunk
        if len(piece) >= STREAM_PIECE_BYTES:
            send_now({"type": "http.response.body", "body": bytes(piece), "more_body": True})
            piece.clear()
    send_now({"type": "http.response.body", "body": bytes(piece)})


class _Response:
    """The WSGI `start_response` of one request; keeps the status and headers it was given."""

    def __init__(self):
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info=None):
        if self.status is not None and exc_info is None:
            raise RuntimeError("start_response called a second time without exc_info")
        self.status = int(status.split(" ", 1)[0])
        self.headers = [(name.lower().encode("latin1"), value.encode("latin1")) for name, value in headers]
        return self._write

    def _write(self, data: bytes) -> None:
        # PEP 3333's legacy write(); Django never calls it, and buffering it unseen would lose data.
        raise NotImplementedError("ThreadedWsgi does not support the WSGI write() callable")

    def start_message(self) -> dict:
        if self.status is None:
            raise RuntimeError("the WSGI application returned without calling start_response")
        return _start(self.status, self.headers)


def _start(status: int, headers: list[tuple[bytes, bytes]]) -> dict:
    return {"type": "http.response.start", "status": status, "headers": headers}


async def _body_read(receive, body) -> bool:
    """Write the request body into `body`; return False when the client disconnected first."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        body.write(message.get("body", b""))
        if not message.get("more_body", False):
            return True


def wsgi_environ(scope: dict, body) -> dict:
    """Return the PEP 3333 environ of an ASGI http `scope` whose body is the file `body`."""
    # PEP 3333 carries paths and headers as latin-1 "native strings" of the raw bytes.
    script_name = scope.get("root_path", "").encode("utf-8").decode("latin1")
    path_info = scope["path"].encode("utf-8").decode("latin1")
    if script_name and path_info.startswith(script_name):
        path_info = path_info[len(script_name):]
    server_host, server_port = scope.get("server") or ("localhost", 80)
    environ = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": scope.get("query_string", b"").decode("latin1"),
        "SERVER_NAME": server_host,
        "SERVER_PORT": str(server_port if server_port is not None else 80),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if scope.get("client"):
        environ["REMOTE_ADDR"] = scope["client"][0]
        environ["REMOTE_PORT"] = str(scope["client"][1])
    environ.update(_header_entries(scope.get("headers", ())))
    return environ


def _header_entries(headers) -> dict[str, str]:
    joined: dict[str, list[str]] = defaultdict(list)
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin1").upper().replace("-", "_")
        if name not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = "HTTP_" + name
        joined[name].append(raw_value.decode("latin1"))
    if len(joined["CONTENT_LENGTH"]) > 1 or len(joined["CONTENT_TYPE"]) > 1:
        raise BadRequest("more than one Content-Length or Content-Type header")
    # RFC 9110 5.3: repeated fields combine with commas; cookies with "; " (RFC 6265 5.4).
    return {name: ("; " if name == "HTTP_COOKIE" else ",").join(values) for name, values in joined.items() if values}
