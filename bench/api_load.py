"""Benchmark the API under load: daphne in a second process on loopback, 50 clients, three endpoints.

Usage:
    DATABASE_URL=mysql://tradingbot:tradingbot-ci@127.0.0.1:3306/tradingbot_bench .venv/bin/python bench/api_load.py
    .venv/bin/python bench/api_load.py --seconds 10 --clients 20          # a quicker look
    .venv/bin/python bench/api_load.py --servers 2                        # two daphne processes, one socket
                                                                          # (run_bot --web-processes 2)

What it does:
1. Migrates the database named by DATABASE_URL (the project's settings, as in production) and seeds
   it once: 500,000 one-minute equity points on one account, the real BTCUSDT 1m candles of
   MARKET_DATA_DIR, 20,000 decisions with rationale and gate verdicts, and one viewer user with an
   API token per client. A database that already holds the seed is reused as it is.
2. Starts daphne (`tradingbot.asgi:application`, in the web role, as `run_bot` does) on a free
   loopback port; with `--servers N`, N daphne processes accept on one listening socket (daphne
   --fd), the kernel handing each new connection to one of them: `run_bot --web-processes N`.
3. Runs each scenario with N concurrent asyncio clients (aiohttp, a ccxt dependency), each with its
   own token and keep-alive connection, in two shapes:
   - paced: every client sends one request every `--interval` seconds (a script polling the API),
     starting at a random phase; latency is measured from the moment the request was due, so a
     server that falls behind is charged for the queue it builds;
   - saturated: every client sends its next request as soon as the previous answer arrived;
     this measures the most the server does per second, and latency = clients / throughput.
   Before an endpoint's first run every client sends it one untimed request, so per-process caches
   (the equity curve: about 3 s to compute cold) are filled before the 2 s warm-up.
4. Prints p50 / p95 / p99 and requests per second per endpoint and writes bench/api_load.json.
5. Then, per endpoint, one client sends `--sequential` requests one after the other and the script
   reads the CPU time the daphne processes (and mariadbd, when it runs here) spent on them from
   /proc: the server's cost per request, which other work on a shared machine disturbs far less
   than it disturbs latencies.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "mysql://tradingbot:tradingbot-ci@127.0.0.1:3306/tradingbot_bench"
EQUITY_POINTS = 500_000
DECISIONS = 20_000
EQUITY_START = datetime(2024, 1, 1, tzinfo=UTC)
ACCOUNT = "bench-paper"
TARGET_P99_MS = 100.0


# --- seeding (runs in its own process, with Django set up on DATABASE_URL) ----------------------

def seed(clients: int) -> dict:
    """Migrate and fill the database once; return the tokens, ids and ranges the load needs."""
    import django

    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingbot.settings")
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from execution.models import EquityPoint
    from execution.services import account_ensure

    account = account_ensure(name=ACCOUNT)
    if EquityPoint.objects.filter(account=account).count() != EQUITY_POINTS:
        _seed_equity(account)
    instrument, spans = _seed_candles()
    _seed_decisions(instrument)
    return {"account": account.pk, "symbol": instrument.exchange_symbol, "data_source": instrument.data_source,
            "candle_days": spans,
            "tokens": _tokens(clients), "database": _database_label()}


def _seed_equity(account) -> None:
    from decimal import Decimal

    from execution.models import EquityPoint

    EquityPoint.objects.filter(account=account).delete()
    rng = random.Random(7)
    equity, rows = 10_000.0, []
    for i in range(EQUITY_POINTS):
        equity = max(100.0, equity * (1 + rng.gauss(0.00001, 0.0008)))
        value = Decimal(f"{equity:.2f}")
        rows.append(EquityPoint(account=account, ts=EQUITY_START + timedelta(minutes=i), balance_usdt=value,
                                unrealized_pnl_usdt=Decimal(0), equity_usdt=value))
        if len(rows) == 10_000:
            EquityPoint.objects.bulk_create(rows)
            rows = []
    EquityPoint.objects.bulk_create(rows)


def _seed_candles():
    """Import the recorded BTCUSDT spot 1m files; return the instrument and each file's [first, last] day."""
    from django.conf import settings

    from market.importer import market_file_import
    from market.models import Candle, Instrument

    files = sorted(Path(settings.MARKET_DATA_DIR).glob("binance_spot_BTCUSDT_1m_*.csv.gz"))
    instrument = Instrument.objects.filter(exchange="binance", exchange_symbol="BTCUSDT", data_source="exchange").first()
    if instrument is None or not Candle.objects.filter(instrument=instrument, timeframe="1m").exists():
        for path in files:
            market_file_import(path)
        instrument = Instrument.objects.get(exchange="binance", exchange_symbol="BTCUSDT", data_source="exchange")
    # binance_spot_BTCUSDT_1m_2021-03-26_2021-04-30.csv.gz: a chart window inside one file has no gap.
    spans = [path.name.removesuffix(".csv.gz").split("_")[-2:] for path in files]
    return instrument, spans


def _seed_decisions(instrument) -> None:
    from decimal import Decimal

    from decisions.models import Decision

    if Decision.objects.filter(instrument=instrument).count() >= DECISIONS:
        return
    rng = random.Random(11)
    rows = []
    for i in range(DECISIONS):
        action = rng.choice(["LONG", "SHORT", "FLAT", "FLAT"])
        close = Decimal(f"{60000 + rng.uniform(-5000, 5000):.1f}")
        levels = {} if action == "FLAT" else dict(
            entry_price=close, stop_price=close - 300, target_price=close + 600, quantity=Decimal("0.015"),
            entry_zone_low=close - 50, entry_zone_high=close + 50,
            take_profits=[{"price": str(close + 300 * k), "share": s} for k, s in ((1, "0.4"), (2, "0.4"), (3, "0.2"))])
        rows.append(Decision(
            instrument=instrument, timeframe="15m", as_of=EQUITY_START + timedelta(minutes=15 * i), action=action,
            mode="HYBRID", outcome=rng.choice(["executed", "flat", "blocked", "logged", "rejected", "expired"]),
            reason="trend up with momentum" if action != "FLAT" else "no signal", confidence=rng.random(),
            rationale=[{"name": n, "value": round(rng.uniform(-1, 1), 4)} for n in ("trend", "momentum", "atr",
                                                                                    "crowd_bias", "trap_index")],
            gates=[{"name": g, "passed": True, "reason": "within limits"} for g in ("daily_loss", "weekly_drawdown",
                                                                                   "max_drawdown", "trades_per_day",
                                                                                   "open_positions", "spread")],
            score_parts={"edge": {"long": rng.random(), "short": rng.random()}}, **levels))
    Decision.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)


def _tokens(clients: int) -> list[str]:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    keys = []
    for i in range(clients):
        user, _ = get_user_model().objects.get_or_create(username=f"bench-client-{i}")
        keys.append(Token.objects.get_or_create(user=user)[0].key)
    return keys


def _database_label() -> str:
    from django.db import connection

    if connection.vendor == "sqlite":
        return f"SQLite {connection.Database.sqlite_version}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT VERSION()")
        return f"MariaDB {cursor.fetchone()[0]}"


# --- the server --------------------------------------------------------------------------------

def listening_socket() -> socket.socket:
    """A listening socket on a free loopback port, to be shared by the daphne processes."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def server_start(env: dict, sock: socket.socket) -> subprocess.Popen:
    """Start daphne as run_bot does, accepting on `sock` (daphne --fd); its log goes to a temporary file."""
    log = tempfile.NamedTemporaryFile("w", prefix="api_load-daphne-", suffix=".log", delete=False)  # noqa: SIM115
    print(f"daphne log: {log.name}", flush=True)
    return subprocess.Popen([sys.executable, "-m", "daphne", "--fd", str(sock.fileno()),
                             "tradingbot.asgi:application"], cwd=REPO, env=env, stdout=log, stderr=log,
                            pass_fds=(sock.fileno(),))


async def server_wait(base: str, token: str, timeout_s: float = 60) -> None:
    import aiohttp

    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(headers={"Authorization": f"Token {token}"}) as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{base}/api/control/") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.25)
    raise RuntimeError(f"daphne did not answer on {base} within {timeout_s} s")


# --- the load ----------------------------------------------------------------------------------

def scenarios(meta: dict) -> dict:
    """Return, per endpoint, a function that makes the next request's path (varied, like real clients)."""
    days = [(datetime.fromisoformat(a).replace(tzinfo=UTC), datetime.fromisoformat(b).replace(tzinfo=UTC))
            for a, b in meta["candle_days"]]
    symbol = meta["symbol"]

    def equity(rng: random.Random) -> str:
        return f"/api/equity/?account={meta['account']}&max_points=1000"

    def candles(rng: random.Random) -> str:
        first, last = rng.choice(days)
        start = first + timedelta(minutes=rng.randrange(int((last - first).total_seconds() // 60) - 500))
        end = start + timedelta(minutes=499)
        return (f"/api/candles/?symbol={symbol}&data_source={meta['data_source']}&timeframe=1m"
                f"&start={start:%Y-%m-%dT%H:%M:%SZ}&end={end:%Y-%m-%dT%H:%M:%SZ}&limit=500")

    def decisions(rng: random.Random) -> str:
        return f"/api/decisions/?limit=50&offset={rng.choice([0, 0, 0, 50, 100, 1000])}"

    return {"equity": equity, "candles": candles, "decisions": decisions}


async def client_run(session, base: str, make_path, rng: random.Random, stop_at: float, interval: float,
                     latencies: list[float], errors: list[str]) -> None:
    """Send requests until `stop_at`: every `interval` s (paced), or back to back when interval is 0."""
    due = time.monotonic() + (rng.uniform(0, interval) if interval else 0)
    while True:
        if interval:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        if due >= stop_at or time.monotonic() >= stop_at:
            return
        started = due if interval else time.monotonic()
        try:
            async with session.get(base + make_path(rng)) as response:
                await response.read()
                if response.status != 200:
                    errors.append(f"{response.status}")
        except Exception as exc:  # noqa: BLE001  counted and shown, the run goes on
            errors.append(type(exc).__name__)
        latencies.append((time.monotonic() - started) * 1000)
        due = due + interval if interval else time.monotonic()


async def scenario_run(base: str, tokens: list[str], make_path, seconds: float, interval: float,
                       warmup_s: float = 2.0, prime: bool = False) -> dict:
    """Run one endpoint with one client per token for `seconds` after a warm-up; return its figures."""
    import aiohttp

    sessions = [aiohttp.ClientSession(headers={"Authorization": f"Token {t}"},
                                      connector=aiohttp.TCPConnector(limit=1)) for t in tokens]
    try:
        if prime:
            # One untimed request per client (per connection, so every server process gets some).
            async def one(session, rng):
                async with session.get(base + make_path(rng)) as response:
                    await response.read()
            await asyncio.gather(*(one(s, random.Random(-1 - i)) for i, s in enumerate(sessions)))
        for phase_seconds, keep in ((warmup_s, False), (seconds, True)):
            latencies, errors = [], []
            began = time.monotonic()
            await asyncio.gather(*(client_run(s, base, make_path, random.Random(i), began + phase_seconds, interval,
                                              latencies, errors) for i, s in enumerate(sessions)))
            elapsed = time.monotonic() - began
    finally:
        for session in sessions:
            await session.close()
    return summary(latencies, errors, elapsed)


def summary(latencies: list[float], errors: list[str], elapsed: float) -> dict:
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 1) if ordered else float("nan")

    return {"requests": len(ordered), "errors": len(errors), "error_kinds": sorted(set(errors))[:5],
            "rps": round(len(ordered) / elapsed, 1), "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99),
            "mean_ms": round(statistics.fmean(ordered), 1) if ordered else None, "max_ms": round(ordered[-1], 1)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mariadb_pid() -> int | None:
    found = subprocess.run(["pgrep", "-x", "mariadbd"], capture_output=True, text=True).stdout.split()
    return int(found[0]) if found else None


async def sequential_cpu(base: str, token: str, make_path, requests: int, server_pids: list[int]) -> dict:
    """Send `requests` requests one after another; return the servers' (and MariaDB's) CPU ms per request."""
    import aiohttp

    rng, database = random.Random(5), mariadb_pid()
    async with aiohttp.ClientSession(headers={"Authorization": f"Token {token}"}) as session:
        async def one():
            async with session.get(base + make_path(rng)) as response:
                await response.read()
        for _ in range(10):
            await one()
        server_before = sum(cpu_seconds(pid) for pid in server_pids)
        database_before = cpu_seconds(database) if database else 0.0
        for _ in range(requests):
            await one()
        server_ms = (sum(cpu_seconds(pid) for pid in server_pids) - server_before) * 1000 / requests
        database_ms = (cpu_seconds(database) - database_before) * 1000 / requests if database else None
    return {"requests": requests, "server_cpu_ms": round(server_ms, 2),
            "mariadb_cpu_ms": None if database_ms is None else round(database_ms, 2)}


async def load(base: str, meta: dict, args, server_pids: list[int]) -> dict:
    await server_wait(base, meta["tokens"][0])
    results = {}
    for name, make_path in scenarios(meta).items():
        if args.only and name not in args.only:
            continue
        results[name] = {}
        for shape, interval in (("paced", args.interval), ("saturated", 0.0)):
            figures = await scenario_run(base, meta["tokens"], make_path, args.seconds, interval,
                                         prime=shape == "paced")
            results[name][shape] = figures
            print(f"{name:10s} {shape:9s} {figures['requests']:6d} req {figures['rps']:7.1f}/s  "
                  f"p50 {figures['p50_ms']:7.1f}  p95 {figures['p95_ms']:7.1f}  p99 {figures['p99_ms']:7.1f} ms"
                  f"  errors {figures['errors']}", flush=True)
    for name, make_path in scenarios(meta).items():
        if args.sequential and (not args.only or name in args.only):
            figures = await sequential_cpu(base, meta["tokens"][0], make_path, args.sequential, server_pids)
            results[name]["sequential"] = figures
            print(f"{name:10s} one at a time: server CPU {figures['server_cpu_ms']:.1f} ms/request, "
                  f"MariaDB CPU {figures['mariadb_cpu_ms']} ms/request", flush=True)
    return results


def machine() -> dict:
    memory = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout.splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_total_gib": memory[1].split()[1] if len(memory) > 1 else "",
            "python": platform.python_version(), "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per endpoint and shape")
    parser.add_argument("--interval", type=float, default=1.0, help="paced: seconds between a client's requests")
    parser.add_argument("--only", nargs="*", choices=["equity", "candles", "decisions"])
    parser.add_argument("--servers", type=int, default=1, help="daphne processes sharing the listening socket")
    parser.add_argument("--sequential", type=int, default=200,
                        help="then this many requests one at a time per endpoint, for the CPU per request (0: none)")
    parser.add_argument("--out", default=str(REPO / "bench" / "api_load.json"))
    parser.add_argument("--seed-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    env = {**os.environ, "DATABASE_URL": os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL),
           "DJANGO_SETTINGS_MODULE": "tradingbot.settings", "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only"),
           "DEBUG": "False", "ENV_FILE": "/dev/null", "LOG_LEVEL": "WARNING",
           # Every client has its own user: 50 x 1 req/s stays far below the per-user throttle.
           "API_THROTTLE_USER": os.environ.get("API_THROTTLE_USER", "100000/minute")}
    if args.seed_only:
        print(json.dumps(seed(args.clients)))
        return
    started = time.monotonic()
    done = subprocess.run([sys.executable, __file__, "--seed-only", "--clients", str(args.clients)], cwd=REPO, env=env,
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"seeding failed:\n{done.stderr[-3000:]}")
    meta = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"seeded/checked {meta['database']} in {time.monotonic() - started:.0f} s", flush=True)
    load_before = [round(x, 1) for x in os.getloadavg()]
    sock = listening_socket()
    # As run_bot starts them: the web role (its heap freeze) and the count of sibling processes.
    web_env = {**env, "TRADINGBOT_PROCESS_ROLE": "web", "WEB_PROCESSES": str(args.servers)}
    servers = [server_start(web_env, sock) for _ in range(args.servers)]
    try:
        results = asyncio.run(load(f"http://127.0.0.1:{sock.getsockname()[1]}", meta, args,
                                   [server.pid for server in servers]))
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)
        sock.close()
    document = {"machine": machine(), "load_average_1_5_15": {"before": load_before,
                                                             "after": [round(x, 1) for x in os.getloadavg()]},
                "database": meta["database"],
                "server": f"daphne, {args.servers} process{'es' if args.servers > 1 else ''}",
                "clients": args.clients, "seconds": args.seconds, "paced_interval_s": args.interval,
                "equity_points": EQUITY_POINTS, "decisions": DECISIONS, "target_p99_ms": TARGET_P99_MS,
                "results": results}
    Path(args.out).write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
