"""The reconciliation shell end to end: CcxtBroker and the real ccxt client against the local USD-M emulator."""
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal as D

import ccxt
import pytest
from django.core.management import call_command
from django.urls import reverse

from analytics.services import ms_to_datetime
from decisions.audit_services import audit_verify
from decisions.models import AuditRecord
from decisions.risk.sizing import round_to_tick
from execution import admin_reconciliation  # noqa: F401  (registers the admin until execution/admin.py imports it)
from execution.brokers.ccxt import CcxtBroker
from execution.locks import lease_acquire
from execution.models import Account, Fill, Order, Position, ReconciliationRun
from execution.oms import OrderIntent, make_intent_id
from execution.orders import order_create_pending, order_place
from execution.reconcile import Action, ActionKind, SymbolFills, VenueView
from execution.reconciliation import (reconcile_accounts, reconciliation_acknowledge, reconciliation_run,
                                      trading_enabled)
from execution.reconciliation.context import Context
from execution.reconciliation.orders import book_fill
from market.models import Instrument
from market.services import instrument_ensure
from tests.emulator.fixtures import usdm_client

BTC = "BTC/USDT:USDT"
PRICE = D("60000")
STOP = D("59000.0")


@dataclass
class Setup:
    emulator: object
    client: ccxt.Exchange
    broker: CcxtBroker
    account: Account
    instrument: Instrument
    now: datetime


@pytest.fixture
def venue(trading_emulator, db) -> Setup:
    """Return a testnet account trading BTCUSDT on the emulator; `now` is the venue's clock, which stamps its trades."""
    client = usdm_client(trading_emulator, timeout_ms=1_000)
    client.load_markets()
    broker = CcxtBroker(client, sleep=lambda s: None)
    account = Account.objects.create(name="demo", broker=Account.Broker.TESTNET, starting_balance_usdt=D("10000"),
                                     balance_usdt=D("10000"))
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
    now = ms_to_datetime(broker.server_time_ms()).replace(microsecond=0)
    return Setup(trading_emulator, client, broker, account, instrument, now)


def _place(s: Setup, leg, type_="market", side="buy", quantity=D("0.010"), trigger=None, reduce_only=False,
           tag="t") -> Order:
    intent = OrderIntent(make_intent_id(tag, leg), leg, s.instrument.symbol, side, type_, quantity,
                         trigger_price=trigger, reduce_only=reduce_only)
    order, _ = order_place(account=s.account, instrument=s.instrument, intent=intent, broker=s.broker,
                           reference_price=PRICE, now=s.now)
    return order


def _stop(s: Setup, quantity=D("0.010"), tag="t") -> Order:
    return _place(s, "sl", "stop_market", "sell", quantity, trigger=STOP, reduce_only=True, tag=tag)


def _long(s: Setup, *, stop: bool) -> Position:
    """Buy 0.010 BTC through the OMS, book the position (stop 59000) and, if asked, place its stop."""
    entry = _place(s, "entry")
    position = Position.objects.create(
        account=s.account, instrument=s.instrument, side="LONG", open_key=s.instrument.pk, quantity=D("0.010"),
        initial_quantity=D("0.010"), entry_price=entry.average_price, stop_price=STOP, target_price=D("63000"),
        opened_at=s.now)
    if stop:
        _stop(s)
    _books_take_wallet(s)
    return position


def _books_take_wallet(s: Setup) -> None:
    # Stands in for the wallet bookkeeping of the live fill flow, which reconciliation only compares.
    Account.objects.filter(pk=s.account.pk).update(balance_usdt=s.broker.balance().wallet_usdt)
    s.account.refresh_from_db()


def _manual(s: Setup, client_id, side, quantity, type_="market", price=None, reduce_only=False) -> None:
    params = {"clientOrderId": client_id} | ({"reduceOnly": True} if reduce_only else {})
    s.client.create_order(BTC, type_, side, float(quantity), price, params)


def _run(s: Setup, seconds=0, trigger="periodic") -> ReconciliationRun:
    now = s.now + timedelta(seconds=seconds)
    s.account.refresh_from_db()
    return reconciliation_run(account=s.account, broker=s.broker, now=now, trigger=trigger, clock=lambda: now)


def _kinds(run: ReconciliationRun) -> list[str]:
    return [a["kind"] for a in run.actions]


def _outcomes(run: ReconciliationRun) -> list[tuple[str, str]]:
    return [(a["kind"], a["outcome"]) for a in run.actions]


def _venue_stops(s: Setup) -> list[tuple[D, D]]:
    return sorted((o.quantity, o.trigger_price) for o in s.broker.open_orders("BTCUSDT") if o.type == "stop_market")


def test_reconciliation_run_own_entry_and_stop_is_clean(venue):
    _long(venue, stop=True)

    run = _run(venue, trigger="startup")

    assert run.clean and run.differences == [] and run.actions == [] and run.error == ""
    assert run.finished_at == run.started_at == venue.now
    enabled, reason = trading_enabled(venue.account)
    assert enabled and f"#{run.pk}" in reason and "clean" in reason


def test_reconciliation_run_missed_fill_is_booked_once_across_runs(venue):
    intent = OrderIntent(make_intent_id("lost-ack"), "entry", venue.instrument.symbol, "buy", "market", D("0.010"))
    order, _ = order_create_pending(account=venue.account, instrument=venue.instrument, intent=intent, decision=None,
                                    now=venue.now)
    _manual(venue, order.client_order_id, "buy", D("0.010"))   # it reached the venue; the books never heard back

    first = _run(venue)
    second = _run(venue, seconds=30)

    assert _kinds(first)[:2] == ["book_fill", "update_order_state"]
    assert "book_fill" not in _kinds(second)
    order.refresh_from_db()
    assert Fill.objects.filter(order=order).count() == 1
    assert (order.status, order.filled_quantity) == ("filled", D("0.010"))


def test_book_fill_replayed_by_a_racing_run_books_once(venue):
    intent = OrderIntent(make_intent_id("race"), "entry", venue.instrument.symbol, "buy", "market", D("0.010"))
    order, _ = order_create_pending(account=venue.account, instrument=venue.instrument, intent=intent, decision=None,
                                    now=venue.now)
    _manual(venue, order.client_order_id, "buy", D("0.010"))
    run = _run(venue)
    fill = venue.broker.trades("BTCUSDT", int(venue.now.timestamp() * 1000) - 60_000)[0]
    # A second worker that read the venue before the first booked the trade carries out the same action.
    ctx = Context(venue.account, venue.broker, venue.now, run, VenueView(fills=(SymbolFills("BTCUSDT", 0, (fill,)),)))

    outcome = book_fill(ctx, Action(ActionKind.BOOK_FILL, "BTCUSDT", order.client_order_id, fill=fill))

    assert outcome.status == "unchanged" and Fill.objects.filter(order=order).count() == 1


def test_reconciliation_run_manual_venue_order_is_adopted_as_external(venue):
    _manual(venue, "web_manual_1", "buy", D("0.010"), type_="limit", price=50000)

    run = _run(venue)
    again = _run(venue, seconds=30)

    assert _outcomes(run) == [("adopt_external_order", "applied")]
    adopted = Order.objects.get(client_order_id="web_manual_1")
    assert (adopted.external, adopted.leg, adopted.status, adopted.side, adopted.decision) == (
        True, "external", "accepted", "buy", None)
    assert again.clean


def test_reconciliation_run_manual_close_closes_the_position_and_cancels_our_stop(venue):
    position = _long(venue, stop=True)
    _manual(venue, "manual-close-1", "sell", D("0.010"), reduce_only=True)

    run = _run(venue)

    assert _kinds(run) == ["book_fill", "adopt_external_order", "adopt_position_change", "cancel_stray",
                           "balance_mismatch"]
    assert all(outcome in ("applied", "recorded") for _, outcome in _outcomes(run))
    position.refresh_from_db()
    assert (position.status, position.exit_reason, position.quantity) == ("closed", "manual", 0)
    assert position.exit_price is not None
    assert _venue_stops(venue) == [] and Order.objects.get(leg="sl").status == "canceled"
    closer = Order.objects.get(client_order_id="manual-close-1")
    assert closer.external and closer.fills.count() == 1
    # The books took the venue's wallet (fees and PnL of the close), so the next run is clean.
    venue.account.refresh_from_db()
    assert venue.account.balance_usdt == venue.broker.balance().wallet_usdt
    assert _run(venue).clean


def test_reconciliation_run_naked_position_gets_its_stop_and_next_run_is_clean(venue):
    _long(venue, stop=False)

    run = _run(venue)
    again = _run(venue, seconds=30)

    assert _outcomes(run) == [("restore_stop", "applied")]
    assert _venue_stops(venue) == [(D("0.010"), STOP)]
    assert again.clean


def test_reconciliation_run_naked_position_below_its_stop_is_flattened(venue):
    _long(venue, stop=False)
    venue.emulator.set_price("BTCUSDT", STOP - 100)

    run = _run(venue)

    assert _outcomes(run) == [("restore_stop", "applied")]
    assert "position flattened" in run.actions[0]["note"]
    assert venue.broker.positions() == []
    assert Order.objects.get(leg="exit").reduce_only and Order.objects.get(leg="sl").status == "rejected"


def test_reconciliation_run_repeated_restore_reuses_the_unresolved_stop(venue):
    _long(venue, stop=False)
    venue.emulator.timeout_before_apply("/fapi/v1/algoOrder", stall_s=2.0, method="POST", times=10)

    _run(venue)
    _run(venue, seconds=1)

    assert Order.objects.filter(leg="sl").count() == 1   # the second run found the first one's intent


def test_reconciliation_run_stop_of_wrong_size_after_partial_close_is_resized(venue):
    position = _long(venue, stop=True)
    old = Order.objects.get(leg="sl")
    _manual(venue, "manual-part-1", "sell", D("0.004"), reduce_only=True)

    run = _run(venue)
    _books_take_wallet(venue)
    again = _run(venue, seconds=30)

    assert [k for k in _kinds(run) if k != "balance_mismatch"] == ["book_fill", "adopt_external_order",
                                                                   "adopt_position_change", "resize_stop"]
    assert _venue_stops(venue) == [(D("0.006"), STOP)]
    old.refresh_from_db()
    position.refresh_from_db()
    assert (old.status, position.quantity, position.status) == ("canceled", D("0.006"), "open")
    assert again.clean


def test_reconciliation_run_target_cancelled_on_the_venue_is_restored_and_ours_marked(venue):
    _long(venue, stop=True)
    target = _place(venue, "tp1", "take_profit_market", "sell", D("0.004"), trigger=D("61000"), reduce_only=True)
    venue.broker.cancel(target.client_order_id, "BTCUSDT", conditional=True)   # by hand, behind the books' back

    run = _run(venue)
    again = _run(venue, seconds=30)

    assert _outcomes(run) == [("restore_target", "applied"), ("mark_lost", "applied")]
    target.refresh_from_db()
    targets = [(o.quantity, o.trigger_price) for o in venue.broker.open_orders("BTCUSDT")
               if o.type == "take_profit_market"]
    assert target.status == "canceled" and targets == [(D("0.004"), D("61000"))]
    assert again.clean


def test_reconciliation_run_our_stop_on_flat_symbol_is_cancelled(venue):
    _place(venue, "entry")
    stop = _stop(venue)
    _place(venue, "exit", side="sell", reduce_only=True)     # flat again; the stop was left behind

    run = _run(venue)

    assert ("cancel_stray", "applied") in _outcomes(run)
    stop.refresh_from_db()
    assert stop.status == "canceled" and _venue_stops(venue) == []


def test_reconciliation_run_venue_position_unknown_to_the_books_gets_an_emergency_stop(venue):
    _manual(venue, "web_buy_1", "buy", D("0.010"))

    run = _run(venue)

    position = Position.objects.get(status="open")
    expected_stop = round_to_tick(position.entry_price * D("0.98"), venue.instrument.tick_size)
    assert position.decision is None and position.stop_price == expected_stop
    assert [k for k in _kinds(run) if k != "balance_mismatch"] == ["book_fill", "adopt_external_order",
                                                                   "adopt_position_change", "restore_stop"]
    assert _venue_stops(venue) == [(D("0.010"), expected_stop)]


def test_reconciliation_run_venue_unreadable_stores_error_and_applies_nothing(venue):
    _long(venue, stop=False)
    orders_before = Order.objects.count()
    venue.emulator.fail("/fapi/v1/openOrders", status=503, times=3)

    run = _run(venue, trigger="startup")

    assert "venue not read" in run.error and not run.clean
    assert run.actions == [] and run.differences == []
    assert Order.objects.count() == orders_before and _venue_stops(venue) == []
    assert trading_enabled(venue.account)[0] is False


def test_reconciliation_run_busy_symbol_is_skipped_and_says_so(venue):
    _long(venue, stop=False)
    lease_acquire(account=venue.account, instrument=venue.instrument, holder="engine-elsewhere", now=venue.now)

    run = _run(venue)

    assert [(a["kind"], a["outcome"], "lease busy" in a["note"]) for a in run.actions] == [
        ("restore_stop", "skipped", True)]
    assert _venue_stops(venue) == []


def test_reconciliation_run_actions_are_audited_and_chain_verifies(venue):
    _long(venue, stop=False)

    run = _run(venue)

    records = AuditRecord.objects.filter(subject=f"reconcile:{run.pk}")
    assert records.count() == len(run.actions) + 1   # each action, then the run
    assert audit_verify().ok


def test_trading_enabled_unclean_startup_opens_after_acknowledgement(venue):
    _manual(venue, "web_manual_2", "buy", D("0.010"), type_="limit", price=50000)
    startup = _run(venue, trigger="startup")

    blocked = trading_enabled(venue.account)
    reconciliation_acknowledge(run=startup, actor="alice", now=venue.now + timedelta(seconds=5))

    assert blocked[0] is False and f"#{startup.pk}" in blocked[1]
    assert trading_enabled(venue.account)[0] is True
    startup.refresh_from_db()
    assert (startup.acknowledged_by, startup.acknowledged_at) == ("alice", venue.now + timedelta(seconds=5))
    assert AuditRecord.objects.filter(kind=AuditRecord.Kind.OVERRIDE, subject=f"reconcile:{startup.pk}").exists()


def test_trading_enabled_unclean_startup_opens_after_a_clean_run(venue):
    _manual(venue, "web_manual_3", "buy", D("0.010"), type_="limit", price=50000)
    _run(venue, trigger="startup")

    blocked = trading_enabled(venue.account)[0]
    _run(venue, seconds=30)

    assert blocked is False and trading_enabled(venue.account)[0] is True


# The gate from stored runs alone: (broker, runs as (trigger, clean, acknowledged_by) oldest first, enabled).
GATE_CASES = [
    ("paper", [], True),                                                   # paper: nothing to reconcile
    ("testnet", [], False),                                                # never reconciled since start
    ("testnet", [("periodic", True, "")], False),                          # only a start-up run opens
    ("testnet", [("startup", False, "")], False),
    ("testnet", [("startup", True, "")], True),
    ("testnet", [("startup", False, "bob")], True),
    ("testnet", [("startup", False, ""), ("periodic", False, "")], False),
    ("testnet", [("startup", False, ""), ("periodic", True, "")], True),
    ("testnet", [("startup", True, ""), ("startup", False, "")], False),   # a restart closes the gate again
]


@pytest.mark.django_db
@pytest.mark.parametrize(("broker", "runs", "enabled"), GATE_CASES)
def test_trading_enabled_follows_the_runs_since_the_last_startup(broker, runs, enabled):
    account = Account.objects.create(name="gate", broker=broker, starting_balance_usdt=D("1"), balance_usdt=D("1"))
    start = datetime(2026, 1, 1, tzinfo=ms_to_datetime(0).tzinfo)
    for i, (trigger, clean, acknowledged_by) in enumerate(runs):
        ReconciliationRun.objects.create(account=account, started_at=start + timedelta(seconds=30 * i),
                                         trigger=trigger, clean=clean, acknowledged_by=acknowledged_by)

    assert trading_enabled(account)[0] is enabled


@pytest.mark.django_db
@pytest.mark.parametrize(("clean", "acknowledged_by"), [(True, ""), (False, "bob")])
def test_reconciliation_acknowledge_clean_or_acknowledged_run_changes_nothing(clean, acknowledged_by):
    from decisions.models import AuditRecord

    account = Account.objects.create(name="gate", broker="testnet", starting_balance_usdt=D("1"), balance_usdt=D("1"))
    start = datetime(2026, 1, 1, tzinfo=ms_to_datetime(0).tzinfo)
    run = ReconciliationRun.objects.create(account=account, started_at=start, trigger="startup", clean=clean,
                                           acknowledged_by=acknowledged_by)

    run = reconciliation_acknowledge(run=run, actor="alice", now=start + timedelta(minutes=1), note="seen")

    assert (run.acknowledged_by, run.acknowledged_at) == (acknowledged_by, None)
    assert not AuditRecord.objects.filter(subject=f"reconcile:{run.pk}").exists()


def test_reconcile_accounts_runs_venue_accounts_and_records_a_missing_broker(venue):
    Account.objects.create(name="paper", broker=Account.Broker.PAPER, starting_balance_usdt=D("1"),
                           balance_usdt=D("1"))
    Account.objects.create(name="nokeys", broker=Account.Broker.LIVE, starting_balance_usdt=D("1"),
                           balance_usdt=D("1"))

    def factory(account):
        if account.name != "demo":
            raise RuntimeError("no API keys stored")
        return venue.broker

    runs = reconcile_accounts(now=venue.now, broker_factory=factory)

    assert [(r.account.name, r.clean, "no API keys" in r.error) for r in runs] == [("demo", True, False),
                                                                                  ("nokeys", False, True)]


def test_reconcile_command_runs_and_acknowledges(venue, monkeypatch, capsys):
    monkeypatch.setattr("execution.management.commands.reconcile.account_broker", lambda account: venue.broker)
    _manual(venue, "web_manual_4", "buy", D("0.010"), type_="limit", price=50000)

    call_command("reconcile", "--account", "demo", "--ack")

    out = capsys.readouterr().out
    run = ReconciliationRun.objects.get()
    assert (run.trigger, run.clean, run.acknowledged_by.startswith("cli:")) == ("manual", False, True)
    assert "external_order" in out and "acknowledged by cli:" in out


def test_reconciliation_admin_acknowledge_action_records_the_user(venue, admin_client):
    _manual(venue, "web_manual_5", "buy", D("0.010"), type_="limit", price=50000)
    run = _run(venue, trigger="startup")
    url = reverse("admin:execution_reconciliationrun_changelist")

    page = admin_client.get(reverse("admin:execution_reconciliationrun_change", args=[run.pk]))
    admin_client.post(url, {"action": "acknowledge", "_selected_action": [run.pk]})

    run.refresh_from_db()
    assert page.status_code == 200 and b"web_manual_5" in page.content
    assert run.acknowledged_by == "admin" and trading_enabled(venue.account)[0] is True
