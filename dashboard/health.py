"""The platform's self-test: one check per dependency, each named, timed and explained.

`health_report` runs every check (the health page, the every-minute health task);
`readiness_report` runs the three that decide whether this process may take traffic (/ready).
A check never raises: a failure becomes a failing entry whose detail names the problem, with
credentials and request signatures redacted (tradingbot.log_filters.redact).

The engine and the django-q2 workers are other processes, so worker liveness is read from the
database: the heartbeat task (dashboard.tasks.heartbeat_beat) stamps WorkerHeartbeat every minute.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Max
from django.utils import timezone

from dashboard.events import broadcast_on_commit
from dashboard.models import HealthCheckRun, WorkerHeartbeat
from decisions.models import Decision, TradingConfig
from execution.models import Account, EquityPoint
from market.models import Candle, DataSource, Instrument
from market.timeframes import timeframe_ms
from tradingbot.log_filters import redact

CLUSTER_HEARTBEAT = "django-q2"
# The heartbeat runs every minute; three missed beats mean no worker is taking tasks.
HEARTBEAT_MAX_AGE = dt.timedelta(minutes=3)
CHANNEL_TIMEOUT_S = 2.0
EXCHANGE_TIMEOUT_MS = 5_000
# A timeframe is stale once its newest bar closed more than this many bars before the clock.
STALE_BARS = 3
# The health task runs every minute; an older stored report no longer says how things are.
SUMMARY_MAX_AGE = dt.timedelta(minutes=5)
KEEP_RUNS = dt.timedelta(days=1)
DETAIL_MAX_CHARS = 500


@dataclass(frozen=True, slots=True)
class Check:
    """One check's verdict; `detail` says what was seen, or what failed and where to look."""

    name: str
    group: str            # database | channels | workers | exchange | data | reconciliation
    ok: bool
    detail: str
    checked_at: dt.datetime
    latency_ms: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def error_text(exc: BaseException) -> str:
    """Return "<ExceptionType>: <message>" with secrets redacted and the length capped."""
    message = str(exc).strip()
    if exc.__class__.__module__.startswith("ccxt"):
        from execution.brokers.ccxt_errors import describe  # Binance's "<code> <msg>", not the whole reply

        message = describe(exc)
    return redact(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)[:DETAIL_MAX_CHARS]


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _guarded(name: str, group: str, now: dt.datetime, probe: Callable[[], tuple[bool, str]]) -> Check:
    """Run `probe` -> (ok, detail) and time it; an exception fails the check with its text."""
    started = time.perf_counter()
    try:
        ok, detail = probe()
    except Exception as exc:  # a health check reports failures, it never raises them
        ok, detail = False, error_text(exc)
    return Check(name, group, ok, redact(detail)[:DETAIL_MAX_CHARS], now, _ms_since(started))


def _ago(delta: dt.timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds >= 7200:
        return f"{seconds / 3600:.1f} h"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min {rest} s" if rest and minutes < 10 else f"{minutes} min"


# -- readiness: database, channel layer, workers ------------------------------------------------

def check_database(*, now: dt.datetime, connection=None) -> Check:
    """Return whether the database answers a query (`connection`: default alias)."""
    conn = connection if connection is not None else connections[DEFAULT_DB_ALIAS]

    def probe():
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            row = cursor.fetchone()
        if not row or row[0] != 1:
            return False, f"{conn.vendor}: SELECT 1 returned {row!r}"
        return True, f"{conn.vendor}: SELECT 1 answered"
    return _guarded("database", "database", now, probe)


async def _roundtrip(layer, timeout_s: float) -> None:
    async def send_and_receive():
        channel = await layer.new_channel()
        token = uuid.uuid4().hex
        await layer.send(channel, {"type": "health.ping", "token": token})
        message = await layer.receive(channel)
        if message.get("token") != token:
            raise RuntimeError("a different message came back on the health channel")
    # One bound on the whole exchange: with Redis, connecting can hang as long as receiving.
    await asyncio.wait_for(send_and_receive(), timeout_s)


def check_channel_layer(*, now: dt.datetime, layer=None, timeout_s: float = CHANNEL_TIMEOUT_S) -> Check:
    """Return whether a message sent to a fresh channel of the layer comes back within `timeout_s`."""
    def probe():
        active = layer if layer is not None else get_channel_layer()
        if active is None:
            return False, "no channel layer configured (CHANNEL_LAYERS)"
        backend = type(active).__name__
        try:
            async_to_sync(_roundtrip)(active, timeout_s)
        except TimeoutError:
            return False, f"{backend}: a message sent to a fresh channel did not come back within {timeout_s:g} s"
        return True, f"{backend}: a message went out and came back"
    return _guarded("channel layer", "channels", now, probe)


def check_workers(*, now: dt.datetime) -> Check:
    """Return whether a django-q2 worker ran the heartbeat task within HEARTBEAT_MAX_AGE of `now`."""
    def probe():
        beat = WorkerHeartbeat.objects.filter(name=CLUSTER_HEARTBEAT).first()
        if beat is None:
            return False, ("no heartbeat yet: start the django-q2 cluster (run_bot, or manage.py qcluster) "
                           "and create its schedules (manage.py setup_schedules)")
        age, where = now - beat.beat_at, f"{beat.host} pid {beat.pid}"
        if age > HEARTBEAT_MAX_AGE:
            return False, (f"last heartbeat {_ago(age)} ago ({beat.beat_at:%Y-%m-%d %H:%M:%S} UTC, {where}): "
                           f"no worker ran the heartbeat task within {_ago(HEARTBEAT_MAX_AGE)}")
        return True, f"last heartbeat {_ago(age)} ago ({where})"
    return _guarded("django-q2 workers", "workers", now, probe)


def heartbeat_record(*, now: dt.datetime, name: str = CLUSTER_HEARTBEAT) -> WorkerHeartbeat:
    """Stamp `name`'s heartbeat with `now` and this process's host and pid."""
    beat, _ = WorkerHeartbeat.objects.update_or_create(
        name=name, defaults={"beat_at": now, "host": socket.gethostname()[:255], "pid": os.getpid()})
    return beat


# -- exchanges -------------------------------------------------------------------------------------

def check_exchanges(*, now: dt.datetime, timeout_ms: int = EXCHANGE_TIMEOUT_MS) -> list[Check]:
    """Return, per account, whether its venue's public and private endpoints answer (paper: nothing to reach)."""
    try:
        accounts = list(Account.objects.order_by("name"))
    except Exception as exc:
        return [Check("exchanges", "exchange", False, f"accounts not read: {error_text(exc)}", now)]
    checks = []
    for account in accounts:
        if account.broker == Account.Broker.PAPER:
            checks.append(Check(f"exchange: {account.name}", "exchange", True, "paper broker: no exchange to reach",
                                now, 0.0))
        else:
            checks += _venue_checks(account, now, timeout_ms)
    return checks


def _venue_checks(account: Account, now: dt.datetime, timeout_ms: int) -> list[Check]:
    # The factory that execution.services.broker_for uses for venue accounts, with a short timeout.
    from execution.venues import VenueNotConfigured, venue_broker

    label = f"{account.name} ({account.broker}, {account.exchange_id})"
    started = time.perf_counter()
    try:
        broker = venue_broker(account, timeout_ms=timeout_ms)   # loads the markets: a public call
    except VenueNotConfigured as exc:
        # Our own message, naming the setting to fix; it never quotes a key.
        return [Check(f"exchange: {account.name}", "exchange", False, f"{label} not configured: {exc}", now)]
    except Exception as exc:
        return [Check(f"exchange public: {account.name}", "exchange", False,
                      f"{label}: markets not loaded: {error_text(exc)}", now, _ms_since(started)),
                Check(f"exchange private: {account.name}", "exchange", False,
                      f"{label}: not tried, the public endpoint did not answer", now)]
    broker.read_attempts = 1    # a health check reports the first failure instead of retrying it away
    def public_probe():
        server_time = dt.datetime.fromtimestamp(broker.server_time_ms() / 1000, dt.UTC)
        return True, f"{label}: markets loaded, server time {server_time:%Y-%m-%d %H:%M:%S} UTC"
    public = _guarded(f"exchange public: {account.name}", "exchange", now, public_probe)
    private = _guarded(f"exchange private: {account.name}", "exchange", now,
                       lambda: (True, f"{label}: balance read ({broker.balance().wallet_usdt:.2f} USDT wallet)"))
    return [public, private]


# -- data freshness ----------------------------------------------------------------------------------

def check_data_freshness(*, now: dt.datetime) -> list[Check]:
    """Return, per active instrument and timeframe, whether its newest bar is within STALE_BARS of its clock.

    Exchange data is judged against `now` on the timeframes the candle job keeps fresh
    (CANDLE_UPDATE_TIMEFRAMES). Replayed and simulated data run on the engine's clock (the last
    decision or equity point of that data source), on the decision timeframe the engine feeds.
    """
    try:
        instruments = list(Instrument.objects.filter(is_active=True).order_by("pk"))
        config = TradingConfig.objects.first() or TradingConfig()
    except Exception as exc:
        return [Check("data freshness", "data", False, f"instruments not read: {error_text(exc)}", now)]
    if not instruments:
        return [Check("data freshness", "data", True, "no active instrument: no market data to judge", now)]
    checks = []
    for instrument in instruments:
        exchange = instrument.data_source == DataSource.EXCHANGE
        timeframes = settings.CANDLE_UPDATE_TIMEFRAMES if exchange else [config.decision_timeframe]
        for timeframe in timeframes:
            name = f"data {instrument.symbol}" + ("" if exchange else f" ({instrument.data_source})") + f" {timeframe}"
            checks.append(_guarded(name, "data", now, lambda i=instrument, t=timeframe: _freshness(i, t, now)))
    return checks


def _freshness(instrument: Instrument, timeframe: str, now: dt.datetime) -> tuple[bool, str]:
    if instrument.data_source == DataSource.EXCHANGE:
        clock, clock_label = now, "now"
    else:
        clock = _engine_clock(instrument)
        if clock is None:
            return True, f"{instrument.data_source}: the engine has not run a cycle yet, so nothing is late"
        clock_label = f"the {instrument.data_source} engine's clock ({clock:%Y-%m-%d %H:%M} UTC)"
    newest = (Candle.objects.filter(instrument=instrument, timeframe=timeframe)
              .order_by("-open_time").values_list("open_time", flat=True).first())
    if newest is None:
        return False, f"no {timeframe} candles stored"
    bar = dt.timedelta(milliseconds=timeframe_ms(timeframe))
    closed_at, limit = newest + bar, bar * STALE_BARS
    age = clock - closed_at
    text = f"newest bar closed {closed_at:%Y-%m-%d %H:%M} UTC, {_ago(age)} before {clock_label}"
    if age > limit:
        return False, f"stale: {text} (limit {STALE_BARS} bars = {_ago(limit)})"
    return True, text


def _engine_clock(instrument: Instrument) -> dt.datetime | None:
    """Return the replay or simulation engine's clock: its last decision or equity point, whichever is later."""
    from execution.selectors import account_name_for

    decided = Decision.objects.filter(instrument=instrument).aggregate(t=Max("as_of"))["t"]
    recorded = EquityPoint.objects.filter(account__name=account_name_for(instrument.data_source)).aggregate(
        t=Max("ts"))["t"]
    known = [t for t in (decided, recorded) if t is not None]
    return max(known) if known else None


# -- reconciliation ----------------------------------------------------------------------------------

def check_reconciliations(*, now: dt.datetime) -> list[Check]:
    """Return, per account, whether its last reconciliation was clean (or acknowledged) and trading is enabled."""
    try:
        accounts = list(Account.objects.order_by("name"))
    except Exception as exc:
        return [Check("reconciliation", "reconciliation", False, f"accounts not read: {error_text(exc)}", now)]
    return [_guarded(f"reconciliation: {account.name}", "reconciliation", now,
                     lambda a=account: _reconciliation(a)) for account in accounts]


def _reconciliation(account: Account) -> tuple[bool, str]:
    from execution.reconciliation.gate import trading_enabled

    if account.broker == Account.Broker.PAPER:
        return True, "paper account: nothing to reconcile"
    enabled, why = trading_enabled(account)
    run = account.reconciliations.exclude(finished_at=None).order_by("-started_at", "-pk").first()
    if run is None:
        return False, f"never reconciled; {why}"
    when = f"#{run.pk} ({run.trigger}, {run.finished_at:%Y-%m-%d %H:%M:%S} UTC)"
    if run.clean:
        state, ok = f"{when} clean", True
    elif run.error:
        state, ok = f"{when} failed: {run.error}", False
    else:
        state, ok = f"{when} found {len(run.differences)} difference(s)", False
    if not run.clean and run.acknowledged_by:
        state, ok = f"{state}, acknowledged by {run.acknowledged_by}", True
    if not enabled:
        return False, f"{state}; trading blocked: {why}"
    return ok, state


# -- reports -------------------------------------------------------------------------------------------

def readiness_checks(*, now: dt.datetime) -> list[Check]:
    """Return the checks /ready needs: database, channel layer and django-q2 workers."""
    return [check_database(now=now), check_channel_layer(now=now), check_workers(now=now)]


def report_of(checks: list[Check], now: dt.datetime) -> dict:
    """Return the report of `checks`: ok when every one is, with the failing ones named."""
    failing = [c.name for c in checks if not c.ok]
    return {"ok": not failing, "checked_at": now, "failing": len(failing), "failing_names": failing,
            "checks": [c.as_dict() for c in checks]}


def readiness_report(*, now: dt.datetime | None = None) -> dict:
    """Return the readiness report (database, channel layer, workers) as of `now`."""
    now = now or timezone.now()
    return report_of(readiness_checks(now=now), now)


def health_report(*, now: dt.datetime | None = None) -> dict:
    """Return the full self-test as of `now` (aware UTC; default the clock): one entry per check."""
    now = now or timezone.now()
    checks = [*readiness_checks(now=now), *check_exchanges(now=now), *check_data_freshness(now=now),
              *check_reconciliations(now=now)]
    return report_of(checks, now)


def summary_of(report: dict, *, now: dt.datetime | None = None) -> dict:
    """Return the few facts a badge shows: ok, how many fail and which, when, and a label."""
    checked_at = report["checked_at"]
    stale = now is not None and now - checked_at > SUMMARY_MAX_AGE
    if stale:
        label = f"stale: last check {_ago(now - checked_at)} ago"
    else:
        label = "ok" if report["ok"] else f"{report['failing']} failing"
    return {"ok": report["ok"] and not stale, "failing": report["failing"], "failing_names": report["failing_names"],
            "checked_at": checked_at, "stale": stale, "label": label}


def health_summary(*, now: dt.datetime | None = None) -> dict:
    """Return the summary of the last stored report (the health task's), or say there is none yet."""
    now = now or timezone.now()
    run = HealthCheckRun.objects.order_by("-checked_at", "-pk").first()
    if run is None:
        return {"ok": None, "failing": 0, "failing_names": [], "checked_at": None, "stale": True,
                "label": "no health check yet"}
    report = {"ok": run.ok, "checked_at": run.checked_at, "failing": run.failing,
              "failing_names": [c.get("name") for c in run.checks if not c.get("ok")]}
    return summary_of(report, now=now)


def health_record(report: dict) -> HealthCheckRun:
    """Store `report`, drop runs older than KEEP_RUNS and publish it as a "health" event after commit."""
    run = HealthCheckRun.objects.create(checked_at=report["checked_at"], ok=report["ok"],
                                        failing=report["failing"], checks=report["checks"])
    HealthCheckRun.objects.filter(checked_at__lt=report["checked_at"] - KEEP_RUNS).delete()
    broadcast_on_commit("health", {**report, "summary": summary_of(report)})
    return run
