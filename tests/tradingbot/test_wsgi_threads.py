"""HTTP under daphne through Django's WSGI handler in a thread pool (tradingbot/wsgi_threads.py)."""
import threading

import pytest
from asgiref.testing import ApplicationCommunicator
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.backends.signals import connection_created
from django.test import Client

from tradingbot.wsgi_threads import STREAM_PIECE_BYTES, ThreadedWsgi, wsgi_environ


def _scope(path="/", method="GET", query=b"", headers=(), **extra) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query,
            "root_path": "", "headers": list(headers), "client": ("127.0.0.1", 50123),
            "server": ("testserver", 8000), **extra}


async def _exchange(app, scope, *bodies: bytes) -> list[dict]:
    """Send `bodies` as the request's http.request messages; return every message the app sent."""
    communicator = ApplicationCommunicator(app, scope)
    for k, body in enumerate(bodies or (b"",)):
        await communicator.send_input({"type": "http.request", "body": body, "more_body": k < len(bodies) - 1})
    messages = [await communicator.receive_output(5)]
    while messages[-1]["type"] != "http.response.body" or messages[-1].get("more_body", False):
        messages.append(await communicator.receive_output(5))
    await communicator.wait(5)
    return messages


def _echo(seen: list):
    def app(environ, start_response):
        seen.append({**environ, "body": environ["wsgi.input"].read(), "thread": threading.current_thread().name})
        start_response("201 Created", [("Content-Type", "text/plain"), ("X-Seen", "yes")])
        return [b"made"]
    return app


# --- the environ ------------------------------------------------------------------------------

def test_wsgi_environ_carries_path_query_client_server_and_headers():
    headers = [(b"content-type", b"application/json"), (b"content-length", b"2"), (b"x-trace", b"a"),
               (b"x-trace", b"b"), (b"cookie", b"sessionid=1"), (b"cookie", b"csrftoken=2")]
    scope = _scope("/api/equity/", "POST", b"account=1&max_points=10", headers, root_path="")

    environ = wsgi_environ(scope, body=None)

    assert (environ["REQUEST_METHOD"], environ["PATH_INFO"], environ["QUERY_STRING"]) == (
        "POST", "/api/equity/", "account=1&max_points=10")
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"], environ["REMOTE_ADDR"]) == ("testserver", "8000",
                                                                                          "127.0.0.1")
    assert (environ["CONTENT_TYPE"], environ["CONTENT_LENGTH"]) == ("application/json", "2")
    assert environ["HTTP_X_TRACE"] == "a,b"
    assert environ["HTTP_COOKIE"] == "sessionid=1; csrftoken=2"
    assert "HTTP_CONTENT_TYPE" not in environ


def test_wsgi_environ_splits_the_root_path_into_script_name():
    environ = wsgi_environ(_scope("/bot/api/health", root_path="/bot"), body=None)

    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/bot", "/api/health")


def test_wsgi_environ_keeps_non_ascii_paths_as_latin1_native_strings():
    environ = wsgi_environ(_scope("/chart/é"), body=None)

    assert environ["PATH_INFO"].encode("latin1").decode("utf-8") == "/chart/é"


# --- requests through the pool ---------------------------------------------------------------

async def test_threaded_wsgi_runs_the_request_in_a_pool_thread_with_the_whole_body():
    seen = []
    app = ThreadedWsgi(_echo(seen), threads=2)

    messages = await _exchange(app, _scope(method="POST"), b'{"a": ', b"1}")

    assert messages[0] == {"type": "http.response.start", "status": 201,
                           "headers": [(b"content-type", b"text/plain"), (b"x-seen", b"yes")]}
    assert messages[1] == {"type": "http.response.body", "body": b"made"}
    assert seen[0]["body"] == b'{"a": 1}'
    assert seen[0]["thread"].startswith("http")


async def test_threaded_wsgi_client_gone_before_the_body_ends_runs_nothing():
    seen = []
    communicator = ApplicationCommunicator(ThreadedWsgi(_echo(seen), threads=1), _scope(method="POST"))

    await communicator.send_input({"type": "http.request", "body": b"part", "more_body": True})
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(5)

    assert seen == []


async def test_threaded_wsgi_two_content_lengths_answer_400_without_calling_the_app():
    seen = []
    headers = [(b"content-length", b"1"), (b"content-length", b"2")]

    messages = await _exchange(ThreadedWsgi(_echo(seen), threads=1), _scope(method="POST", headers=headers), b"x")

    assert messages[0]["status"] == 400
    assert b"Content-Length" in messages[1]["body"]
    assert seen == []


async def test_threaded_wsgi_streams_an_iterator_in_pieces_and_closes_it_in_the_request_thread():
    closed_in = []

    class Chunks:
        streaming = True

        def __iter__(self):
            return iter([bytes([k]) * 4096 for k in range(40)])

        def close(self):
            closed_in.append(threading.current_thread().name)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/csv")])
        return Chunks()

    messages = await _exchange(ThreadedWsgi(app, threads=1), _scope())

    bodies = [m for m in messages if m["type"] == "http.response.body"]
    assert b"".join(m["body"] for m in bodies) == b"".join(bytes([k]) * 4096 for k in range(40))
    assert [len(m["body"]) for m in bodies] == [STREAM_PIECE_BYTES, STREAM_PIECE_BYTES, 40 * 4096 - 2 * STREAM_PIECE_BYTES]
    assert [m.get("more_body", False) for m in bodies] == [True, True, False]
    assert len(closed_in) == 1 and closed_in[0].startswith("http")


async def test_threaded_wsgi_app_without_start_response_raises():
    app = ThreadedWsgi(lambda environ, start_response: [b"no status"], threads=1)
    communicator = ApplicationCommunicator(app, _scope())
    await communicator.send_input({"type": "http.request", "body": b""})

    with pytest.raises(RuntimeError, match="without calling start_response"):
        await communicator.wait(5)


def test_threaded_wsgi_needs_a_thread():
    with pytest.raises(ValueError, match="at least 1"):
        ThreadedWsgi(_echo([]), threads=0)


# --- the project's application ---------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
async def test_project_http_reuses_the_pool_threads_database_connection(settings):
    """Two requests on one pool thread open one connection: the second reuses the first's.

    Telling on MariaDB (DB_CONN_MAX_AGE=0 fails it); Django never closes an in-memory SQLite database.
    """
    from django.core.wsgi import get_wsgi_application

    opened = []
    connection_created.connect(lambda sender, connection, **kw: opened.append(threading.current_thread().name),
                               weak=False, dispatch_uid="test_wsgi_threads_opened")
    try:
        app = ThreadedWsgi(get_wsgi_application(), threads=1)
        token = [(b"authorization", b"Token not-a-token")]     # looked up in the database: a query
        first = await _exchange(app, _scope("/api/instruments/", headers=token))
        second = await _exchange(app, _scope("/api/instruments/", headers=token))
    finally:
        connection_created.disconnect(dispatch_uid="test_wsgi_threads_opened")

    assert first[0]["status"] == second[0]["status"] == 401
    assert len([name for name in opened if name.startswith("http")]) == 1


@pytest.mark.django_db(transaction=True)
async def test_project_application_serves_a_signed_in_page_and_its_csrf_protected_form():
    from asgiref.sync import sync_to_async

    from tradingbot.asgi import application

    def sign_in() -> str:
        get_user_model().objects.create_user("viewer", password="pw")
        client = Client()
        assert client.login(username="viewer", password="pw")
        return client.cookies["sessionid"].value

    session = await sync_to_async(sign_in)()
    cookie = [(b"cookie", f"sessionid={session}".encode())]

    page = await _exchange(application, _scope("/equity/", headers=cookie))
    refused = await _exchange(application, _scope("/logout/", "POST", headers=cookie), b"")

    assert page[0]["status"] == 200
    assert b"<html" in b"".join(m.get("body", b"") for m in page[1:])
    assert refused[0]["status"] == 403          # no CSRF token: the middleware chain ran


def test_project_database_keeps_connections_between_requests():
    assert connection.settings_dict["CONN_MAX_AGE"] > 0
    assert connection.settings_dict["CONN_HEALTH_CHECKS"] is True
