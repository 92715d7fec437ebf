"""Several web processes (WEB_PROCESSES > 1, in-memory channel layer): one port, events reach every dashboard."""
import os
import shutil
import time
import urllib.request

import aiohttp
import pytest
from channels.db import database_sync_to_async
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from dashboard.events import doorbell_dir
from dashboard.models import LiveEvent
from execution.management.commands.run_bot import Command
from tests.dashboard.conftest import user_with_role
from tests.dashboard.factories import TradingConfigFactory
from tests.e2e.processes import daphne_start, free_port, process_env
from tests.e2e.test_streaming_processes import daphne_relay_ready, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

SIBLINGS = {"WEB_PROCESSES": "2"}


@database_sync_to_async
def operator_token() -> str:
    TradingConfigFactory(mode="HYBRID")
    return Token.objects.create(user=user_with_role(get_user_model(), "operator", "operator")).key


async def test_pause_served_by_one_web_process_reaches_a_dashboard_on_the_other(tmp_path):
    token = await operator_token()
    cookie = await session_cookie()
    first, first_url = daphne_start(tmp_path, name="web-a", env=SIBLINGS)
    second, second_url = daphne_start(tmp_path, name="web-b", env=SIBLINGS)
    try:
        async with aiohttp.ClientSession() as http:
            headers = {"Origin": second_url, "Cookie": f"{django_settings.SESSION_COOKIE_NAME}={cookie}"}
            async with http.ws_connect(second_url.replace("http", "ws") + "/ws/live/", headers=headers) as dashboard:
                assert (await dashboard.receive_json(timeout=10))["event"] == "state"
                await daphne_relay_ready(dashboard)

                async with http.post(f"{first_url}/api/control/pause/", json={"reason": "news at 14:30"},
                                     headers={"Authorization": f"Token {token}"}) as answer:
                    assert answer.status == 200, await answer.text()

                while (message := await dashboard.receive_json(timeout=10))["event"] != "status":
                    pass
    finally:
        first.stop()
        second.stop()
        shutil.rmtree(doorbell_dir(), ignore_errors=True)

    assert message["data"]["paused"] is True and message["data"]["reason"] == "news at 14:30"
    assert await database_sync_to_async(LiveEvent.objects.filter(event="status").count)() == 1


def _health(url: str) -> int:
    # A new connection each time: the kernel hands each one to either process.
    with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
        return response.status


def test_run_bot_web_processes_share_one_listening_port(tmp_path, capsys):
    port = free_port()
    children = Command()._start_web({"host": "127.0.0.1", "port": port, "web_processes": 2},
                                    base_env=process_env(role="web"))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                statuses = [_health(f"http://127.0.0.1:{port}") for _ in range(20)]
                break
            except OSError:
                assert time.monotonic() < deadline, "no answer on the shared port within 60 s"
                assert all(child.poll() is None for child in children), "a web process exited"
                time.sleep(0.1)
        alive = [child.poll() is None for child in children]
        listening = [_listening_inodes(child.pid) for child in children]
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(timeout=15)

    assert statuses == [200] * 20
    assert alive == [True, True]
    assert all("--fd" in child.args for child in children)
    assert listening[0] and listening[0] == listening[1]          # the same socket, inherited by both
    assert "2 processes" in capsys.readouterr().out


def _listening_inodes(pid: int) -> set[str]:
    """Return the socket inodes process `pid` holds open (its inherited listening socket among them)."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found & _tcp_listening()


def _tcp_listening() -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                if fields[3] == "0A":       # TCP_LISTEN
                    inodes.add(f"socket:[{fields[9]}]")
    return inodes


def test_run_bot_web_processes_below_one_is_refused():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="at least 1"):
        Command()._start_web({"host": "127.0.0.1", "port": free_port(), "web_processes": 0}, base_env={})


def test_uses_outbox_in_a_web_process_only_with_siblings(monkeypatch, settings):
    from dashboard.events import ROLE_ENV, uses_outbox

    monkeypatch.setenv(ROLE_ENV, "web")
    settings.WEB_PROCESSES = 1
    alone = uses_outbox()
    settings.WEB_PROCESSES = 2
    with_siblings = uses_outbox()

    assert (alone, with_siblings) == (False, True)
