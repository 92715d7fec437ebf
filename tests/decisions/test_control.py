"""Operator controls: mode, pause, resume, stop and the kill switch, on real rows, the paper venue and the emulator."""
import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.test import override_settings

from dashboard.events import LIVE_GROUP
from decisions.audit_services import audit_verify
from decisions.control import (ControlRefused, bot_pause, bot_resume, bot_stop, config_version_save,
                               kill_switch_all, mode_set)
from decisions.models import AuditRecord, TradingConfig
from decisions.selectors import trading_config_get
from execution.brokers.ccxt import CcxtBroker
from execution.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET
from execution.models import Account, Order, Position
from execution.oms import OrderIntent, make_intent_id
from execution.orders import order_place
from execution.protective import protection_place
from market.services import instrument_ensure
from tests.emulator.fixtures import usdm_client
from tests.paper_fixtures import paper_book

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def live(db):
    """Return a function that drains the "status" events the dashboards received (in-memory layer)."""
    layer = get_channel_layer()
    name = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(LIVE_GROUP, name)

    async def drain():
        out = []
        while True:
            try:
                out.append(await asyncio.wait_for(layer.receive(name), timeout=0.05))
            except TimeoutError:
                return [m for m in out if m["event"] == "status"]

    yield async_to_sync(drain)
    async_to_sync(layer.group_discard)(LIVE_GROUP, name)


def _records(kind: str | None = None):
    rows = AuditRecord.objects.order_by("seq")
    return list(rows.filter(kind=kind) if kind else rows)


# -- mode -------------------------------------------------------------------------------------------

def test_mode_set_saves_a_new_version_audits_and_tells_the_dashboards(live, django_capture_on_commit_callbacks):
    version = trading_config_get().version

    with django_capture_on_commit_callbacks(execute=True):
        config = mode_set(mode="ON", actor="alice", now=NOW, reason="testnet looks clean")

    stored = TradingConfig.objects.get()
    assert (stored.mode, stored.version, config.version) == ("ON", version + 1, version + 1)
    [record] = _records("mode_change")
    assert (record.actor, record.subject) == ("alice", f"config:{stored.pk}")
    assert record.body == {"mode": {"from": "SAFE", "to": "ON"}, "reason": "testnet looks clean",
                           "config_version": version + 1}
    [event] = live()
    assert (event["data"]["mode"], event["data"]["by"], event["data"]["reason"]) == ("ON", "alice",
                                                                                    "testnet looks clean")
    assert audit_verify().ok


def test_mode_set_same_mode_changes_nothing_and_audits_nothing(live, django_capture_on_commit_callbacks):
    mode_set(mode="HYBRID", actor="alice", now=NOW, reason="approvals first")
    version = TradingConfig.objects.get().version
    count = AuditRecord.objects.count()
    live()

    with django_capture_on_commit_callbacks(execute=True):
        config = mode_set(mode="HYBRID", actor="bob", now=NOW, reason="again")

    assert (config.mode, config.version) == ("HYBRID", version)
    assert AuditRecord.objects.count() == count
    assert live() == []


@pytest.mark.django_db
@pytest.mark.parametrize(("mode", "reason", "message"), [
    ("TURBO", "x", "unknown mode 'TURBO'; modes are SAFE, HYBRID, ON"),
    ("on", "x", "unknown mode 'on'"),
    ("ON", "   ", "switching to ON needs a reason"),
    ("SAFE", "r" * 256, "the reason is 256 characters long; at most 255"),
])
def test_mode_set_bad_input_is_refused_and_nothing_is_written(mode, reason, message):
    before = trading_config_get().mode

    with pytest.raises(ControlRefused, match=message):
        mode_set(mode=mode, actor="alice", now=NOW, reason=reason)

    assert TradingConfig.objects.get().mode == before
    assert AuditRecord.objects.count() == 0


@pytest.mark.django_db
def test_mode_set_keeps_the_circuit_breaker_in_force():
    TradingConfig.objects.create(mode="HYBRID", safe_until=NOW + timedelta(hours=3))

    config = mode_set(mode="ON", actor="chief", now=NOW, reason="after review")

    assert config.mode == "ON" and config.effective_mode(NOW) == "SAFE"


@pytest.mark.django_db
def test_config_version_save_audits_limits_and_mode_apart():
    config = trading_config_get()
    initial = {"mode": config.mode, "max_leverage": config.max_leverage}
    config.mode, config.max_leverage = "HYBRID", D("2")

    config_version_save(config=config, changed=["mode", "max_leverage"], initial=initial, actor="chief", now=NOW,
                        reason="calmer")

    assert config.version == 2
    assert [r.kind for r in _records()] == ["mode_change", "limit_change"]
    assert _records("limit_change")[0].body["max_leverage"] == {"from": "3", "to": "2"}


# -- pause and resume -------------------------------------------------------------------------------

def test_bot_pause_then_resume_audits_each_once(live, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        paused = bot_pause(actor="olga", now=NOW, reason="news at 14:30")
        again = bot_pause(actor="olga", now=NOW)
    assert paused.paused and again.paused

    with django_capture_on_commit_callbacks(execute=True):
        resumed = bot_resume(actor="olga", now=NOW + timedelta(hours=1))

    assert not resumed.paused and not TradingConfig.objects.get().paused
    bodies = [r.body for r in _records("mode_change")]
    assert [b["paused"] for b in bodies] == [{"from": False, "to": True}, {"from": True, "to": False}]
    assert [b["reason"] for b in bodies] == ["news at 14:30", "resumed"]
    assert [e["data"]["paused"] for e in live()] == [True, False]


@pytest.mark.django_db
def test_bot_resume_leaves_the_mode_as_it_is():
    TradingConfig.objects.create(mode="SAFE", paused=True)

    config = bot_resume(actor="olga", now=NOW)

    assert (config.mode, config.paused) == ("SAFE", False)


# -- stop and the kill switch on the paper venue ------------------------------------------------------

@pytest.fixture
def paper(db):
    """Return (account, instrument, open position, resting entry) on the paper venue, priced near 60 000."""
    return paper_book(now=NOW, tag="control-test")


def test_bot_stop_pauses_cancels_working_entries_and_keeps_positions(paper, live, django_capture_on_commit_callbacks):
    account, _, position, entry = paper
    TradingConfig.objects.update(mode="ON")

    with django_capture_on_commit_callbacks(execute=True):
        report = bot_stop(actor="olga", now=NOW, reason="venue maintenance")

    entry.refresh_from_db()
    position.refresh_from_db()
    config = TradingConfig.objects.get()
    assert (config.mode, config.paused) == ("ON", True)
    assert entry.status == "canceled" and report.cancelled == [entry.client_order_id]
    assert position.status == "open" and report.errors == []
    stop_record = AuditRecord.objects.get(kind="order", subject="account:paper")
    assert (stop_record.actor, stop_record.body["action"], stop_record.body["cancelled"]) == (
        "olga", "stop", [entry.client_order_id])
    assert _records("mode_change")[0].body["reason"] == "venue maintenance"
    assert any(e["data"].get("stopped") for e in live())
    assert audit_verify().ok


def test_bot_stop_twice_finds_nothing_more_to_do(paper):
    bot_stop(actor="olga", now=NOW)
    count = AuditRecord.objects.count()

    report = bot_stop(actor="olga", now=NOW + timedelta(minutes=1))

    assert (report.cancelled, report.errors) == ([], [])
    assert AuditRecord.objects.count() == count


def test_bot_stop_needs_resume_to_trade_again(paper):
    bot_stop(actor="olga", now=NOW)
    assert TradingConfig.objects.get().paused

    bot_resume(actor="olga", now=NOW + timedelta(minutes=5), reason="maintenance over")

    assert not TradingConfig.objects.get().paused


def test_kill_switch_all_flattens_cancels_and_holds_safe_paused(paper, live, django_capture_on_commit_callbacks):
    account, _, position, entry = paper
    TradingConfig.objects.update(mode="ON")

    with django_capture_on_commit_callbacks(execute=True):
        [result] = kill_switch_all(actor="olga", now=NOW, reason="exchange incident")

    position.refresh_from_db()
    entry.refresh_from_db()
    config = TradingConfig.objects.get()
    assert (config.mode, config.paused) == ("SAFE", True)
    assert (position.status, entry.status) == ("closed", "canceled")
    assert (result.account, result.cancelled, result.flattened, result.errors) == (
        "paper", [entry.client_order_id], [position.pk], [])
    record = AuditRecord.objects.get(kind="order", subject="account:paper", actor="olga")
    assert record.body == {"action": "kill_switch", "reason": "exchange incident",
                           "cancelled": [entry.client_order_id], "flattened": [position.pk], "errors": []}
    assert _records("mode_change")[0].body["mode"] == {"from": "ON", "to": "SAFE"}
    assert live()[0]["data"]["mode"] == "SAFE"
    assert audit_verify().ok


@pytest.mark.django_db
def test_kill_switch_all_needs_a_reason():
    with pytest.raises(ControlRefused, match="the kill switch needs a reason"):
        kill_switch_all(actor="olga", now=NOW, reason="")

    assert AuditRecord.objects.count() == 0


@override_settings(LIVE_TRADING_CONFIRMED=False)
def test_kill_switch_all_a_broken_account_does_not_spare_the_others(paper):
    _, _, position, _ = paper
    Account.objects.create(name="live", broker="live", starting_balance_usdt=D("1"), balance_usdt=D("1"))

    results = kill_switch_all(actor="olga", now=NOW, reason="incident")

    position.refresh_from_db()
    assert [r.account for r in results] == ["paper", "live"]
    assert position.status == "closed" and results[0].errors == []
    assert "LIVE_TRADING_CONFIRMED=true" in results[1].errors[0]
    assert TradingConfig.objects.get().mode == "SAFE"
    assert AuditRecord.objects.get(subject="account:live", kind="order").body["errors"] == results[1].errors


@pytest.mark.django_db
def test_kill_switch_all_without_accounts_still_holds_safe():
    TradingConfig.objects.create(mode="ON")

    assert kill_switch_all(actor="olga", now=NOW, reason="drill") == []

    assert (TradingConfig.objects.get().mode, TradingConfig.objects.get().paused) == ("SAFE", True)


# -- stop on a venue (the local emulator) -------------------------------------------------------------

@pytest.mark.django_db
def test_bot_stop_on_a_venue_cancels_the_entry_and_leaves_the_verified_stop(trading_emulator):
    account = Account.objects.create(name="demo", broker="testnet", starting_balance_usdt=D("10000"),
                                     balance_usdt=D("10000"))
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
    client = usdm_client(trading_emulator, timeout_ms=2_000)
    client.load_markets()
    broker = CcxtBroker(client, sleep=lambda s: None)
    filled, _ = order_place(account=account, instrument=instrument, now=NOW, broker=broker,
                            intent=OrderIntent(make_intent_id("stop-a"), "entry", instrument.symbol, "buy", "market",
                                               D("0.010")), reference_price=D("60000"))
    position = Position.objects.create(
        account=account, instrument=instrument, side="LONG", open_key=instrument.pk, quantity=D("0.010"),
        initial_quantity=D("0.010"), entry_price=filled.average_price, stop_price=D("59000.0"),
        target_price=D("62000.0"), take_profits=[{"price": "62000.0", "share": "1", "filled": False}], opened_at=NOW)
    protection_place(position=position, broker=broker, now=NOW)
    resting, _ = order_place(account=account, instrument=instrument, now=NOW, broker=broker,
                             intent=OrderIntent(make_intent_id("stop-b"), "entry", instrument.symbol, "buy", "limit",
                                                D("0.010"), price=D("55000.0")), reference_price=D("60000"))
    assert resting.status == "accepted"

    with override_settings(EXCHANGE_API_URL=trading_emulator.url, EXCHANGE_API_KEY=DEFAULT_API_KEY,
                           EXCHANGE_API_SECRET=DEFAULT_API_SECRET):
        report = bot_stop(actor="olga", now=NOW + timedelta(seconds=30), reason="maintenance")

    resting.refresh_from_db()
    position.refresh_from_db()
    assert resting.status == "canceled" and report.cancelled == [resting.client_order_id]
    assert position.status == "open" and report.errors == []
    assert len(report.verified) == 1 and report.verified[0].startswith(f"position {position.pk}: stop ")
    venue_types = sorted(o.type for o in broker.open_orders("BTCUSDT"))
    assert "stop_market" in venue_types and "limit" not in venue_types
    assert Order.objects.filter(account=account, leg="sl", status="accepted").exists()
