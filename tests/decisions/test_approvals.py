"""HYBRID approvals on real state: stored Binance candles, the paper account and the risk gates re-run."""
from datetime import datetime, time, timedelta, timezone
from decimal import ROUND_CEILING
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from decisions.approvals import ApprovalRefused, decision_approve, decision_reject, decision_snooze, decisions_expire
from decisions.audit_services import audit_verify
from decisions.models import AuditRecord, Decision, Mode
from decisions.overrides import gate_override_create, gate_override_revoke
from decisions.selectors import trading_config_get
from execution.models import Order, Position
from execution.services import account_ensure
from market.ingest import candles_upsert
from market.services import instrument_ensure

FILE = "binance_usdm_BTCUSDT_15m_2025-07-04_2025-12-31.csv.gz"
BARS = 20           # 2025-07-04 11:45 .. 16:45 UTC: the last bar closes at 18:45 in Warsaw, inside 07:00-23:00
BAR = timedelta(minutes=15)
TTL = timedelta(hours=4)
QUANTITY = D("0.015")
ZONE_HALF_WIDTH = D("50")
WARSAW = ZoneInfo("Europe/Warsaw")

pytestmark = pytest.mark.django_db


@pytest.fixture
def btc_15m(market_data_dir):
    """Store BARS real USD-M BTCUSDT 15m candles; return (instrument, last close, its close time)."""
    frame = pd.read_csv(market_data_dir / FILE, dtype=str, nrows=BARS)
    frame["open_time_ms"] = frame["open_time_ms"].astype("int64")
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
    candles_upsert(instrument_id=instrument.pk, timeframe="15m", frame=frame)
    closed_at = datetime.fromtimestamp(int(frame["open_time_ms"].iloc[-1]) / 1000, tz=timezone.utc) + BAR
    return instrument, D(frame["close"].iloc[-1]), closed_at


@pytest.fixture
def next_bar(market_data_dir) -> pd.DataFrame:
    """Return the real bar after the stored ones: it opens at the decision's as_of."""
    frame = pd.read_csv(market_data_dir / FILE, dtype=str, nrows=BARS + 1).iloc[[-1]]
    frame["open_time_ms"] = frame["open_time_ms"].astype("int64")
    return frame


@pytest.fixture
def as_of(btc_15m) -> datetime:
    return btc_15m[2]


@pytest.fixture
def now(as_of) -> datetime:
    """Two minutes after the last close: no newer bar has closed, so the price is that close."""
    return as_of + timedelta(minutes=2)


@pytest.fixture
def last_close(btc_15m) -> D:
    return btc_15m[1]


@pytest.fixture
def config(now):
    config = trading_config_get()
    config.mode = Mode.HYBRID
    config.trading_start, config.trading_end = time(7, 0), time(23, 0)
    config.save()
    assert time(7, 0) <= now.astimezone(WARSAW).time() < time(23, 0)
    return config


@pytest.fixture
def account():
    return account_ensure(name="paper")


def pending(instrument, as_of: datetime, close: D, **overrides) -> Decision:
    """Create a pending LONG decision around `close`: stop 300 below, ladder 300/600/900 above."""
    base = dict(instrument=instrument, timeframe="15m", as_of=as_of, action="LONG", mode=Mode.HYBRID,
                outcome="pending", approval="pending", entry_price=close, stop_price=close - 300,
                target_price=close + 600, quantity=QUANTITY,
                take_profits=[{"price": str(close + 300), "share": "0.4"}, {"price": str(close + 600), "share": "0.4"},
                              {"price": str(close + 900), "share": "0.2"}],
                entry_zone_low=close - ZONE_HALF_WIDTH, entry_zone_high=close + ZONE_HALF_WIDTH, confidence=0.7,
                expires_at=as_of + TTL, reason="trend up; waiting for approval (confidence 70% < 80%)")
    return Decision.objects.create(**(base | overrides))


@pytest.fixture
def decision(btc_15m, config, account) -> Decision:
    instrument, close, as_of = btc_15m
    return pending(instrument, as_of, close)


def approvals_of(decision: Decision) -> list[dict]:
    return [r.body for r in AuditRecord.objects.filter(kind=AuditRecord.Kind.APPROVAL,
                                                        subject=f"decision:{decision.pk}").order_by("seq")]


def assert_untouched(decision: Decision) -> None:
    decision.refresh_from_db()
    assert (decision.outcome, decision.approval, decision.approval_by) == ("pending", "pending", "")
    assert not Order.objects.exists()
    assert not Position.objects.filter(decision=decision).exists()


def closed_trade_today(account, instrument, now: datetime) -> Position:
    """Record a winning trade opened and closed earlier today (no fills: the cooldown stays quiet)."""
    return Position.objects.create(
        account=account, instrument=instrument, side="LONG", status="closed", quantity=0,
        initial_quantity=D("0.01"), entry_price=D("108000"), stop_price=D("107700"), target_price=D("108600"),
        opened_at=now - timedelta(hours=2), closed_at=now - timedelta(hours=1), exit_price=D("108600"),
        exit_reason="target", realized_pnl_usdt=D("5"))


# --- approve ------------------------------------------------------------------------------------

def test_decision_approve_in_zone_executes_and_opens_paper_position(btc_15m, config, account, now, last_close):
    instrument, close, as_of = btc_15m
    decision = pending(instrument, as_of, close, entry_price=close - 20)   # the price moved 20 up since

    result = decision_approve(decision_id=decision.pk, actor="alice", now=now)

    assert (result.outcome, result.approval, result.approval_by, result.approval_at) == (
        "executed", "approved", "alice", now)
    position = Position.objects.get(decision=decision)
    assert (position.account, position.status, position.side) == (account, "open", "LONG")
    assert position.quantity == position.initial_quantity == QUANTITY
    # Filled against the latest close, not the decision's entry: 1 bp slippage, rounded up to the 0.1 tick.
    slipped = last_close * (1 + D("0.0001"))
    assert position.entry_price == (slipped / D("0.1")).to_integral_value(rounding=ROUND_CEILING) * D("0.1")
    assert position.stop_price == decision.stop_price
    entry = Order.objects.get(decision=decision)
    assert (entry.leg, entry.side, entry.type, entry.status) == ("entry", "buy", "market", "filled")
    assert entry.filled_quantity == QUANTITY


def test_decision_approve_audits_the_approval_then_the_order(decision, now, last_close):
    decision_approve(decision_id=decision.pk, actor="alice", now=now)

    approval = AuditRecord.objects.get(kind=AuditRecord.Kind.APPROVAL, subject=f"decision:{decision.pk}")
    assert approval.actor == "alice"
    assert approval.body["action"] == "approved"
    assert (approval.body["outcome"], approval.body["approval"]) == ("executed", "approved")
    assert D(str(approval.body["price"])) == last_close
    orders = AuditRecord.objects.filter(kind=AuditRecord.Kind.ORDER, seq__gt=approval.seq)
    assert [r.body["action"] for r in orders] == ["created", "report", "position_opened"]
    assert audit_verify().ok


def test_decision_approve_on_mode_also_executes(decision, config, now):
    config.mode = Mode.ON
    config.save()

    result = decision_approve(decision_id=decision.pk, actor="alice", now=now)

    assert result.outcome == "executed"
    assert Position.objects.filter(decision=decision, status="open").count() == 1


def test_decision_approve_while_paused_is_refused_and_changes_nothing(decision, config, now):
    config.paused = True
    config.save()

    with pytest.raises(ApprovalRefused, match="the bot is paused: resume it before approving"):
        decision_approve(decision_id=decision.pk, actor="alice", now=now)

    assert_untouched(decision)
    assert approvals_of(decision) == []


@pytest.mark.parametrize("low_offset, high_offset", [
    (D("100"), D("200")),     # the price fell below the zone
    (D("-200"), D("-100")),   # the price rose above it
])
def test_decision_approve_outside_entry_zone_is_refused(btc_15m, config, account, now, low_offset, high_offset):
    instrument, close, as_of = btc_15m
    decision = pending(instrument, as_of, close, entry_zone_low=close + low_offset,
                       entry_zone_high=close + high_offset)

    with pytest.raises(ApprovalRefused, match=r"left the entry zone [\d.]+\.\.[\d.]+; not executed") as refused:
        decision_approve(decision_id=decision.pk, actor="alice", now=now)

    low, high = str(refused.value).split("entry zone ")[1].split(";")[0].split("..")
    assert (D(low), D(high)) == (close + low_offset, close + high_offset)
    assert D(str(refused.value).split()[1]) == close
    assert_untouched(decision)
    assert approvals_of(decision) == []


def test_decision_approve_prices_at_the_last_closed_bar_not_the_forming_one(btc_15m, config, account, next_bar):
    instrument, close, as_of = btc_15m
    later_close = D(next_bar["close"].iloc[0])
    assert later_close != close
    candles_upsert(instrument_id=instrument.pk, timeframe="15m", frame=next_bar)
    decision = pending(instrument, as_of, close, entry_zone_low=close, entry_zone_high=close)

    # Once the next bar has closed its close is the price, and it lies outside the one-price zone.
    with pytest.raises(ApprovalRefused, match="left the entry zone"):
        decision_approve(decision_id=decision.pk, actor="alice", now=as_of + BAR + timedelta(minutes=1))
    # While it is still forming, the price is the decision's bar close.
    result = decision_approve(decision_id=decision.pk, actor="alice", now=as_of + timedelta(minutes=14))

    assert result.outcome == "executed"


def test_decision_approve_after_expiry_is_refused_and_marks_it_expired(decision, now):
    later = decision.expires_at + timedelta(minutes=1)

    with pytest.raises(ApprovalRefused, match="expired at"):
        decision_approve(decision_id=decision.pk, actor="alice", now=later)

    decision.refresh_from_db()
    assert (decision.outcome, decision.approval) == ("expired", "expired")
    assert [(b["action"], b["outcome"]) for b in approvals_of(decision)] == [("expired", "expired")]
    assert not Position.objects.exists()


def test_decision_approve_exactly_at_expiry_is_refused(decision):
    with pytest.raises(ApprovalRefused, match="expired at"):
        decision_approve(decision_id=decision.pk, actor="alice", now=decision.expires_at)

    assert not Order.objects.exists()


def test_decision_approve_when_trades_per_day_blocks_is_refused(decision, config, account, now):
    config.max_trades_per_day = 1
    config.save()
    closed_trade_today(account, decision.instrument, now)

    with pytest.raises(ApprovalRefused, match="blocked by trades_per_day: .*1 entries today \\(limit 1\\)"):
        decision_approve(decision_id=decision.pk, actor="alice", now=now)

    decision.refresh_from_db()
    assert (decision.outcome, decision.approval) == ("pending", "pending")
    assert not Order.objects.exists()


def test_decision_approve_outside_trading_hours_is_refused(decision, config, now):
    local = now.astimezone(WARSAW)
    config.trading_start, config.trading_end = time(7, 0), time(local.hour, 0)  # closed an hour or less ago
    config.save()

    with pytest.raises(ApprovalRefused, match="blocked by trading_hours: .*outside trading hours"):
        decision_approve(decision_id=decision.pk, actor="alice", now=now)

    assert_untouched(decision)


def test_decision_approve_blocked_gate_with_active_override_executes(decision, config, account, now):
    config.max_trades_per_day = 1
    config.save()
    closed_trade_today(account, decision.instrument, now)
    with pytest.raises(ApprovalRefused, match="trades_per_day"):
        decision_approve(decision_id=decision.pk, actor="alice", now=now)
    gate_override_create(gate="trades_per_day", until=now + timedelta(hours=1), reason="one more, reviewed",
                         actor="bob", now=now)

    result = decision_approve(decision_id=decision.pk, actor="alice", now=now + timedelta(minutes=1))

    assert (result.outcome, result.approval, result.approval_by) == ("executed", "approved", "alice")
    assert Position.objects.filter(decision=decision, status="open").count() == 1
    assert audit_verify().ok


def test_decision_approve_revoked_override_blocks_again(decision, config, account, now):
    config.max_trades_per_day = 1
    config.save()
    closed_trade_today(account, decision.instrument, now)
    override = gate_override_create(gate="trades_per_day", until=now + timedelta(hours=1), reason="reviewed",
                                    actor="bob", now=now)
    gate_override_revoke(override=override, actor="bob", now=now + timedelta(minutes=1))

    with pytest.raises(ApprovalRefused, match="blocked by trades_per_day"):
        decision_approve(decision_id=decision.pk, actor="alice", now=now + timedelta(minutes=2))

    assert_untouched(decision)


def test_decision_approve_ladder_below_rr_min_is_refused(btc_15m, config, account, now):
    instrument, close, as_of = btc_15m
    decision = pending(instrument, as_of, close, take_profits=[{"price": str(close + 100), "share": "1"}])

    with pytest.raises(ApprovalRefused, match=r"blocked by rr_min: reward/risk 0.33 .* vs minimum 1.3"):
        decision_approve(decision_id=decision.pk, actor="alice", now=now)

    assert_untouched(decision)


def test_decision_approve_just_after_another_fill_is_refused_by_cooldown(btc_15m, config, account, now):
    instrument, close, as_of = btc_15m
    first = pending(instrument, as_of - BAR, close)
    second = pending(instrument, as_of, close)
    decision_approve(decision_id=first.pk, actor="alice", now=now)

    with pytest.raises(ApprovalRefused, match=r"blocked by cooldown: .*0\.0 min since the last trade"):
        decision_approve(decision_id=second.pk, actor="alice", now=now)

    second.refresh_from_db()
    assert second.outcome == "pending"
    assert Position.objects.filter(status="open").count() == 1


def test_decision_approve_in_safe_mode_is_refused(decision, config, now):
    config.mode = Mode.SAFE
    config.save()

    with pytest.raises(ApprovalRefused, match=r"^mode SAFE is in force: nothing is executed$"):
        decision_approve(decision_id=decision.pk, actor="alice", now=now)

    assert_untouched(decision)


def test_decision_approve_while_circuit_breaker_holds_is_refused(decision, config, now):
    config.safe_until = now + timedelta(hours=5)
    config.save()

    with pytest.raises(ApprovalRefused, match=r"mode SAFE is in force: nothing is executed \(circuit breaker\)"):
        decision_approve(decision_id=decision.pk, actor="alice", now=now)

    assert_untouched(decision)


def test_decision_approve_twice_second_is_refused_and_one_position_exists(decision, now):
    decision_approve(decision_id=decision.pk, actor="alice", now=now)

    with pytest.raises(ApprovalRefused, match=f"(?i)decision {decision.pk} is executed, not pending"):
        decision_approve(decision_id=decision.pk, actor="bob", now=now + timedelta(minutes=1))

    assert Position.objects.filter(decision=decision).count() == 1
    assert Order.objects.filter(decision=decision, leg="entry").count() == 1
    decision.refresh_from_db()
    assert decision.approval_by == "alice"
    assert [b["action"] for b in approvals_of(decision)] == ["approved"]


# --- reject -------------------------------------------------------------------------------------

def test_decision_reject_with_note_keeps_it_rejected_and_audited(decision, now):
    result = decision_reject(decision_id=decision.pk, actor="alice", now=now, note="  news at 20:00, skip  ")

    decision.refresh_from_db()
    assert (decision.outcome, decision.approval, decision.approval_by, decision.approval_at) == (
        "rejected", "rejected", "alice", now)
    assert decision.approval_note == result.approval_note == "news at 20:00, skip"
    record = AuditRecord.objects.get(kind=AuditRecord.Kind.APPROVAL, subject=f"decision:{decision.pk}")
    assert record.actor == "alice"
    assert (record.body["action"], record.body["outcome"], record.body["note"]) == (
        "rejected", "rejected", "news at 20:00, skip")
    assert not Order.objects.exists()
    assert audit_verify().ok


def test_decision_reject_then_approve_is_refused(decision, now):
    decision_reject(decision_id=decision.pk, actor="alice", now=now)

    with pytest.raises(ApprovalRefused, match="is rejected by an operator, not pending"):
        decision_approve(decision_id=decision.pk, actor="bob", now=now)

    assert not Position.objects.exists()


@pytest.mark.parametrize("act", [
    lambda pk, now: decision_reject(decision_id=pk, actor="alice", now=now, note="too late"),
    lambda pk, now: decision_snooze(decision_id=pk, actor="alice", now=now, minutes=10),
], ids=["reject", "snooze"])
def test_decision_reject_or_snooze_after_expiry_is_refused_and_marks_it_expired(decision, act):
    later = decision.expires_at + timedelta(seconds=1)

    with pytest.raises(ApprovalRefused, match="expired at"):
        act(decision.pk, later)

    decision.refresh_from_db()
    assert (decision.outcome, decision.approval, decision.approval_note, decision.snoozed_until) == (
        "expired", "expired", "", None)
    assert [b["action"] for b in approvals_of(decision)] == ["expired"]


# --- snooze -------------------------------------------------------------------------------------

def test_decision_snooze_default_minutes_sets_until_and_stays_pending(decision, config, now):
    decision_snooze(decision_id=decision.pk, actor="alice", now=now)

    decision.refresh_from_db()
    assert decision.snoozed_until == now + timedelta(minutes=config.snooze_minutes)
    assert (decision.outcome, decision.approval, decision.approval_by) == ("pending", "pending", "alice")
    [body] = approvals_of(decision)
    assert (body["action"], body["outcome"]) == ("snoozed", "pending")
    assert audit_verify().ok


def test_decision_snooze_given_minutes(decision, now):
    result = decision_snooze(decision_id=decision.pk, actor="alice", now=now, minutes=45)

    assert result.snoozed_until == now + timedelta(minutes=45)


def test_decision_snooze_past_expiry_is_capped_at_expiry(decision, now):
    result = decision_snooze(decision_id=decision.pk, actor="alice", now=now, minutes=600)

    decision.refresh_from_db()
    assert result.snoozed_until == decision.snoozed_until == decision.expires_at


def test_decision_snooze_negative_minutes_is_refused(decision, now):
    with pytest.raises(ApprovalRefused, match="snooze minutes must be positive, got -5"):
        decision_snooze(decision_id=decision.pk, actor="alice", now=now, minutes=-5)

    decision.refresh_from_db()
    assert decision.snoozed_until is None
    assert approvals_of(decision) == []


def test_decision_snooze_then_approve_still_executes(decision, now):
    decision_snooze(decision_id=decision.pk, actor="alice", now=now, minutes=5)

    result = decision_approve(decision_id=decision.pk, actor="alice", now=now + timedelta(minutes=1))

    assert result.outcome == "executed"


# --- expire -------------------------------------------------------------------------------------

def test_decisions_expire_marks_only_past_due_pending(btc_15m, config, account, now):
    instrument, close, as_of = btc_15m
    overdue = pending(instrument, as_of - 2 * BAR, close, expires_at=now - timedelta(minutes=1))
    due_now = pending(instrument, as_of - BAR, close, expires_at=now)
    fresh = pending(instrument, as_of, close, expires_at=now + timedelta(minutes=1))
    no_expiry = pending(instrument, as_of - 3 * BAR, close, expires_at=None)
    rejected = pending(instrument, as_of - 4 * BAR, close, outcome="rejected", approval="rejected",
                       expires_at=now - timedelta(hours=1))

    count = decisions_expire(now=now)

    assert count == 2
    outcomes = {d.pk: (d.outcome, d.approval) for d in Decision.objects.all()}
    assert outcomes == {overdue.pk: ("expired", "expired"), due_now.pk: ("expired", "expired"),
                        fresh.pk: ("pending", "pending"), no_expiry.pk: ("pending", "pending"),
                        rejected.pk: ("rejected", "rejected")}
    expired = AuditRecord.objects.filter(kind=AuditRecord.Kind.APPROVAL, body__action="expired")
    assert sorted(r.subject for r in expired) == sorted([f"decision:{overdue.pk}", f"decision:{due_now.pk}"])
    assert {r.actor for r in expired} == {"engine"}
    assert Decision.objects.get(pk=overdue.pk).approval_at == now


def test_decisions_expire_repeated_does_nothing(btc_15m, config, account, now):
    instrument, close, as_of = btc_15m
    pending(instrument, as_of, close, expires_at=now - timedelta(minutes=1))
    assert decisions_expire(now=now) == 1
    records = AuditRecord.objects.count()

    assert decisions_expire(now=now + timedelta(minutes=5)) == 0

    assert AuditRecord.objects.count() == records
    assert audit_verify().ok


def test_decisions_expire_then_approve_is_refused_as_expired(decision):
    later = decision.expires_at + timedelta(minutes=1)
    decisions_expire(now=later)

    with pytest.raises(ApprovalRefused, match="is expired before it was acted on, not pending"):
        decision_approve(decision_id=decision.pk, actor="alice", now=later)
