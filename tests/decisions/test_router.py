from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from decisions import router
from decisions.risk.gates import GateResult
from decisions.router import Route, RouteInput, expires_at, in_entry_zone, is_expired, route

UTC = timezone.utc
ALLOW = (GateResult("daily_loss", "allow", "today +0.00%"), GateResult("cooldown", "allow", "no trade yet"))
SHRINK = GateResult("volatility", "shrink", "ATR percentile 95: size x0.5", 0.5)
COOLDOWN = GateResult("cooldown", "block", "3.0 min since the last trade")
SPREAD = GateResult("spread", "block", "spread 9.00 bps (cap 5.00)")


def make_input(**overrides) -> RouteInput:
    base = dict(action="LONG", reason="trend up", gates=ALLOW, paused=False, has_size=True, mode="HYBRID",
                configured_mode="HYBRID", confidence=0.7, auto_approve_confidence=0.80)
    return RouteInput(**(base | overrides))


@pytest.mark.parametrize("overrides, outcome, approval", [
    # FLAT comes first: a FLAT cycle is journaled as flat whatever the gates, pause or mode say.
    (dict(action="FLAT", gates=(COOLDOWN,)), "flat", ""),
    (dict(action="FLAT", paused=True, mode="ON", configured_mode="ON"), "flat", ""),
    # A block beats a pause, a missing size and every mode.
    (dict(gates=(COOLDOWN,), paused=True, has_size=False), "blocked", ""),
    (dict(gates=(COOLDOWN,), mode="ON", configured_mode="ON", confidence=1.0), "blocked", ""),
    # A pause beats a missing size and every mode.
    (dict(paused=True, has_size=False), "paused", ""),
    (dict(paused=True, mode="ON", configured_mode="ON"), "paused", ""),
    # No size: nothing to send.
    (dict(has_size=False, mode="ON", configured_mode="ON"), "skipped", ""),
    (dict(has_size=False, confidence=0.99), "skipped", ""),
    # ON executes without approval, whatever the confidence; a shrink does not block.
    (dict(mode="ON", configured_mode="ON", confidence=None), "executed", ""),
    (dict(mode="ON", configured_mode="ON", gates=ALLOW + (SHRINK,)), "executed", ""),
    # HYBRID: the auto-approve level is inclusive.
    (dict(confidence=0.80), "executed", "auto"),
    (dict(confidence=0.95), "executed", "auto"),
    (dict(confidence=0.7999), "pending", "pending"),
    (dict(confidence=0.0), "pending", "pending"),
    (dict(confidence=None), "pending", "pending"),
    (dict(confidence=0.65, auto_approve_confidence=0.6), "executed", "auto"),
    (dict(confidence=0.65, gates=ALLOW + (SHRINK,)), "pending", "pending"),
    # SAFE logs only, configured or forced by the breaker.
    (dict(mode="SAFE", configured_mode="SAFE", confidence=1.0), "logged", ""),
    (dict(mode="SAFE", configured_mode="HYBRID", confidence=1.0), "logged", ""),
    (dict(mode="SAFE", configured_mode="ON"), "logged", ""),
])
def test_route_table_outcome_and_approval(overrides, outcome, approval):
    result = route(make_input(**overrides))

    assert (result.outcome, result.approval) == (outcome, approval)


def test_route_flat_keeps_the_rule_reason():
    assert route(make_input(action="FLAT", reason="no structure")) == Route("flat", "", "no structure")


def test_route_blocked_names_the_first_blocking_gate():
    result = route(make_input(gates=ALLOW + (COOLDOWN, SPREAD)))

    assert result == Route("blocked", "", "blocked by cooldown: 3.0 min since the last trade")


def test_route_paused_says_the_bot_is_paused():
    assert route(make_input(paused=True)).reason == "trend up; bot paused"


def test_route_no_size_says_why_it_skipped():
    assert route(make_input(has_size=False)).reason == "trend up; size rounds to zero or below min notional"


def test_route_on_keeps_the_rule_reason():
    assert route(make_input(mode="ON", configured_mode="ON")).reason == "trend up"


def test_route_hybrid_at_threshold_reason_says_auto_approved():
    result = route(make_input(confidence=0.80))

    assert result.reason == "trend up; auto-approved: confidence 80% >= 80%"


def test_route_hybrid_none_confidence_waits_as_zero():
    result = route(make_input(confidence=None))

    assert result.reason == "trend up; waiting for approval (confidence 0.0% < 80.0%)"


def test_route_hybrid_just_below_threshold_reason_shows_confidence_below_threshold():
    # The reason is what the operator reads: "confidence 80% < 80%" contradicts itself.
    result = route(make_input(confidence=0.7999))

    assert result.outcome == "pending"
    assert "80% < 80%" not in result.reason


@pytest.mark.parametrize("configured_mode, breaker", [("SAFE", False), ("HYBRID", True), ("ON", True)])
def test_route_safe_names_the_circuit_breaker_only_when_it_forces_safe(configured_mode, breaker):
    result = route(make_input(mode="SAFE", configured_mode=configured_mode))

    assert result.reason == f"trend up; mode SAFE{' (circuit breaker)' if breaker else ''}, not executed"


gate_names = st.sampled_from(["daily_loss", "trades_per_day", "cooldown", "spread", "rr_min", "costs"])
allowing = st.builds(GateResult, gate_names, st.just("allow"), st.just("ok"), st.just(1.0), st.none())
shrinking = st.builds(GateResult, gate_names, st.just("shrink"), st.just("volatile"),
                      st.floats(min_value=0.01, max_value=1.0), st.none())
blocking = st.builds(GateResult, gate_names, st.just("block"), st.text(max_size=20), st.just(1.0),
                     st.one_of(st.none(), st.integers(min_value=0, max_value=2**41)))


@given(before=st.lists(st.one_of(allowing, shrinking), max_size=5), block=blocking,
       after=st.lists(st.one_of(allowing, shrinking, blocking), max_size=5),
       action=st.sampled_from(["LONG", "SHORT"]), mode=st.sampled_from(["SAFE", "HYBRID", "ON"]),
       configured_mode=st.sampled_from(["SAFE", "HYBRID", "ON"]), paused=st.booleans(), has_size=st.booleans(),
       confidence=st.one_of(st.none(), st.floats(min_value=0, max_value=1)),
       auto=st.floats(min_value=0, max_value=1))
def test_route_any_blocking_gate_never_executes_or_waits(before, block, after, action, mode, configured_mode,
                                                          paused, has_size, confidence, auto):
    inp = make_input(action=action, gates=tuple(before + [block] + after), paused=paused, has_size=has_size,
                     mode=mode, configured_mode=configured_mode, confidence=confidence, auto_approve_confidence=auto)

    result = route(inp)

    assert result.outcome == router.BLOCKED
    assert result.approval == router.NOT_NEEDED
    assert result.reason == f"blocked by {block.name}: {block.reason}"


@given(confidence=st.floats(min_value=0, max_value=1), auto=st.floats(min_value=0, max_value=1))
def test_route_hybrid_auto_approves_exactly_at_or_above_the_level(confidence, auto):
    result = route(make_input(confidence=confidence, auto_approve_confidence=auto))

    expected = ("executed", "auto") if confidence >= auto else ("pending", "pending")
    assert (result.outcome, result.approval) == expected


def test_expires_at_adds_the_ttl_minutes():
    as_of = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)

    assert expires_at(as_of, 240) == datetime(2026, 11, 25, 18, 0, tzinfo=UTC)


@pytest.mark.parametrize("offset_s, expired", [
    (-1, False),   # a second before the expiry: still actionable
    (0, True),     # at the expiry: expired
    (1, True),
])
def test_is_expired_at_or_past_the_expiry(offset_s, expired):
    expiry = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)

    assert is_expired(expiry, expiry + timedelta(seconds=offset_s)) is expired


def test_is_expired_without_expiry_never_expires():
    assert is_expired(None, datetime(2100, 1, 1, tzinfo=UTC)) is False


@pytest.mark.parametrize("price, low, high, inside", [
    # Both bounds are inclusive.
    (D("100"), D("100"), D("110"), True),
    (D("110"), D("100"), D("110"), True),
    (D("105"), D("100"), D("110"), True),
    (D("99.9"), D("100"), D("110"), False),
    (D("110.1"), D("100"), D("110"), False),
    # A missing bound means no zone: any price passes.
    (D("1"), None, D("110"), True),
    (D("1000"), D("100"), None, True),
    (D("1000"), None, None, True),
])
def test_in_entry_zone_table(price, low, high, inside):
    assert in_entry_zone(price, low, high) is inside
