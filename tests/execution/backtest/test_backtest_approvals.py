"""HYBRID approvals by policy and stored gate overrides, in the backtester.

Three real days of USD-M BTCUSDT 15m candles after the warm-up, edge bar at 0.5. In HYBRID mode some
decisions reach the auto-approve confidence (0.80); the others wait for an operator, whom the
approval policy stands in for.
"""
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest

from decisions.models import GateOverride, Mode, TradingConfig
from execution.backtest.engine import ApprovalPolicy, GateOverrideSpec, backtest_run
from execution.backtest.runs import overrides_load
from execution.backtest.world import Candles, InstrumentSpec
from market.services import KNOWN_FILTERS
from tests.market_fixtures import BTC_15M_FILE, WARMUP_BARS, real_frame

STEP_MS = 900_000


@pytest.fixture
def day3(market_data_dir):
    frame = real_frame(market_data_dir, BTC_15M_FILE, WARMUP_BARS + 3 * 96)
    start = datetime.fromtimestamp((int(frame["open_time_ms"].iloc[WARMUP_BARS]) + STEP_MS) / 1000, tz=timezone.utc)
    return Candles.from_frame("15m", frame), start


def _run(day3, mode=Mode.HYBRID, **kwargs):
    candles, start = day3
    filters = {k: D(v) for k, v in KNOWN_FILTERS["BTCUSDT"].items()}
    spec = InstrumentSpec.of(type("Row", (), dict(pk=1, symbol="BTC/USDT:USDT", exchange_symbol="BTCUSDT",
                                                  base="BTC", **filters)))
    config = TradingConfig(mode=mode, edge_threshold=0.5)
    return backtest_run(candles={"15m": candles}, instrument=spec, config=config, starting_equity=D("10000"),
                        start=start, **kwargs)


def _traded(result) -> list:
    return [d for d in result.decisions if d.action != "FLAT" and d.outcome != "blocked"]


def _entry_times(result) -> set:
    return {o.created_at for o in result.orders if o.leg == "entry"}


def test_hybrid_reject_all_keeps_only_the_auto_approved_decisions(day3):
    result = _run(day3)

    auto = [d for d in _traded(result) if d.approval == "auto"]
    rejected = [d for d in _traded(result) if d.outcome == "rejected"]
    assert auto and all(d.confidence >= 0.80 and d.outcome == "executed" for d in auto)
    assert rejected and all(d.approval == "rejected" and d.confidence < 0.80 for d in rejected)
    assert _entry_times(result) == {d.as_of for d in auto}


def test_hybrid_approve_all_executes_the_waiting_decisions_at_the_last_close(day3):
    result = _run(day3, approvals=ApprovalPolicy("approve_all"))

    approved = [d for d in _traded(result) if d.approval == "approved"]
    assert approved and all(d.outcome == "executed" and d.confidence < 0.80 for d in approved)
    assert _entry_times(result) == {d.as_of for d in _traded(result)}
    # The same trades as mode ON, where nothing waits.
    on = _run(day3, mode=Mode.ON)
    assert [(o.created_at, o.side, o.quantity) for o in result.orders] == \
        [(o.created_at, o.side, o.quantity) for o in on.orders]


def test_hybrid_min_confidence_approves_from_the_threshold_up(day3):
    # 0.6 splits these days' waiting decisions (confidences 0.50 to 0.69): some approved, some not.
    result = _run(day3, approvals=ApprovalPolicy("min_confidence", 0.6))

    answered = [d for d in _traded(result) if d.approval in ("approved", "rejected")]
    assert {d.approval for d in answered} == {"approved", "rejected"}
    assert all((d.approval == "approved") == (d.confidence >= 0.6) for d in answered)
    assert _entry_times(result) == {d.as_of for d in _traded(result) if d.approval in ("approved", "auto")}


@pytest.mark.parametrize(("rule", "confidence", "message"), [
    ("sometimes", None, "approval rule 'sometimes'"),
    ("min_confidence", None, "min_confidence is set with the min_confidence rule"),
    ("approve_all", 0.7, "min_confidence is set with the min_confidence rule"),
])
def test_approval_policy_bad_settings_are_refused(rule, confidence, message):
    with pytest.raises(ValueError, match=message):
        ApprovalPolicy(rule, confidence)


def _override(gate: str, start: datetime, hours: float, revoked_after: float | None = None) -> GateOverrideSpec:
    created = int(start.timestamp() * 1000) - 1
    return GateOverrideSpec(gate, created, created + int(hours * 3_600_000), "alice", "test window",
                            None if revoked_after is None else created + int(revoked_after * 3_600_000))


def test_gate_override_lets_the_blocked_decisions_through_while_it_holds(day3):
    _, start = day3
    plain = _run(day3, mode=Mode.ON)
    hours_blocked = [d for d in plain.decisions if d.reason.startswith("blocked by trading_hours")]

    overridden = _run(day3, mode=Mode.ON, overrides=[_override("trading_hours", start, 24 * 3)])
    revoked = _run(day3, mode=Mode.ON, overrides=[_override("trading_hours", start, 24 * 3, revoked_after=24)])

    assert hours_blocked
    assert not any(d.reason.startswith("blocked by trading_hours") for d in overridden.decisions)
    assert len(overridden.orders) > len(plain.orders)
    # Revoked after a day: it applied until then, and the gate blocks again afterwards.
    cut = start + timedelta(hours=24)
    late = [d for d in revoked.decisions if d.reason.startswith("blocked by trading_hours")]
    assert late and all(d.as_of >= cut for d in late)
    assert not any(d.reason.startswith("blocked by trading_hours") and d.as_of < cut for d in revoked.decisions)


def test_daily_loss_override_lifts_the_circuit_breaker_when_created(day3):
    candles, start = day3
    filters = {k: D(v) for k, v in KNOWN_FILTERS["BTCUSDT"].items()}
    spec = InstrumentSpec.of(type("Row", (), dict(pk=1, symbol="BTC/USDT:USDT", exchange_symbol="BTCUSDT",
                                                  base="BTC", **filters)))
    tight = TradingConfig(mode=Mode.ON, edge_threshold=0.5, daily_loss_limit_fraction=D("0.002"))
    run = dict(candles={"15m": candles}, instrument=spec, config=tight, starting_equity=D("10000"), start=start)
    tripped = backtest_run(**run)
    first_safe = next(d for d in tripped.decisions if d.mode == Mode.SAFE)
    created = int(first_safe.as_of.timestamp() * 1000) + 1
    override = GateOverrideSpec("daily_loss", created, created + 3_600_000, "alice", "lift")

    lifted = backtest_run(**run, overrides=[override])

    # The next close after the override: SAFE without it, the configured mode with it.
    next_close = first_safe.as_of + timedelta(minutes=15)
    assert [d.mode for d in tripped.decisions if d.as_of == next_close] == [Mode.SAFE]
    assert [d.mode for d in lifted.decisions if d.as_of == next_close] == [Mode.ON]


@pytest.mark.django_db
def test_overrides_load_reads_stored_overrides_that_held_in_the_range():
    t0 = datetime(2025, 7, 8, tzinfo=timezone.utc)
    GateOverride.objects.create(gate="cooldown", created_at=t0, until=t0 + timedelta(hours=6), reason="news",
                                created_by="alice", revoked_at=t0 + timedelta(hours=2), revoked_by="bob")
    GateOverride.objects.create(gate="trading_hours", created_at=t0 - timedelta(days=3),
                                until=t0 - timedelta(days=2), reason="old", created_by="alice")

    specs = overrides_load(since=t0 - timedelta(hours=1), until=t0 + timedelta(days=1))

    t0_ms = int(t0.timestamp() * 1000)
    assert specs == [GateOverrideSpec("cooldown", t0_ms, t0_ms + 6 * 3_600_000, "alice", "news", t0_ms + 2 * 3_600_000)]
    assert specs[0].active(specs[0].created_ms + 1) and not specs[0].active(specs[0].revoked_ms)
    assert specs[0].note == "overridden by alice until 2025-07-08 06:00 UTC (news)"
