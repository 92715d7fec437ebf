"""The self-test: each check passes on a working dependency and fails, named, on a real failure."""
import datetime as dt
from decimal import Decimal as D

import pytest
from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels_redis.core import RedisChannelLayer
from django.db import connections
from django.test import override_settings
from django.urls import reverse

from dashboard import health
from dashboard.models import HealthCheckRun, WorkerHeartbeat
from dashboard.tasks import health_run, heartbeat_beat
from execution.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET
from execution.models import Account, ReconciliationRun
from tests.dashboard.factories import (AccountFactory, CandleFactory, DecisionFactory, EquityPointFactory,
                                       InstrumentFactory, TradingConfigFactory)

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)


def _by_name(checks) -> dict:
    return {c.name: c for c in checks}


def _venue_account(name="demo", broker="testnet") -> Account:
    return Account.objects.create(name=name, broker=broker, starting_balance_usdt=D("1000"), balance_usdt=D("1000"))


# -- database --------------------------------------------------------------------------------------

def test_check_database_answers_select_one():
    check = health.check_database(now=NOW)

    assert check.ok, check.detail
    assert check.name == "database"
    assert "SELECT 1 answered" in check.detail
    assert check.latency_ms is not None and check.checked_at == NOW


def test_check_database_that_cannot_be_opened_fails_with_the_error(tmp_path):
    default = connections["default"]
    # A database that does not exist: SQLite cannot open a file in a missing directory,
    # MariaDB answers "Unknown database".
    name = str(tmp_path / "missing" / "db.sqlite3") if default.vendor == "sqlite" else "tradingbot_health_missing"
    broken = type(default)({**default.settings_dict, "NAME": name}, alias="health-broken")
    try:
        check = health.check_database(now=NOW, connection=broken)
    finally:
        broken.close()

    assert not check.ok
    assert "OperationalError" in check.detail


# -- channel layer ---------------------------------------------------------------------------------

def test_check_channel_layer_round_trip_on_the_configured_layer():
    check = health.check_channel_layer(now=NOW)

    assert check.ok, check.detail
    assert check.detail == "InMemoryChannelLayer: a message went out and came back"


def test_check_channel_layer_that_drops_messages_times_out():
    # Messages that expire on arrival are never delivered: the layer accepts sends and returns nothing.
    dropping = InMemoryChannelLayer(expiry=-1)

    check = health.check_channel_layer(now=NOW, layer=dropping, timeout_s=0.2)

    assert not check.ok
    assert "did not come back within 0.2 s" in check.detail


def test_check_channel_layer_redis_on_a_closed_port_fails_naming_the_connection(closed_port_url):
    layer = RedisChannelLayer(hosts=[closed_port_url.replace("http://", "redis://")])

    check = health.check_channel_layer(now=NOW, layer=layer, timeout_s=2)

    assert not check.ok
    assert check.detail.startswith("ConnectionError")
    assert closed_port_url.rsplit(":", 1)[1] in check.detail


# -- django-q2 workers ------------------------------------------------------------------------------

def test_check_workers_without_heartbeat_says_how_to_start_them():
    check = health.check_workers(now=NOW)

    assert not check.ok
    assert "no heartbeat yet" in check.detail and "setup_schedules" in check.detail


def test_check_workers_heartbeat_within_three_minutes_is_up():
    health.heartbeat_record(now=NOW - dt.timedelta(seconds=150))

    check = health.check_workers(now=NOW)

    assert check.ok, check.detail
    assert check.detail.startswith("last heartbeat 2 min 30 s ago")


def test_check_workers_heartbeat_older_than_three_minutes_is_down():
    health.heartbeat_record(now=NOW - dt.timedelta(minutes=10))

    check = health.check_workers(now=NOW)

    assert not check.ok
    assert "last heartbeat 10 min ago (2024-03-01 11:50:00 UTC" in check.detail


def test_heartbeat_task_run_by_django_q2_stamps_the_heartbeat():
    from django_q.tasks import async_task

    async_task("dashboard.tasks.heartbeat_beat")  # the test cluster runs tasks inline (sync)

    beat = WorkerHeartbeat.objects.get(name="django-q2")
    assert health.check_workers(now=beat.beat_at + dt.timedelta(seconds=30)).ok
    assert heartbeat_beat().startswith("heartbeat ")
    assert WorkerHeartbeat.objects.count() == 1


# -- exchanges ------------------------------------------------------------------------------------------

def test_check_exchanges_paper_account_has_no_exchange_to_reach():
    AccountFactory(name="paper")

    checks = _by_name(health.check_exchanges(now=NOW))

    assert checks["exchange: paper"].ok
    assert checks["exchange: paper"].detail == "paper broker: no exchange to reach"


@override_settings(EXCHANGE_API_KEY=DEFAULT_API_KEY, EXCHANGE_API_SECRET=DEFAULT_API_SECRET)
def test_check_exchanges_venue_on_the_emulator_reaches_public_and_private(trading_emulator):
    _venue_account()

    with override_settings(EXCHANGE_API_URL=trading_emulator.url):
        checks = _by_name(health.check_exchanges(now=NOW))

    assert checks["exchange public: demo"].ok, checks["exchange public: demo"].detail
    assert checks["exchange private: demo"].ok, checks["exchange private: demo"].detail
    assert "markets loaded, server time" in checks["exchange public: demo"].detail
    assert "USDT wallet" in checks["exchange private: demo"].detail


@override_settings(EXCHANGE_API_KEY=DEFAULT_API_KEY, EXCHANGE_API_SECRET=DEFAULT_API_SECRET)
def test_check_exchanges_unreachable_venue_fails_public_and_skips_private(closed_port_url):
    _venue_account()

    with override_settings(EXCHANGE_API_URL=closed_port_url):
        checks = _by_name(health.check_exchanges(now=NOW, timeout_ms=1_000))

    public, private = checks["exchange public: demo"], checks["exchange private: demo"]
    assert not public.ok and not private.ok
    assert "markets not loaded" in public.detail and "NetworkError" in public.detail
    assert private.detail.endswith("not tried, the public endpoint did not answer")


@override_settings(EXCHANGE_API_KEY=DEFAULT_API_KEY, EXCHANGE_API_SECRET="not-the-secret-the-venue-knows")
def test_check_exchanges_wrong_secret_fails_private_only_and_never_shows_keys(trading_emulator):
    _venue_account()

    with override_settings(EXCHANGE_API_URL=trading_emulator.url):
        checks = _by_name(health.check_exchanges(now=NOW))

    public, private = checks["exchange public: demo"], checks["exchange private: demo"]
    assert public.ok, public.detail
    assert not private.ok
    assert "-1022" in private.detail
    for detail in (public.detail, private.detail):
        assert DEFAULT_API_KEY not in detail
        assert "not-the-secret-the-venue-knows" not in detail
        assert "signature=" not in detail.lower() or "[redacted]" in detail


@override_settings(EXCHANGE_API_KEY="", EXCHANGE_API_SECRET="")
def test_check_exchanges_venue_without_keys_says_where_to_set_them():
    _venue_account()

    checks = _by_name(health.check_exchanges(now=NOW))

    assert not checks["exchange: demo"].ok
    assert "not configured" in checks["exchange: demo"].detail
    assert "has no API key and secret: set them in the admin" in checks["exchange: demo"].detail


# -- data freshness ------------------------------------------------------------------------------------

@override_settings(CANDLE_UPDATE_TIMEFRAMES=["1m", "5m", "1h"])
def test_check_data_freshness_exchange_data_is_judged_against_now():
    instrument = InstrumentFactory(data_source="exchange")
    # 1m: closed 2 minutes ago (fresh); 5m: closed 20 minutes ago (4 bars: stale); 1h: none stored.
    CandleFactory(instrument=instrument, timeframe="1m", open_time=NOW - dt.timedelta(minutes=3))
    CandleFactory(instrument=instrument, timeframe="5m", open_time=NOW - dt.timedelta(minutes=25))

    checks = _by_name(health.check_data_freshness(now=NOW))

    fresh, stale, missing = (checks[f"data BTC/USDT:USDT {tf}"] for tf in ("1m", "5m", "1h"))
    assert fresh.ok, fresh.detail
    assert fresh.detail == "newest bar closed 2024-03-01 11:58 UTC, 2 min before now"
    assert not stale.ok
    assert stale.detail == ("stale: newest bar closed 2024-03-01 11:40 UTC, 20 min before now "
                            "(limit 3 bars = 15 min)")
    assert not missing.ok and missing.detail == "no 1h candles stored"


def test_check_data_freshness_replay_is_judged_against_the_engine_clock():
    TradingConfigFactory(decision_timeframe="15m")
    instrument = InstrumentFactory(data_source="replay")
    replay_time = dt.datetime(2023, 6, 1, 10, 0, tzinfo=dt.UTC)
    CandleFactory(instrument=instrument, timeframe="15m", open_time=replay_time - dt.timedelta(minutes=15))
    DecisionFactory(instrument=instrument, as_of=replay_time)

    # A year of wall-clock time later, the replay's own clock still says its data is current.
    check = _by_name(health.check_data_freshness(now=NOW))["data BTC/USDT:USDT (replay) 15m"]

    assert check.ok, check.detail
    assert "before the replay engine's clock (2023-06-01 10:00 UTC)" in check.detail


def test_check_data_freshness_replay_engine_ahead_of_its_bars_is_stale():
    TradingConfigFactory(decision_timeframe="15m")
    instrument = InstrumentFactory(data_source="replay")
    replay_time = dt.datetime(2023, 6, 1, 10, 0, tzinfo=dt.UTC)
    CandleFactory(instrument=instrument, timeframe="15m", open_time=replay_time - dt.timedelta(hours=2))
    EquityPointFactory(account=AccountFactory(name="paper-replay"), ts=replay_time)

    check = _by_name(health.check_data_freshness(now=NOW))["data BTC/USDT:USDT (replay) 15m"]

    assert not check.ok
    assert check.detail.startswith("stale: newest bar closed 2023-06-01 08:15 UTC, 105 min before the replay")


def test_check_data_freshness_without_active_instruments_has_nothing_to_judge():
    InstrumentFactory(is_active=False)

    checks = health.check_data_freshness(now=NOW)

    assert [(c.name, c.ok) for c in checks] == [("data freshness", True)]


# -- reconciliation --------------------------------------------------------------------------------------

def _run(account, *, clean, trigger="startup", minutes_ago=5, **fields) -> ReconciliationRun:
    started = NOW - dt.timedelta(minutes=minutes_ago)
    return ReconciliationRun.objects.create(account=account, started_at=started, finished_at=started, trigger=trigger,
                                            clean=clean, **fields)


def test_check_reconciliations_per_account():
    AccountFactory(name="paper")
    clean, dirty, failed, never = (_venue_account(n) for n in ("clean", "dirty", "failed", "never"))
    _run(clean, clean=True)
    _run(dirty, clean=False, differences=[{"kind": "missing_stop"}, {"kind": "unknown_order"}])
    _run(failed, clean=False, error="venue not read: NetworkError: connection refused")

    checks = _by_name(health.check_reconciliations(now=NOW))

    assert checks["reconciliation: paper"].ok
    assert checks["reconciliation: clean"].ok, checks["reconciliation: clean"].detail
    assert not checks["reconciliation: dirty"].ok
    assert "found 2 difference(s)" in checks["reconciliation: dirty"].detail
    assert "trading blocked" in checks["reconciliation: dirty"].detail
    assert not checks["reconciliation: failed"].ok
    assert "failed: venue not read: NetworkError" in checks["reconciliation: failed"].detail
    assert not checks["reconciliation: never"].ok
    assert checks["reconciliation: never"].detail.startswith("never reconciled")


def test_check_reconciliations_dirty_run_acknowledged_by_an_operator_passes():
    account = _venue_account()
    _run(account, clean=False, differences=[{"kind": "missing_stop"}], acknowledged_by="ops", acknowledged_at=NOW)

    check = _by_name(health.check_reconciliations(now=NOW))["reconciliation: demo"]

    assert check.ok, check.detail
    assert "acknowledged by ops" in check.detail


# -- the report, its record and its summary ---------------------------------------------------------------

def test_health_report_has_every_group_and_names_the_failing_checks():
    AccountFactory(name="paper")

    report = health.health_report(now=NOW)

    assert {c["group"] for c in report["checks"]} == {"database", "channels", "workers", "exchange", "data",
                                                       "reconciliation"}
    assert set(report["checks"][0]) == {"name", "group", "ok", "detail", "checked_at", "latency_ms"}
    # No worker has beaten: that alone fails the report.
    assert report["ok"] is False
    assert report["failing_names"] == ["django-q2 workers"] and report["failing"] == 1


def test_health_run_task_stores_and_broadcasts_the_report(django_capture_on_commit_callbacks):
    AccountFactory(name="paper")
    heartbeat_beat()
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)("live", channel)

    with django_capture_on_commit_callbacks(execute=True):
        outcome = health_run()

    message = async_to_sync(layer.receive)(channel)
    run = HealthCheckRun.objects.get()
    assert outcome == "ok" and run.ok and run.failing == 0
    assert message["event"] == "health"
    assert message["data"]["summary"]["label"] == "ok"
    assert [c["name"] for c in message["data"]["checks"]] == [c["name"] for c in run.checks]


def test_health_summary_reads_the_last_stored_report_and_turns_stale():
    assert health.health_summary(now=NOW)["label"] == "no health check yet"
    health.health_record(health.report_of([
        health.Check("database", "database", True, "ok", NOW),
        health.Check("exchange public: demo", "exchange", False, "NetworkError", NOW),
    ], NOW))

    current = health.health_summary(now=NOW + dt.timedelta(minutes=1))
    stale = health.health_summary(now=NOW + dt.timedelta(minutes=10))

    assert current["ok"] is False and current["label"] == "1 failing"
    assert current["failing_names"] == ["exchange public: demo"]
    assert stale["stale"] and stale["label"] == "stale: last check 10 min ago"


def test_health_record_keeps_one_day_of_runs():
    old = health.report_of([health.Check("database", "database", True, "ok", NOW - dt.timedelta(days=2))],
                           NOW - dt.timedelta(days=2))
    health.health_record(old)

    health.health_record(health.report_of([health.Check("database", "database", True, "ok", NOW)], NOW))

    assert list(HealthCheckRun.objects.values_list("checked_at", flat=True)) == [NOW]


# -- the page ---------------------------------------------------------------------------------------------

def test_health_page_viewer_reads_the_checks(viewer_client):
    AccountFactory(name="paper")

    response = viewer_client.get(reverse("dashboard:health"))

    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-check="database"' in body and 'data-check="exchange: paper"' in body
    assert "paper broker: no exchange to reach" in body
    assert "Failing: django-q2 workers" in body
    assert "dashboard/health.js" in body


def test_health_page_never_shows_an_account_s_stored_keys(viewer_client, trading_emulator, settings):
    from execution.secrets import account_keys_set, secrets_forget

    wrong_secret = "stored-secret-the-venue-rejects-0123456789"
    account_keys_set(account=_venue_account(), api_key=DEFAULT_API_KEY, api_secret=wrong_secret, actor="admin",
                     now=NOW)
    settings.EXCHANGE_API_URL = trading_emulator.url

    body = viewer_client.get(reverse("dashboard:health")).content.decode()
    secrets_forget()

    assert 'data-check="exchange private: demo"' in body and "-1022" in body
    for secret in (DEFAULT_API_KEY, wrong_secret):
        assert secret[:16] not in body


def test_health_page_anonymous_is_sent_to_log_in(client):
    response = client.get(reverse("dashboard:health"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_health_data_returns_the_report_as_json(viewer_client):
    heartbeat_beat()

    data = viewer_client.get(reverse("dashboard:health-data")).json()

    assert data["ok"] is True
    assert [c["name"] for c in data["checks"]][:3] == ["database", "channel layer", "django-q2 workers"]
