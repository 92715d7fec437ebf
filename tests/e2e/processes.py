"""Start and stop the processes of a cross-process test: daphne, a worker command, redis-server.

Every process runs the project with tests.e2e.server_settings on the pytest process's own test
database, so what the test writes (committed: these tests use transactional_db) the processes read.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from dashboard.events import ROLE_ENV

START_SECONDS = 60


def require_program(name: str, purpose: str) -> str:
    """Return the path of `name`; skip the test without it, but fail it in CI, which must install it."""
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed; {purpose}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}. CI must install it (.ci/run)", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    """Return a loopback TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process_env(*, role: str, redis_url: str = "") -> dict[str, str]:
    """Return the environment of a project process on this test's database and channel layer."""
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.e2e.server_settings",
            "TRADINGBOT_TEST_DATABASE": json.dumps(connection.settings_dict, default=str),
            "TRADINGBOT_TEST_REDIS_URL": redis_url, ROLE_ENV: role}


@dataclass
class Started:
    """A process this test started, with the file its output goes to."""

    name: str
    process: subprocess.Popen
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, ready, what: str) -> None:
        """Poll `ready()` until it is true; fail with the process's output if it exits or takes too long."""
        deadline = time.monotonic() + START_SECONDS
        while not ready():
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode} before {what}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"{self.name}: no {what} after {START_SECONDS} s:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start(name: str, command: list[str], env: dict[str, str], log_dir: Path) -> Started:
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    return Started(name, process, log)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def daphne_start(log_dir: Path, *, redis_url: str = "", name: str = "daphne",
                 env: dict[str, str] | None = None) -> tuple[Started, str]:
    """Start daphne serving the project as a web process (`env` added to its environment); return it and its URL."""
    port = free_port()
    command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "tests.e2e.asgi:application"]
    server = start(name, command, {**process_env(role="web", redis_url=redis_url), **(env or {})}, log_dir)
    url = f"http://127.0.0.1:{port}"
    server.wait_ready(lambda: _http_ok(f"{url}/admin/login/"), "answer on /admin/login/")
    return server, url


def worker_run(*args: str, redis_url: str = "") -> str:
    """Run tests/e2e/worker.py in a worker process to its end; return its output."""
    done = subprocess.run([sys.executable, "-m", "tests.e2e.worker", *args], cwd=settings.BASE_DIR,
                          env=process_env(role="worker", redis_url=redis_url), capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"worker {args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def production_channel_layers(redis_url: str) -> dict:
    """Return CHANNEL_LAYERS as tradingbot/settings.py builds it when REDIS_URL is `redis_url`."""
    spec = importlib.util.spec_from_file_location("_settings_with_redis", settings.BASE_DIR / "tradingbot" / "settings.py")
    module = importlib.util.module_from_spec(spec)
    previous = os.environ.get("REDIS_URL")
    os.environ["REDIS_URL"] = redis_url
    try:
        spec.loader.exec_module(module)
    finally:
        if previous is None:
            del os.environ["REDIS_URL"]
        else:
            os.environ["REDIS_URL"] = previous
    return module.CHANNEL_LAYERS


def redis_start(log_dir: Path) -> tuple[Started, str]:
    """Start a throw-away redis-server on a free loopback port; return it and its URL."""
    import redis

    program = require_program("redis-server", "the channels-redis tests need a Redis server (apt install redis-server)")
    port = free_port()
    command = [program, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
               "--dir", str(log_dir)]
    server = start("redis-server", command, dict(os.environ), log_dir)

    def answers() -> bool:
        try:
            return redis.Redis(host="127.0.0.1", port=port, socket_timeout=1).ping()
        except redis.RedisError:
            return False

    server.wait_ready(answers, "PONG")
    return server, f"redis://127.0.0.1:{port}/0"
