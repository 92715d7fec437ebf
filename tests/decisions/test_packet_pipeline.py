"""The decision packet through the whole cycle on real candles: edge, fusion, structure, routing, expiry."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pandas as pd
import pytest

from decisions.audit_services import audit_verify
from decisions.models import AuditRecord, Decision, Mode
from decisions.selectors import trading_config_get
from execution.engine import cycle_run
from execution.models import Position
from market.ingest import candles_upsert
from tests.market_fixtures import DAY_BARS, WARMUP_BARS, real_frame

FIVE_MINUTE_FILE = "binance_usdm_BTCUSDT_5m_2025-07-04_2025-12-31.csv.gz"


def _configure(**changes) -> None:
    config = trading_config_get()
    for name, value in changes.items():
        setattr(config, name, value)
    config.full_clean()
    config.save()


def _replay(frame: pd.DataFrame) -> datetime:
    now = None
    for open_ms in frame["open_time_ms"].iloc[WARMUP_BARS:]:
        now = datetime.fromtimestamp((int(open_ms) + 900_000) / 1000, tz=timezone.utc)
        cycle_run(now=now, decide=True)
    return now


def test_packet_default_edge_threshold_refuses_weak_entries_by_name(btc_15m):
    _, frame = btc_15m
    _configure(mode=Mode.ON)

    _replay(frame)

    refused = Decision.objects.filter(reason__contains="below threshold 0.62")
    assert refused.exists()
    for decision in refused:
        side = "long" if decision.reason.startswith("LONG") else "short"
        edge = decision.edge_long if side == "long" else decision.edge_short
        assert decision.action == "FLAT" and edge < 0.62
        assert f"edge_{side}" in decision.reason
        assert {p["name"] for p in decision.score_parts["edge"]["parts"]} >= {"fvg", "risk_reward", "obi", "flow"}
    assert not Position.objects.exists()


def test_packet_every_decision_carries_rationale_votes_and_expiry(btc_15m):
    _, frame = btc_15m
    _configure(mode=Mode.ON, edge_threshold=0.5)

    _replay(frame)

    decisions = list(Decision.objects.all())
    assert len(decisions) == DAY_BARS
    for decision in decisions:
        assert decision.rationale and decision.reason
        assert decision.score_parts["votes"][0]["strategy"] == "rules"
        assert decision.expires_at == decision.as_of + timedelta(hours=4)
    traded = [d for d in decisions if d.action != "FLAT"]
    assert traded
    for decision in traded:
        assert 0 <= decision.confidence <= 1 and decision.risk_level in ("low", "medium", "high")
        assert decision.entry_zone_low <= decision.entry_price <= decision.entry_zone_high
        # Fewer than 30 closed trades: the probability is the confidence itself, and says so.
        assert decision.success_probability == pytest.approx(decision.confidence)
        assert decision.probability_source.startswith("uncalibrated")
        assert any(line.startswith("fusion: ") for line in decision.rationale)


def test_packet_hybrid_holds_below_auto_approve_and_expires_after_four_hours(btc_15m):
    _, frame = btc_15m
    _configure(mode=Mode.HYBRID, edge_threshold=0.5)

    last = _replay(frame)

    routed = Decision.objects.exclude(outcome__in=["flat", "blocked", "skipped"])
    assert routed.exists()
    for decision in routed:
        if decision.confidence >= 0.8:
            assert (decision.outcome, decision.approval) in {("executed", "auto"), ("skipped", "auto")}
        elif decision.as_of + timedelta(hours=4) <= last:
            assert (decision.outcome, decision.approval) == ("expired", "expired")
        else:
            assert (decision.outcome, decision.approval) == ("pending", "pending")
    expired = Decision.objects.filter(outcome="expired")
    assert expired.exists()
    assert AuditRecord.objects.filter(kind="approval", body__action="expired").count() == expired.count()
    assert audit_verify().ok


def test_packet_auto_approves_at_the_confidence_level(btc_15m):
    _, frame = btc_15m
    _configure(mode=Mode.HYBRID, edge_threshold=0.5, auto_approve_confidence=0.0)

    _replay(frame)

    assert not Decision.objects.filter(outcome="pending").exists()
    auto = Decision.objects.filter(approval="auto")
    assert auto.exists()
    assert Position.objects.filter(decision__in=auto).exists()
    assert all("auto-approved" in d.reason or d.outcome == "skipped" for d in auto)


def test_packet_five_minute_structure_must_confirm_when_stored(btc_15m, market_data_dir):
    instrument, frame = btc_15m
    day_end = int(frame["open_time_ms"].iloc[-1]) + 900_000
    five = real_frame(market_data_dir, FIVE_MINUTE_FILE, 3 * (WARMUP_BARS + DAY_BARS))
    candles_upsert(instrument_id=instrument.pk, timeframe="5m", frame=five[five["open_time_ms"] < day_end])
    _configure(mode=Mode.ON, edge_threshold=0.5)

    _replay(frame)

    lines = [line for d in Decision.objects.all() for line in d.rationale if line.startswith("5m structure")]
    assert lines and not any("not checked" in line for line in lines)
    refused = Decision.objects.filter(reason__contains="not confirmed: 5m structure")
    assert refused.exists() and all(d.action == "FLAT" for d in refused)
    for decision in Decision.objects.exclude(action="FLAT"):
        assert "5m structure up confirms" in decision.rationale or "5m structure down confirms" in decision.rationale


def test_packet_five_minute_structure_missing_is_named_not_checked(btc_15m):
    _, frame = btc_15m
    _configure(mode=Mode.SAFE, edge_threshold=0.5)

    _replay(frame)

    aligned = Decision.objects.exclude(reason__startswith="no alignment")
    assert aligned.exists()
    for decision in aligned:
        assert "5m structure: not enough closed bars; not checked" in decision.rationale


def test_packet_margin_cap_limits_size_and_names_the_binding_cap(btc_15m):
    _, frame = btc_15m
    _configure(mode=Mode.ON, edge_threshold=0.5, risk_per_trade_fraction=D("0.05"), max_margin_fraction=D("0.05"),
               max_leverage=D("3"))

    _replay(frame)

    sized = Decision.objects.exclude(quantity=None)
    assert sized.exists()
    for decision in sized:
        # Margin = notional / leverage stays within 5 % of equity (10 000 USDT paper start).
        assert decision.quantity * decision.entry_price / D(3) <= D("500") * D("1.05")
        assert decision.score_parts["sizing"]["binding"] == "margin"
