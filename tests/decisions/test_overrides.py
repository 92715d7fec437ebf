from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest

from decisions.audit_services import audit_verify
from decisions.models import AuditRecord, GateOverride, Mode
from decisions.overrides import (OverrideRefused, gate_override_create, gate_override_revoke, gate_overrides_active,
                                 override_check)
from decisions.risk.limits import RiskLimits, RiskState
from decisions.risk.wall import GATE_ORDER, evaluate_gates
from decisions.selectors import trading_config_get

pytestmark = pytest.mark.django_db

# A Wednesday, 15:00 in Warsaw: inside the default trading hours.
NOW = datetime(2026, 11, 25, 14, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)


def create(gate="cooldown", until=NOW + HOUR, reason="spread checked by hand", actor="alice", now=NOW):
    return gate_override_create(gate=gate, until=until, reason=reason, actor=actor, now=now)


def override_records(action: str | None = None):
    rows = AuditRecord.objects.filter(kind=AuditRecord.Kind.OVERRIDE).order_by("seq")
    return rows.filter(body__action=action) if action else rows


def make_state(**overrides) -> RiskState:
    base = dict(equity_now=D("10000"), day_start_equity=D("10000"), week_start_equity=D("10000"),
                peak_equity=D("10000"))
    return RiskState(**(base | overrides))


# --- refused requests ---------------------------------------------------------------------------

@pytest.mark.parametrize("request_, message", [
    (dict(gate="nope"), r"unknown gate 'nope'; gates are daily_loss, weekly_drawdown, .*volatility"),
    (dict(gate="costs"), r"unknown gate 'costs'"),            # decided per trade, not a wall gate
    (dict(reason=""), r"an override needs a reason"),
    (dict(reason="   "), r"an override needs a reason"),
    (dict(until=NOW - HOUR), r"until 2026-11-25 13:00 UTC is not in the future"),
    (dict(until=NOW), r"until 2026-11-25 14:00 UTC is not in the future"),
    (dict(until=NOW + timedelta(hours=24) + SECOND), r"an override lasts at most 24 hours"),
    (dict(until=NOW + timedelta(days=7)), r"an override lasts at most 24 hours"),
])
def test_gate_override_create_bad_request_is_refused_and_writes_nothing(request_, message):
    with pytest.raises(OverrideRefused, match=message):
        create(**request_)

    assert not GateOverride.objects.exists()
    assert not AuditRecord.objects.exists()


@pytest.mark.parametrize("gate", GATE_ORDER)
def test_override_check_every_wall_gate_is_accepted(gate):
    assert override_check(gate=gate, until=NOW + HOUR, reason="reviewed", now=NOW) is None


def test_gate_override_create_exactly_24_hours_is_accepted():
    override = create(until=NOW + timedelta(hours=24))

    assert override.until == NOW + timedelta(hours=24)


# --- create -------------------------------------------------------------------------------------

def test_gate_override_create_stores_and_audits_with_the_actor():
    override = create(gate="spread", reason="  book thin at the open, checked  ")

    stored = GateOverride.objects.get()
    assert stored.pk == override.pk
    assert (stored.gate, stored.until, stored.created_by, stored.created_at, stored.revoked_at) == (
        "spread", NOW + HOUR, "alice", NOW, None)
    assert stored.reason == "book thin at the open, checked"
    [record] = override_records()
    assert (record.actor, record.subject, record.ts) == ("alice", "gate:spread", NOW)
    assert record.body["action"] == "created"
    assert (record.body["override"], record.body["gate"], record.body["reason"]) == (
        override.pk, "spread", "book thin at the open, checked")
    assert audit_verify().ok


@pytest.mark.parametrize("offset, active", [
    (-SECOND, False),         # before it was created
    (timedelta(0), True),     # from its creation ...
    (HOUR - SECOND, True),
    (HOUR, False),            # ... until `until`, exclusive
    (2 * HOUR, False),
])
def test_gate_overrides_active_only_between_created_at_and_until(offset, active):
    create(gate="cooldown", until=NOW + HOUR)

    result = gate_overrides_active(now=NOW + offset)

    assert ("cooldown" in result) is active
    assert GateOverride.objects.get().active(NOW + offset) is active


def test_gate_overrides_active_note_names_actor_until_and_reason():
    create(gate="cooldown", until=NOW + HOUR, reason="manual entry", actor="alice")

    assert gate_overrides_active(now=NOW) == {
        "cooldown": "overridden by alice until 2026-11-25 15:00 UTC (manual entry)"}


# --- revoke -------------------------------------------------------------------------------------

def test_gate_override_revoke_ends_it_and_audits():
    override = create(gate="cooldown")

    revoked = gate_override_revoke(override=override, actor="bob", now=NOW + timedelta(minutes=10))

    assert (revoked.revoked_at, revoked.revoked_by) == (NOW + timedelta(minutes=10), "bob")
    assert gate_overrides_active(now=NOW + timedelta(minutes=11)) == {}
    [record] = override_records("revoked")
    assert (record.actor, record.subject, record.body["override"]) == ("bob", "gate:cooldown", override.pk)
    assert audit_verify().ok


def test_gate_override_revoke_twice_writes_one_record():
    override = create(gate="cooldown")
    gate_override_revoke(override=override, actor="bob", now=NOW + timedelta(minutes=10))

    again = gate_override_revoke(override=override, actor="carol", now=NOW + timedelta(minutes=20))

    assert (again.revoked_at, again.revoked_by) == (NOW + timedelta(minutes=10), "bob")
    assert override_records("revoked").count() == 1


def test_gate_override_revoke_after_it_ended_writes_nothing():
    override = create(gate="cooldown", until=NOW + HOUR)

    result = gate_override_revoke(override=override, actor="bob", now=NOW + 2 * HOUR)

    assert (result.revoked_at, result.revoked_by) == (None, "")
    assert not override_records("revoked").exists()


def test_gate_override_revoke_leaves_other_overrides_active():
    cooldown = create(gate="cooldown")
    create(gate="spread")

    gate_override_revoke(override=cooldown, actor="bob", now=NOW + timedelta(minutes=1))

    assert set(gate_overrides_active(now=NOW + timedelta(minutes=2))) == {"spread"}


# --- daily loss and the circuit breaker -------------------------------------------------------

def test_gate_override_daily_loss_lifts_the_circuit_breaker_audited():
    config = trading_config_get()
    config.mode, config.safe_until = Mode.HYBRID, NOW + 10 * HOUR
    config.save()
    assert config.effective_mode(NOW) == Mode.SAFE

    create(gate="daily_loss", reason="loss was a data error", actor="alice")

    config.refresh_from_db()
    assert config.safe_until is None
    assert config.effective_mode(NOW) == Mode.HYBRID
    [change] = AuditRecord.objects.filter(kind=AuditRecord.Kind.MODE_CHANGE)
    assert (change.actor, change.subject) == ("alice", f"config:{config.pk}")
    assert (change.body["from"], change.body["to"]) == ("SAFE", "HYBRID")
    assert change.body["reason"] == "daily_loss overridden: loss was a data error"
    assert [r.kind for r in AuditRecord.objects.order_by("seq")] == ["override", "mode_change"]
    assert audit_verify().ok


@pytest.mark.parametrize("safe_until", [None, NOW - HOUR, NOW])
def test_gate_override_daily_loss_without_breaker_writes_no_mode_change(safe_until):
    config = trading_config_get()
    config.mode, config.safe_until = Mode.ON, safe_until
    config.save()

    create(gate="daily_loss")

    config.refresh_from_db()
    assert config.safe_until == safe_until
    assert not AuditRecord.objects.filter(kind=AuditRecord.Kind.MODE_CHANGE).exists()


def test_gate_override_other_gate_keeps_the_circuit_breaker():
    config = trading_config_get()
    config.mode, config.safe_until = Mode.HYBRID, NOW + 10 * HOUR
    config.save()

    create(gate="cooldown")

    config.refresh_from_db()
    assert config.safe_until == NOW + 10 * HOUR
    assert config.effective_mode(NOW) == Mode.SAFE


# --- the wall reads the overrides ---------------------------------------------------------------

def test_evaluate_gates_with_active_daily_loss_override_allows_with_note():
    create(gate="daily_loss", until=NOW + 2 * HOUR, reason="loss was a data error", actor="alice")
    state = make_state(equity_now=D("9700"))          # -3 % today: the daily loss limit (2 %) is hit
    before = {r.name: r for r in evaluate_gates(state, RiskLimits(), NOW, "LONG", "BTCUSDT")}
    assert before["daily_loss"].blocked

    after = {r.name: r for r in evaluate_gates(state, RiskLimits(), NOW, "LONG", "BTCUSDT",
                                               overridden=gate_overrides_active(now=NOW))}

    gate = after["daily_loss"]
    assert gate.verdict == "allow"
    assert gate.reason.startswith("overridden by alice until 2026-11-25 16:00 UTC (loss was a data error): ")
    assert gate.reason.endswith(before["daily_loss"].reason)
    # Only the overridden gate changes.
    assert {n: r for n, r in after.items() if n != "daily_loss"} == {
        n: r for n, r in before.items() if n != "daily_loss"}


def test_evaluate_gates_override_does_not_lift_another_gate():
    create(gate="cooldown", reason="reviewed")
    state = make_state(equity_now=D("9700"))

    results = evaluate_gates(state, RiskLimits(), NOW, "LONG", "BTCUSDT", overridden=gate_overrides_active(now=NOW))

    assert next(r for r in results if r.blocked).name == "daily_loss"


def test_evaluate_gates_revoked_override_blocks_again():
    override = create(gate="daily_loss", until=NOW + 2 * HOUR)
    gate_override_revoke(override=override, actor="bob", now=NOW + timedelta(minutes=5))
    later = NOW + timedelta(minutes=6)

    results = evaluate_gates(make_state(equity_now=D("9700")), RiskLimits(), later, "LONG", "BTCUSDT",
                             overridden=gate_overrides_active(now=later))

    assert next(r for r in results if r.name == "daily_loss").blocked


def test_audit_chain_valid_after_create_lift_and_revoke():
    config = trading_config_get()
    config.mode, config.safe_until = Mode.ON, NOW + 10 * HOUR
    config.save()
    daily = create(gate="daily_loss", actor="alice")
    spread = create(gate="spread", actor="bob", now=NOW + SECOND)
    gate_override_revoke(override=daily, actor="carol", now=NOW + 2 * SECOND)
    gate_override_revoke(override=spread, actor="carol", now=NOW + 3 * SECOND)
    gate_override_revoke(override=spread, actor="carol", now=NOW + 4 * SECOND)

    report = audit_verify()

    assert report.ok
    assert [r.kind for r in AuditRecord.objects.order_by("seq")] == [
        "override", "mode_change", "override", "override", "override"]
