"""The decision cycle's small reads: one query each, equal to a plain read, and an edit shows in the next cycle."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from decisions.approvals import decisions_expire
from decisions.engine.calibration import Calibrator
from decisions.models import Decision, GateOverride, TradingConfig
from decisions.overrides import gate_override_create, gate_override_revoke, gate_overrides_active
from decisions.selectors import trading_config_get
from decisions.services import _pending_and_existing, calibrator_load, decision_run
from execution.models import Position
from execution.services import account_ensure
from tests.dashboard.factories import DecisionFactory, PositionFactory

pytestmark = pytest.mark.django_db
NOW = datetime(2025, 7, 9, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


# --- gate overrides ----------------------------------------------------------------------------

def _overrides_plain(now):
    rows = GateOverride.objects.filter(revoked_at__isnull=True, created_at__lte=now, until__gt=now).order_by("until")
    return {o.gate: f"overridden by {o.created_by} until {o.until:%Y-%m-%d %H:%M} UTC ({o.reason})" for o in rows}


def test_gate_overrides_active_equals_a_plain_read_and_sees_the_next_edit(django_assert_num_queries):
    gate_override_create(gate="cooldown", until=NOW + 60 * MINUTE, reason="desk call", actor="alice", now=NOW)
    gate_override_create(gate="cooldown", until=NOW + 90 * MINUTE, reason="longer", actor="bob", now=NOW)
    spread = gate_override_create(gate="spread", until=NOW + 30 * MINUTE, reason="thin book", actor="alice",
                                  now=NOW)
    gate_override_create(gate="news_mute", until=NOW + 30 * MINUTE, reason="later", actor="carol", now=NOW + MINUTE)
    gate_overrides_active(now=NOW)             # the read's shape, compiled once per process

    with django_assert_num_queries(1):
        active = gate_overrides_active(now=NOW)
    plain = _overrides_plain(NOW)
    gate_override_revoke(override=spread, actor="alice", now=NOW + 2 * MINUTE)
    after_revoke = gate_overrides_active(now=NOW + 3 * MINUTE)

    assert active == plain
    assert set(active) == {"cooldown", "spread"} and "longer" in active["cooldown"]
    assert after_revoke == _overrides_plain(NOW + 3 * MINUTE)
    assert set(after_revoke) == {"cooldown", "news_mute"}
    assert gate_overrides_active(now=NOW + 2 * 60 * MINUTE) == {}


# --- calibrator --------------------------------------------------------------------------------

def test_calibrator_load_equals_a_fit_on_a_plain_read_and_is_one_query(django_assert_num_queries):
    account = account_ensure(name="paper")
    other = account_ensure(name="paper-replay")
    for k in range(70):
        decision = DecisionFactory(as_of=NOW - k * 15 * MINUTE, confidence=(k % 10) / 10)
        PositionFactory(account=other if k % 7 == 0 else account, instrument=decision.instrument, decision=decision,
                        status="closed", open_key=None, closed_at=NOW - k * MINUTE,
                        realized_pnl_usdt=D("5") if k % 3 else D("-4.5"))
    calibrator_load(account=account, limit=40)

    with django_assert_num_queries(1):
        loaded = calibrator_load(account=account, limit=40)

    rows = (Position.objects.filter(account=account, status="closed", decision__confidence__isnull=False)
            .order_by("-closed_at").values_list("decision__confidence", "realized_pnl_usdt")[:40])
    plain = Calibrator.fit([(confidence, pnl > 0) for confidence, pnl in rows])
    assert loaded.calibrated and loaded == plain
    assert calibrator_load(account=account, limit=500) == Calibrator.fit(
        [(p.decision.confidence, p.realized_pnl_usdt > 0)
         for p in Position.objects.filter(account=account, status="closed").order_by("-closed_at")])


# --- the configuration -------------------------------------------------------------------------

def _fields(config):
    return {f.attname: getattr(config, f.attname) for f in TradingConfig._meta.concrete_fields}


def test_trading_config_get_creates_the_row_once_then_reads_it_in_one_query(django_assert_num_queries):
    created = trading_config_get()

    with django_assert_num_queries(1):
        read = trading_config_get()

    assert TradingConfig.objects.count() == 1
    assert _fields(read) == _fields(TradingConfig.objects.get()) == _fields(created)
    assert not read._state.adding and read._state.db == "default"


def test_trading_config_get_sees_an_admin_edit_in_the_next_cycle():
    config = trading_config_get()
    config.mode, config.max_open_positions, config.safe_until = "ON", 7, NOW
    config.save()
    TradingConfig.objects.filter(pk=config.pk).update(daily_loss_limit_fraction=D("0.0123"))

    read = trading_config_get()

    assert (read.mode, read.max_open_positions, read.safe_until) == ("ON", 7, NOW)
    assert read.daily_loss_limit_fraction == D("0.0123")
    assert _fields(read) == _fields(TradingConfig.objects.get())
    read.paused = True
    read.save(update_fields=["paused"])                 # a read row saves like a queryset's
    assert TradingConfig.objects.get().paused


# --- pending expiry and the bar's own decision -------------------------------------------------

def test_pending_and_existing_is_one_query_and_finds_both_kinds(django_assert_num_queries):
    due = DecisionFactory(timeframe="15m", as_of=NOW - 60 * MINUTE, outcome="pending", approval="pending",
                          expires_at=NOW - MINUTE)
    DecisionFactory(instrument=due.instrument, timeframe="15m", as_of=NOW - 45 * MINUTE, outcome="pending",
                    approval="pending", expires_at=NOW + MINUTE)
    this_bar = DecisionFactory(instrument=due.instrument, timeframe="15m", as_of=NOW, outcome="executed")
    DecisionFactory(instrument=due.instrument, timeframe="1h", as_of=NOW, outcome="executed")
    _pending_and_existing(due.instrument, "15m", NOW - 15 * MINUTE, NOW)

    with django_assert_num_queries(1):
        found = _pending_and_existing(due.instrument, "15m", NOW, NOW)

    assert found == ([(due.pk, due.as_of)], this_bar.pk)
    assert _pending_and_existing(due.instrument, "15m", NOW + 15 * MINUTE, NOW - 2 * MINUTE) == ([], None)


def test_decisions_expire_with_nothing_due_read_by_the_caller_asks_nothing(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert decisions_expire(now=NOW, due=[]) == 0


def test_decision_run_expires_what_is_due_and_returns_the_bars_decision_again(btc_15m):
    instrument, frame = btc_15m
    close = datetime.fromtimestamp((int(frame["open_time_ms"].iloc[-1]) + 900_000) / 1000, tz=UTC)
    account = account_ensure(name="paper")
    overdue = DecisionFactory(instrument=instrument, timeframe="15m", as_of=close - 60 * MINUTE, outcome="pending",
                              approval="pending", expires_at=close - MINUTE)

    first = decision_run(instrument=instrument, now=close, account=account)
    overdue.refresh_from_db()
    again = decision_run(instrument=instrument, now=close + MINUTE, account=account)

    assert overdue.outcome == "expired"
    assert again.pk == first.pk
    assert Decision.objects.filter(instrument=instrument, as_of=close).count() == 1
