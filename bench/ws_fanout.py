"""Websocket fan-out: how long a worker's commit takes to reach 200 logged-in dashboards.

    .venv/bin/python bench/ws_fanout.py                     # 200 clients, 30 rounds per transport
    .venv/bin/python bench/ws_fanout.py --clients 50 --rounds 10
    .venv/bin/python bench/ws_fanout.py --database-url mysql://user:pass@127.0.0.1:3306/bench_ws  # empty DB

The topology is production's: daphne serves tradingbot.asgi (the web process), a separate worker
process commits real writes (execution.services.equity_record, which publishes an "equity" event
on commit), and this process holds N websocket clients over loopback, each logged in with its
own session cookie. The worker notes the moment of each commit (time.monotonic, the same clock
in every process on Linux); each client notes when the event arrives. Latency = arrival - commit.

Transports, one daphne each:
- in-memory layer: the worker writes the LiveEvent outbox and rings the doorbell; the relay
  inside daphne reads the row and sends it to the group (dashboard/relay.py),
- the same without the doorbell: the relay finds the row at its next poll (the design before),
- channels-redis, when redis-server is installed: the worker sends to Redis directly, through
  the pub/sub layer REDIS_URL selects and through the queue layer (RedisChannelLayer) before it.

This process holds the clients only: it freezes its start-up heap (Django, the project) before
connecting them, so a full garbage collection of its own cannot pass for a slow delivery, and it
records the full collections it still runs while measuring (client_full_gc_ms).

Results go to bench/ws_fanout.json; bench/README.md explains them.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULT = Path(__file__).resolve().parent / "ws_fanout.json"
ROLE_ENV = "TRADINGBOT_PROCESS_ROLE"   # dashboard.events.ROLE_ENV
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
SETTINGS = '''"""Production settings for the fan-out benchmark (written by bench/ws_fanout.py)."""
from tradingbot.settings import *  # noqa: F401,F403

# REDIS_URL selects the pub/sub layer; BENCH_REDIS_CORE measures the queue layer it replaced, with
# the hosts entry settings give both (redis-py 8's socket timeout and pool size).
if REDIS_URL and __import__("os").environ.get("BENCH_REDIS_CORE"):
    CHANNEL_LAYERS["default"]["BACKEND"] = "channels_redis.core.RedisChannelLayer"
'''


# --- the worker process ---------------------------------------------------------------------
def worker(rounds: int, gap: float, doorbell: bool) -> None:
    """Commit `rounds` equity points `gap` seconds apart; print each commit's monotonic time."""
    import django

    django.setup()
    from django.db import transaction

    from dashboard import events
    from execution.models import Account
    from execution.services import equity_record

    if not doorbell:
        events.doorbell_ring = lambda: None  # the relay then finds each row at its next poll
    account = Account.objects.get(name="paper")
    print("ready", flush=True)
    sys.stdin.readline()
    for n in range(rounds):
        time.sleep(gap)
        now = T0 + timedelta(minutes=n)
        with transaction.atomic():
            # Registered first, so it runs first after the commit, before the broadcast.
            transaction.on_commit(lambda now=now: print(f"commit {now.isoformat()} {time.monotonic()!r}", flush=True))
            equity_record(account=account, now=now)
    print("done", flush=True)
    # Exit once the last round's deliveries are in: an exiting interpreter frees its heap on one of
    # the two cores daphne and the clients share, and that round arrived 100-350 ms late.
    sys.stdin.readline()


# --- the orchestration ------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_http(url: str, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args[:3]} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing answered {url} in {seconds} s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def prepare(env: dict[str, str], clients: int) -> list[str]:
    """Migrate the database, create the paper account and one viewer per client; return their Cookie headers."""
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, env=env, check=True)
    os.environ.update(env)
    sys.path[:0] = [env["PYTHONPATH"].split(os.pathsep)[0], str(REPO)]
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    from execution.services import account_ensure

    account_ensure(name="paper")
    cookies = []
    for n in range(clients):
        client = Client()
        client.force_login(get_user_model().objects.create_user(f"viewer{n}", password="x"))
        cookies.append(f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}")
    return cookies


async def client(url: str, cookie: str, arrivals: dict, ready: list) -> None:
    """One dashboard: connect with its session, read the state, then note when each equity event arrives."""
    import aiohttp

    headers = {"Origin": url, "Cookie": cookie}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        async with http.ws_connect(url.replace("http", "ws", 1) + "/ws/live/", headers=headers,
                                   max_msg_size=0) as ws:
            first = await ws.receive_json(timeout=120)
            assert first["event"] == "state", first
            ready.append(ws)
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                at = time.monotonic()
                body = json.loads(message.data)
                if body["event"] == "equity":
                    arrivals.setdefault(body["data"]["ts"].replace("Z", "+00:00"), []).append(at)


class FullCollections:
    """The pauses of this process's full (generation 2) garbage collections while it is armed, in ms."""

    def __init__(self):
        self.pauses: list[float] = []
        self.started: float | None = None

    def __enter__(self) -> FullCollections:
        gc.callbacks.append(self.note)
        return self

    def __exit__(self, *exc) -> None:
        gc.callbacks.remove(self.note)

    def note(self, phase: str, info: dict) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self.started = time.perf_counter()
        elif self.started is not None:
            self.pauses.append(round((time.perf_counter() - self.started) * 1000, 1))


async def measure(url: str, cookies: list[str], env: dict[str, str], rounds: int, gap: float,
                  doorbell: bool) -> dict:
    """Connect every client, run one worker's rounds, return the latency figures."""
    arrivals: dict[str, list[float]] = {}
    ready: list = []
    started = time.monotonic()
    tasks = [asyncio.create_task(client(url, cookie, arrivals, ready)) for cookie in cookies]
    while len(ready) < len(cookies):
        await asyncio.sleep(0.1)
        for task in tasks:
            if task.done() and task.exception():
                raise task.exception()
    connect_seconds = time.monotonic() - started
    mode = [] if doorbell else ["--no-doorbell"]
    work = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "worker", "--rounds", str(rounds), "--gap", str(gap), *mode, cwd=REPO,
        env={**env, ROLE_ENV: "worker"}, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert (await work.stdout.readline()).decode().strip() == "ready"
    await asyncio.sleep(1)   # the relay skips outbox rows older than its first read
    work.stdin.write(b"go\n")
    await work.stdin.drain()
    commits: dict[str, float] = {}
    with FullCollections() as collections:
        while (line := (await work.stdout.readline()).decode().strip()) != "done":
            _, ts, at = line.split()
            commits[ts] = float(at)
        await asyncio.sleep(2)   # stragglers
    work.stdin.write(b"exit\n")
    await work.stdin.drain()
    await work.wait()
    await asyncio.gather(*(ws.close() for ws in ready))
    await asyncio.gather(*tasks)
    return {**figures(commits, arrivals, len(cookies), connect_seconds), "client_full_gc_ms": collections.pauses}


def figures(commits: dict[str, float], arrivals: dict[str, list[float]], clients: int, connect_seconds: float) -> dict:
    """Return p50/p90/p99/max in ms of every (round, client) delivery; the first two rounds warm up."""
    rounds = sorted(commits)[2:]
    latencies = sorted((at - commits[ts]) * 1000 for ts in rounds for at in arrivals.get(ts, []))
    first_client = [(min(arrivals[ts]) - commits[ts]) * 1000 for ts in rounds if ts in arrivals]
    last_client = [(max(arrivals[ts]) - commits[ts]) * 1000 for ts in rounds if ts in arrivals]
    missing = clients * len(rounds) - len(latencies)

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))], 1)

    return {"clients": clients, "rounds_measured": len(rounds), "deliveries": len(latencies), "missing": missing,
            "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99), "max_ms": round(latencies[-1], 1),
            "mean_ms": round(statistics.fmean(latencies), 1),
            "first_client_median_ms": round(statistics.median(first_client), 1),
            "last_client_median_ms": round(statistics.median(last_client), 1),
            "round_medians_ms": [round(statistics.median((at - commits[ts]) * 1000 for at in arrivals[ts]), 1)
                                 for ts in rounds if ts in arrivals],
            "connect_all_s": round(connect_seconds, 1)}


def daphne(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                                    "tradingbot.asgi:application"], cwd=REPO, env={**env, ROLE_ENV: "web"},
                                   stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/admin/login/", process)
    return process, url


def redis_server(directory: Path) -> tuple[subprocess.Popen | None, str]:
    program = shutil.which("redis-server")
    if program is None:
        return None, ""
    port = free_port()
    process = subprocess.Popen([program, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                                "--appendonly", "no", "--dir", str(directory)], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    return process, f"redis://127.0.0.1:{port}/0"


def log_tail(path: Path, lines: int = 30) -> str:
    """Return the end of a daphne log without its access lines."""
    text = path.read_text(errors="replace").splitlines() if path.exists() else ["(no log)"]
    return "\n".join([line for line in text if not line.startswith("127.0.0.1:")][-lines:])


def machine() -> dict:
    import channels
    import daphne as daphne_package

    mem = Path("/proc/meminfo").read_text().split()[1]
    return {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "nproc": os.cpu_count(),
            "mem_gib": round(int(mem) / 1024 / 1024, 1), "load_average_1m": round(os.getloadavg()[0], 1),
            "python": platform.python_version(), "channels": channels.__version__,
            "daphne": daphne_package.__version__}


def run(args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="ws-fanout-"))
    (work / "ws_fanout_settings.py").write_text(SETTINGS)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "ws_fanout_settings", "PYTHONPATH": f"{work}{os.pathsep}{REPO}",
           "SECRET_KEY": "bench-not-secret", "ENV_FILE": str(work / "no.env"), "REDIS_URL": "", "LOG_LEVEL": "WARNING",
           "DATABASE_URL": args.database_url or f"sqlite:///{work / 'bench.sqlite3'}"}
    cookies = prepare(env, args.clients)
    # The clients stand for 200 browsers: a full collection here (~150,000 start-up objects, a few
    # hundred ms on the benchmark machine) would stall all of them and read as a slow delivery.
    gc.collect()
    gc.freeze()
    redis, redis_url = redis_server(work)
    plans = [("in-memory, outbox relay woken by the doorbell", env, True, "doorbell"),
             ("in-memory, outbox relay polling every 0.25 s (no doorbell)", env, False, "poll")]
    if redis_url:
        plans.append(("channels-redis, queue layer (RedisChannelLayer)", {**env, "REDIS_URL": redis_url,
                                                                           "BENCH_REDIS_CORE": "1"}, True, "redis"))
        plans.append(("channels-redis, pub/sub layer (what REDIS_URL selects)", {**env, "REDIS_URL": redis_url},
                      True, "redis-pubsub"))
    plans = [(name, plan_env, doorbell) for name, plan_env, doorbell, key in plans if key in args.transports]
    results = {}
    try:
        for name, plan_env, doorbell in plans:
            server, url = daphne(plan_env, work / f"daphne-{len(results)}.log")
            try:
                results[name] = asyncio.run(measure(url, cookies, plan_env, args.rounds, args.gap, doorbell))
            except Exception:
                print(f"{name} failed; daphne said:\n{log_tail(work / f'daphne-{len(results)}.log')}", flush=True)
                raise
            finally:
                stop(server)
            print(name, results[name], flush=True)
    finally:
        if redis is not None:
            stop(redis)
        from dashboard.events import doorbell_dir

        shutil.rmtree(doorbell_dir(), ignore_errors=True)  # the relay sockets of the terminated daphnes
        shutil.rmtree(work, ignore_errors=True)
    if not redis_url and "redis" in args.transports:
        results["channels-redis"] = "not run: redis-server is not installed"
    return {"machine": machine(), "database": "sqlite" if not args.database_url else "given",
            "clients": args.clients, "rounds": args.rounds, "gap_s": args.gap, "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    each = sub.add_parser("worker", help="internal: the worker process")
    each.add_argument("--rounds", type=int, required=True)
    each.add_argument("--gap", type=float, required=True)
    each.add_argument("--no-doorbell", action="store_true")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between commits")
    parser.add_argument("--transports", nargs="+", default=["doorbell", "poll", "redis", "redis-pubsub"],
                        choices=["doorbell", "poll", "redis", "redis-pubsub"])
    parser.add_argument("--database-url", default="", help="an empty database (default: a temporary SQLite file)")
    args = parser.parse_args()
    if args.command == "worker":
        sys.path.insert(0, str(REPO))
        worker(args.rounds, args.gap, not args.no_doorbell)
        return
    report = run(args)
    RESULT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
