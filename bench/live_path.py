"""Benchmark the live path per candle: close -> snapshot -> decision -> gates -> paper order -> MariaDB -> websocket.

Usage: .venv/bin/python bench/live_path.py [--cycles 1000] [--warm 10] [--database-url URL]
           [--redis redis://127.0.0.1:6391/0] [--out bench/live_path.json] [--profile 50] [--history-days 365]
           [--busy 2]

The output file keeps the last run of each kind: channel layer ("in-memory", "channels-redis"), with
--history-days or --busy named in the key.

Each cycle is one real USD-M BTCUSDT 15m candle of MARKET_DATA_DIR (the next one each time, after a
300-bar warm-up): the candle is stored (`market.ingest.candles_upsert`, as the candle job does when
the bar closes), then `execution.engine.cycle_run(now=close, decide=True)` runs, the same call the
engine makes: open positions' exits on the paper venue, the snapshot, the flow, the packet, the 18
risk gates, sizing and routing (`decisions.services.decision_run`), the market entry acknowledged and
filled by the paper broker and its order, fill and position written to the database, the audit
chain, the equity point. The clock stops when the cycle's last websocket message (its "equity"
event) has arrived at a channel subscribed to the dashboards' "live" group on the channel layer:
the in-memory layer of a single process by default, or Redis with --redis (channels-redis, as in
production with several processes; pass a running server the bench may use alone: channels left in
the "live" group by an earlier, interrupted run slow every send).

--history-days N first writes N days of past trading history ending before the warm-up (candles,
derivatives, a decision, snapshot, flow and equity point per bar, about 13 closed trades a day,
their audit records: bench/history_seed.py), so the reads that grow with history are measured.

--busy N runs N processes that only spin a pure-Python loop during the timed cycles: the same
code on a host with N cores' worth of other work (on this 2-core machine, --busy 2 leaves the bench
and MariaDB no idle core).

The database is MariaDB, a database of its own (`tradingbot_bench_live`, dropped and created at the
start, then migrated); DATABASE_URL or --database-url names the server and user (host "localhost":
mysqlclient connects through the server's Unix socket; 127.0.0.1, the default: TCP).

Trading often, so the order path is measured: the configuration (`BENCH_CONFIG`) takes the first
of all five strategies that votes (at least one votes on about 30 % of these bars), accepts any
edge, sets one target at 1.5 R over a 1 ATR stop (positions close within hours), and lifts the
trade-count, streak, profit-factor, cooldown, hours and loss pauses; the position cap is 1, so a
bar with an open position decides but skips. The output counts the cycles that placed an entry
and those that filled an exit.

Stages are timed by wrapping the functions the cycle calls where it calls them (the wrappers only
read the clock); a parent's time includes its children's. Database time: every query's execution
through `connection.execute_wrapper`.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import platform
import pstats
import queue
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DEFAULT_DATABASE_URL = "mysql://tradingbot:tradingbot-ci@127.0.0.1:3306/tradingbot_bench_live"
CANDLE_FILE = "binance_usdm_BTCUSDT_15m_2025-07-04_2025-12-31.csv.gz"
WARMUP_BARS = 300
STEP = timedelta(minutes=15)
TARGET_P99_MS = 100.0
BENCH_CONFIG = dict(
    mode="ON", strategies="rules,ema_cross,rsi,bollinger,atr_breakout", strategy_aggregation="first",
    edge_threshold=0.0, sl_atr_multiple="1", tp_r_multiples="1.5", tp_shares="1", max_cost_to_target_fraction="1",
    max_trades_per_day=10_000, loss_streak=10_000, sl_streak=10_000, cooldown_minutes=0,
    daily_loss_limit_fraction="0.5", weekly_drawdown_fraction="0.9", max_drawdown_fraction="0.9",
    trading_start="00:00", trading_end="00:00", max_open_positions=1, profit_factor_min_trades=10_000,
)
# (module, attribute, stage): where the cycle calls each timed step.
STAGES = (
    ("execution.engine", "paper_entries_work", "exits: resting entries"),
    ("execution.engine", "positions_check_exits", "exits: stops and targets"),
    ("execution.engine", "decision_run", "decision_run"),
    ("decisions.services", "_pending_and_existing", "  due to expire, bar decided? (one read)"),
    ("decisions.services", "_bars", "  bars load"),
    ("decisions.services", "snapshot_build", "  snapshot"),
    ("decisions.services", "_flow", "  flow (stored)"),
    ("decisions.services", "packet_build", "  packet"),
    ("decisions.services", "risk_state_load", "  risk state load"),
    ("decisions.pipeline", "decide_bar", "  gates, sizing, route"),
    ("decisions.services", "snapshot_record", "  snapshot stored"),
    ("decisions.services", "decision_execute", "  order: paper ack, order/fill/position stored"),
    ("execution.engine", "last_close", "price for the header"),
    ("execution.engine", "paper_funding_apply", "funding"),
    ("execution.engine", "equity_record", "equity point"),
    # Once a transaction: the exit's, and the decision's with its paper entry (parts of the rows above).
    ("decisions.audit_services", "_extend", "audit chain appends (within the rows above)"),
    ("dashboard.events", "_send", "websocket sends (all events)"),
)


def _args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--warm", type=int, default=10, help="untimed cycles first (imports, caches)")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis", default="", help="channel layer on this Redis (channels-redis)")
    parser.add_argument("--out", default=str(REPO / "bench" / "live_path.json"))
    parser.add_argument("--profile", type=int, default=0, help="cProfile this many cycles after the run")
    parser.add_argument("--profile-out", default="", help="also write the cProfile stats to this file")
    parser.add_argument("--history-days", type=int, default=0,
                        help="first seed this many days of past trading history (bench/history_seed.py)")
    parser.add_argument("--busy", type=int, default=0,
                        help="spin this many pure-Python busy loops in other processes during the timed cycles")
    parser.add_argument("--no-freeze", action="store_true",
                        help="leave the start-up heap in the garbage collector's passes (tradingbot.heap)")
    return parser.parse_args()


def database_recreate(url: str) -> str:
    """Drop and create the bench database on the server of `url`; return a label of the server."""
    import MySQLdb

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    if not name.startswith("tradingbot_bench"):
        raise SystemExit(f"refusing to drop {name!r}: the bench only recreates tradingbot_bench* databases")
    conn = MySQLdb.connect(host=parts.hostname, port=parts.port or 3306, user=parts.username,
                           password=parts.password or "")
    cur = conn.cursor()
    cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    cur.execute("SELECT VERSION()")
    version = cur.fetchone()[0]
    conn.close()
    # mysqlclient reaches "localhost" through the server's Unix socket, any other host through TCP.
    where = "localhost (Unix socket)" if parts.hostname == "localhost" else f"{parts.hostname}:{parts.port or 3306} (TCP)"
    return f"MariaDB {version} at {where}, database {name}"


def django_start(url: str, redis: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("SECRET_KEY", "bench-live-path")
    os.environ["DJANGO_SETTINGS_MODULE"] = "tradingbot.settings"
    if redis:
        os.environ["REDIS_URL"] = redis
    else:
        os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def world_seed(cycles: int):
    """Store the warm-up candles and the bench configuration; return (instrument, frame of the cycles' candles)."""
    import pandas as pd
    from django.conf import settings

    from decisions.selectors import trading_config_get
    from market.ingest import candles_upsert
    from market.services import instrument_ensure

    frame = pd.read_csv(Path(settings.MARKET_DATA_DIR) / CANDLE_FILE, dtype=str, nrows=WARMUP_BARS + cycles)
    frame["open_time_ms"] = frame["open_time_ms"].astype("int64")
    if len(frame) < WARMUP_BARS + cycles:
        raise SystemExit(f"{CANDLE_FILE} has {len(frame)} rows, need {WARMUP_BARS + cycles}")
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
    instrument.is_active = True
    instrument.save()
    candles_upsert(instrument_id=instrument.pk, timeframe="15m", frame=frame.iloc[:WARMUP_BARS])
    config = trading_config_get()
    for name, value in BENCH_CONFIG.items():
        field = config._meta.get_field(name)
        setattr(config, name, field.to_python(value))
    config.full_clean()
    config.save()
    return instrument, frame.iloc[WARMUP_BARS:].reset_index(drop=True)


class Queries:
    """Count the queries and their execution time in the current cycle."""

    def __init__(self):
        self.count = self.ns = 0

    def __call__(self, execute, sql, params, many, context):
        start = time.perf_counter_ns()
        try:
            return execute(sql, params, many, context)
        finally:
            self.count += 1
            self.ns += time.perf_counter_ns() - start


class Clock:
    """Inclusive nanoseconds and queries per stage in the current cycle."""

    def __init__(self, queries: Queries):
        self.queries = queries
        self.now = defaultdict(int)
        self.counts = defaultdict(int)

    def wrap(self, module, attribute: str, stage: str) -> None:
        inner = getattr(module, attribute)

        def timed(*args, **kwargs):
            start, asked = time.perf_counter_ns(), self.queries.count
            try:
                return inner(*args, **kwargs)
            finally:
                self.now[stage] += time.perf_counter_ns() - start
                self.counts[stage] += self.queries.count - asked
        setattr(module, attribute, timed)

    def take(self) -> tuple[dict[str, int], dict[str, int]]:
        taken = dict(self.now), dict(self.counts)
        self.now, self.counts = defaultdict(int), defaultdict(int)
        return taken


class Subscriber:
    """A channel in the dashboards' "live" group; `arrival(event, ts)` returns when that message arrived.

    On the in-memory layer (one process) the messages are read in this thread after the cycle, in
    one hop into an event loop: they were queued during it, so the read time is the arrival. On Redis a thread with its own event
    loop reads the channel as messages come and stamps each on arrival.
    """

    def __init__(self, threaded: bool):
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer

        self.layer = get_channel_layer()
        self.arrived: queue.Queue | None = None
        if threaded:
            # channels-redis's pub/sub layer keeps a channel in the event loop that made it: the
            # reading thread's loop makes the channel, joins the group and reads.
            self.arrived, joined = queue.Queue(), threading.Event()
            threading.Thread(target=lambda: asyncio.run(self._read(joined)), daemon=True).start()
            if not joined.wait(30):
                raise SystemExit("the subscriber did not join the live group within 30 s")
            return
        self.channel = async_to_sync(self.layer.new_channel)()
        async_to_sync(self.layer.group_add)("live", self.channel)

    async def _read(self, joined: threading.Event) -> None:
        self.channel = await self.layer.new_channel()
        await self.layer.group_add("live", self.channel)
        joined.set()
        while True:
            message = await self.layer.receive(self.channel)
            self.arrived.put((time.perf_counter_ns(), message))

    async def _read_until(self, event: str, ts: str) -> int:
        while True:
            message = await self.layer.receive(self.channel)
            if _is(message, event, ts):
                return time.perf_counter_ns()

    def arrival(self, event: str, ts: str) -> int:
        """Return the arrival time (perf_counter_ns) of `event` stamped `ts`, reading past the others."""
        if self.arrived is None:
            # One hop into an event loop reads the cycle's queued messages up to this one (a hop per
            # message would add its ~1 ms thread-and-loop start to the figure each time).
            from asgiref.sync import async_to_sync

            return async_to_sync(self._read_until)(event, ts)
        while True:
            at, message = self.arrived.get(timeout=30)
            if _is(message, event, ts):
                return at


def _is(message: dict, event: str, ts: str) -> bool:
    return message.get("event") == event and message.get("data", {}).get("ts") == ts


def _iso(moment: datetime) -> str:
    # DjangoJSONEncoder's form of an aware UTC datetime, as broadcast() renders the equity event's ts.
    return moment.isoformat().replace("+00:00", "Z")


def cycle_once(row, instrument, subscriber: Subscriber, clock: Clock, queries: Queries) -> dict:
    """Store one closed candle, run the live cycle on it and wait for its last websocket message."""
    from django.db import connection

    from execution.engine import cycle_run
    from execution.models import Order
    from market.ingest import candles_upsert

    close = datetime.fromtimestamp(int(row["open_time_ms"].iloc[0]) / 1000, tz=timezone.utc) + STEP
    last_order = Order.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    queries.count = queries.ns = 0
    with connection.execute_wrapper(queries):
        start, cpu = time.perf_counter_ns(), time.process_time_ns()
        candles_upsert(instrument_id=instrument.pk, timeframe="15m", frame=row)
        stored, store_queries = time.perf_counter_ns(), queries.count
        cycle_run(now=close, decide=True)
        ran = time.perf_counter_ns()
        arrived = subscriber.arrival("equity", _iso(close))
        cpu = time.process_time_ns() - cpu
    legs = list(Order.objects.filter(pk__gt=last_order).values_list("leg", flat=True))
    stages, stage_queries = clock.take()
    stage_queries["candle store"] = store_queries
    # Done when cycle_run has returned and its last message has arrived (on Redis it may arrive first).
    done = max(arrived, ran)
    return {"close": close.isoformat(), "total_ms": (done - start) / 1e6, "candle_store_ms": (stored - start) / 1e6,
            "cycle_run_ms": (ran - stored) / 1e6, "delivery_ms": (done - ran) / 1e6,
            "message_after_start_ms": (arrived - start) / 1e6,
            "stages_ms": {k: v / 1e6 for k, v in stages.items()}, "stage_queries": stage_queries,
            "queries": queries.count,
            "db_ms": queries.ns / 1e6, "cpu_ms": cpu / 1e6, "entry": any(leg.startswith("entry") for leg in legs),
            "exit": any(not leg.startswith("entry") for leg in legs)}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def summarize(cycles: list[dict]) -> dict:
    totals = [c["total_ms"] for c in cycles]
    names = ["candle store", "cycle_run", "delivery (cycle_run returned -> message received)"]
    keys = ["candle_store_ms", "cycle_run_ms", "delivery_ms"]
    rows = {n: _stats([c[k] for c in cycles]) for n, k in zip(names, keys)}
    stored = [c["stage_queries"]["candle store"] for c in cycles]
    rows["candle store"]["queries_mean"] = round(sum(stored) / len(cycles), 1)
    for _, _, stage in STAGES:
        rows[stage] = {**_stats([c["stages_ms"].get(stage, 0.0) for c in cycles]),
                       "queries_mean": round(sum(c["stage_queries"].get(stage, 0) for c in cycles) / len(cycles), 1)}
    rows["database (all queries, client wall time)"] = _stats([c["db_ms"] for c in cycles])
    rows["this process's CPU time"] = _stats([c["cpu_ms"] for c in cycles])
    with_entry = [c["total_ms"] for c in cycles if c["entry"]]
    return {
        "cycles": len(cycles), "p50_ms": _pct(totals, 50), "p90_ms": _pct(totals, 90), "p99_ms": _pct(totals, 99),
        "max_ms": max(totals), "mean_ms": sum(totals) / len(totals),
        "cycles_with_entry": sum(1 for c in cycles if c["entry"]),
        "cycles_with_exit": sum(1 for c in cycles if c["exit"]),
        "entry_cycles_p50_ms": _pct(with_entry, 50) if with_entry else None,
        "entry_cycles_p99_ms": _pct(with_entry, 99) if with_entry else None,
        "queries_per_cycle_mean": sum(c["queries"] for c in cycles) / len(cycles),
        "stages": rows, "target_p99_ms": TARGET_P99_MS, "target_met": _pct(totals, 99) < TARGET_P99_MS,
    }


def _stats(values: list[float]) -> dict:
    return {"mean_ms": round(sum(values) / len(values), 3), "p50_ms": round(_pct(values, 50), 3),
            "p99_ms": round(_pct(values, 99), 3)}


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    free = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout.splitlines()
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory": free[1] if len(free) > 1 else "",
            "python": platform.python_version(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]}


def host_probe_ms() -> float:
    """Return the median of five timings of a fixed pure-Python loop (ms): the host's speed, not the code's.

    This shared host's speed moves by 10-30 % from hour to hour at the same load average; the probe
    taken before and after a run tells a slow stretch from a slower change.
    """
    timings = []
    for _ in range(5):
        start, total = time.perf_counter_ns(), 0
        for i in range(1_000_000):
            total += i * i
        timings.append((time.perf_counter_ns() - start) / 1e6)
    return round(sorted(timings)[2], 1)


def main() -> None:
    args = _args()
    before = machine()      # other sessions' load shows here: wall times on a shared 2-core box move with it
    before["host_probe_ms"] = host_probe_ms()
    database = database_recreate(args.database_url)
    django_start(args.database_url, args.redis)
    instrument, frame = world_seed(args.warm + args.cycles + args.profile)
    history = _history(instrument, frame, args.history_days) if args.history_days else None
    if not args.no_freeze:
        from tradingbot.heap import heap_freeze

        heap_freeze()   # as the engine's processes do once started (django-q2 workers, run_bot's engine)
    subscriber = Subscriber(threaded=bool(args.redis))
    queries = Queries()
    clock = Clock(queries)
    import importlib

    for module, attribute, stage in STAGES:
        clock.wrap(importlib.import_module(module), attribute, stage)
    for k in range(args.warm):
        cycle_once(frame.iloc[[k]], instrument, subscriber, clock, queries)
    cycles = []
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        for k in range(args.warm, args.warm + args.cycles):
            cycles.append(cycle_once(frame.iloc[[k]], instrument, subscriber, clock, queries))
            if len(cycles) % 100 == 0:
                print(f"{len(cycles)} cycles, last {cycles[-1]['total_ms']:.1f} ms", file=sys.stderr)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    result = {"machine": before, "load_average_at_end": machine()["load_average_1_5_15"],
              "host_probe_ms_at_end": host_probe_ms(), "database": database,
              "channel_layer": "channels-redis " + args.redis if args.redis else "in-memory (one process)",
              "candles": f"{CANDLE_FILE}: {args.cycles} bars after {WARMUP_BARS} warm-up and {args.warm} untimed",
              "config": BENCH_CONFIG, "heap_frozen": not args.no_freeze, "summary": summarize(cycles)}
    if history is not None:
        result.update(history_days=args.history_days, history_seed=history)
    if args.busy:
        result["busy_loops"] = args.busy
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for k in range(args.warm + args.cycles, args.warm + args.cycles + args.profile):
            cycle_once(frame.iloc[[k]], instrument, subscriber, clock, queries)
        profiler.disable()
        if args.profile_out:
            profiler.dump_stats(args.profile_out)
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(25)
    _save(Path(args.out), _run_key(args), result)
    _print(result)


def _history(instrument, frame, days: int) -> dict:
    """Seed `days` of past trading history before the warm-up (bench/history_seed.py); return what it wrote."""
    from django.conf import settings

    from history_seed import history_seed  # bench/, this script's directory, leads sys.path

    until = datetime.fromtimestamp(int(frame["open_time_ms"].iloc[-1]) / 1000, tz=timezone.utc) + STEP
    seeded = history_seed(instrument=instrument, days=days, data_dir=Path(settings.MARKET_DATA_DIR),
                          candle_file=CANDLE_FILE, until=until)
    print(f"history: {days} days seeded in {seeded['seconds']} s: {seeded['rows']}", file=sys.stderr)
    gc.collect()    # the seed's rows are garbage now: collected before the heap is frozen and the cycles timed
    return seeded


def _run_key(args) -> str:
    """Return the key of the run in the output file: its channel layer, and its history and busy loops if any."""
    key = "channels-redis" if args.redis else "in-memory"
    if args.history_days:
        key += f", {args.history_days} days of history"
    if args.busy:
        key += f", {args.busy} busy loop{'s' if args.busy > 1 else ''}"
    return key


def _save(path: Path, layer: str, result: dict) -> None:
    """Write the run under its key (`_run_key`), keeping the other kinds' last runs in the file."""
    try:
        runs = json.loads(path.read_text()).get("runs", {})
    except (OSError, ValueError):
        runs = {}
    runs[layer] = result
    path.write_text(json.dumps({"runs": runs}, indent=1) + "\n")


def _print(result: dict) -> None:
    s = result["summary"]
    print(f"{s['cycles']} cycles: p50 {s['p50_ms']:.1f} ms, p90 {s['p90_ms']:.1f}, p99 {s['p99_ms']:.1f}, "
          f"max {s['max_ms']:.1f} (target p99 < {TARGET_P99_MS:.0f} ms: {'met' if s['target_met'] else 'NOT met'})")
    print(f"host probe (a fixed pure-Python loop, lower is faster): {result['machine']['host_probe_ms']} ms before, "
          f"{result['host_probe_ms_at_end']} ms after")
    print(f"entries in {s['cycles_with_entry']} cycles (p50 {s['entry_cycles_p50_ms']}, p99 "
          f"{s['entry_cycles_p99_ms']} ms), exits in {s['cycles_with_exit']}, "
          f"{s['queries_per_cycle_mean']:.0f} queries a cycle")
    if result.get("busy_loops"):
        print(f"{result['busy_loops']} busy-loop processes ran during the timed cycles")
    if "history_seed" in result:
        seeded = result["history_seed"]
        print(f"history: {result['history_days']} days before the warm-up, seeded in {seeded['seconds']} s; rows: "
              + ", ".join(f"{name} {count:,}" for name, count in seeded["rows"].items()))
    for name, row in s["stages"].items():
        asked = f"  {row['queries_mean']:5.1f} queries" if "queries_mean" in row else ""
        print(f"  {name:52} mean {row['mean_ms']:8.2f}  p50 {row['p50_ms']:8.2f}  p99 {row['p99_ms']:8.2f}{asked}")


if __name__ == "__main__":
    main()
