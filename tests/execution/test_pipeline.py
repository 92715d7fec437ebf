"""The whole path on real candles: candles in DB -> snapshot -> decision -> risk -> paper fill -> equity."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pandas as pd

from analytics.models import Snapshot
from decisions.models import Decision, Mode
from decisions.selectors import trading_config_get
from execution.engine import cycle_run
from execution.models import Account, EquityPoint, Fill, Order, Position
from tests.market_fixtures import DAY_BARS, WARMUP_BARS



def _mode_on(**changes) -> None:
    """Switch to ON. These tests follow the execution path, so the edge bar is lowered: on this real
    day the default edge threshold (0.62) refuses every entry (edges peak at 0.618), which
    tests/decisions/test_packet_pipeline.py shows."""
    config = trading_config_get()
    config.mode = Mode.ON
    config.edge_threshold = 0.5
    for name, value in changes.items():
        setattr(config, name, value)
    config.save()


def _edge_threshold(value: float) -> None:
    config = trading_config_get()
    config.edge_threshold = value
    config.save()


def _account_down_3_percent_today(first_close: datetime) -> Account:
    """Return the paper account with yesterday's equity at 10 000 and its balance now at 9 700."""
    account = Account.objects.create(name="paper", starting_balance_usdt=D("10000"), balance_usdt=D("10000"))
    EquityPoint.objects.create(account=account, ts=first_close - timedelta(days=1), balance_usdt=D("10000"),
                               unrealized_pnl_usdt=0, equity_usdt=D("10000"))
    Account.objects.filter(pk=account.pk).update(balance_usdt=D("9700"))
    return account


def _close_times(frame: pd.DataFrame):
    for open_ms in frame["open_time_ms"].iloc[WARMUP_BARS:]:
        yield datetime.fromtimestamp((int(open_ms) + 900_000) / 1000, tz=timezone.utc)


def _replay_day(frame) -> None:
    for now in _close_times(frame):
        cycle_run(now=now, decide=True)


def test_pipeline_day_of_real_candles_trades_on_paper_and_books_equity(btc_15m):
    instrument, frame = btc_15m
    _mode_on()

    _replay_day(frame)

    account = Account.objects.get(name="paper")
    decisions = Decision.objects.filter(instrument=instrument)
    assert decisions.count() == DAY_BARS
    assert Snapshot.objects.count() == DAY_BARS
    assert decisions.filter(action__in=["LONG", "SHORT"]).exists()
    assert decisions.filter(outcome="executed").count() == Position.objects.count() > 0
    assert Fill.objects.count() == Order.objects.filter(status="filled").count()
    assert Order.objects.filter(leg__in=["tp1", "tp2", "tp3", "sl"]).exists()
    for position in Position.objects.filter(status="closed"):
        legs = sum(o.filled_quantity for o in position.decision.orders.exclude(leg="entry"))
        assert legs == position.initial_quantity  # every unit that was opened was closed once
    assert EquityPoint.objects.filter(account=account).count() == DAY_BARS
    # Accounting: the equity change is every position's realised PnL (partial exits and all fees
    # included) plus what is still open.
    realized = sum((p.realized_pnl_usdt for p in Position.objects.all()), D(0))
    last = EquityPoint.objects.filter(account=account).last()
    assert last.equity_usdt - account.starting_balance_usdt == realized + last.unrealized_pnl_usdt


def test_pipeline_safe_mode_logs_decisions_without_orders(btc_15m):
    _, frame = btc_15m
    _edge_threshold(0.5)

    _replay_day(frame)

    assert Decision.objects.exclude(outcome__in=["flat", "logged", "blocked"]).count() == 0
    assert Decision.objects.filter(outcome="logged").exists()
    assert Order.objects.count() == 0


def test_pipeline_repeated_cycle_for_same_bar_sends_nothing_twice(btc_15m):
    _, frame = btc_15m
    _mode_on()
    _replay_day(frame)
    orders, decisions = Order.objects.count(), Decision.objects.count()

    _replay_day(frame)

    assert (Order.objects.count(), Decision.objects.count()) == (orders, decisions)


def test_pipeline_daily_loss_limit_blocks_new_entries(btc_15m):
    instrument, frame = btc_15m
    _mode_on()
    first_close = next(_close_times(frame))
    _account_down_3_percent_today(first_close)

    first_day = first_close.date()
    for now in _close_times(frame):
        if now.date() == first_day:
            cycle_run(now=now, decide=True)

    assert Order.objects.count() == 0
    blocked = Decision.objects.filter(outcome="blocked")
    assert blocked.exists()
    assert "daily_loss" in blocked.first().reason


def test_pipeline_gap_in_window_blocks_decision_and_names_the_gap(btc_15m):
    instrument, frame = btc_15m
    hole = datetime.fromtimestamp(int(frame["open_time_ms"].iloc[250]) / 1000, tz=timezone.utc)
    instrument.candles.filter(open_time=hole).delete()
    now = next(_close_times(frame))

    cycle_run(now=now, decide=True)

    decision = Decision.objects.get()
    assert decision.outcome == "blocked"
    assert decision.reason.startswith("data gap: BTCUSDT 15m candles: 1 missing rows in the window, first gap")
    assert hole.strftime("%Y-%m-%d %H:%M") in decision.reason


def test_pipeline_gap_allowed_by_config_still_decides(btc_15m):
    instrument, frame = btc_15m
    hole = datetime.fromtimestamp(int(frame["open_time_ms"].iloc[250]) / 1000, tz=timezone.utc)
    instrument.candles.filter(open_time=hole).delete()
    config = trading_config_get()
    config.allow_data_gaps = True
    config.save()

    cycle_run(now=next(_close_times(frame)), decide=True)

    assert Decision.objects.get().outcome != "blocked"


def test_pipeline_risk_wall_keeps_trading_hours_and_daily_trade_cap(btc_15m):
    from zoneinfo import ZoneInfo

    _, frame = btc_15m
    _mode_on()

    _replay_day(frame)

    warsaw = ZoneInfo("Europe/Warsaw")
    for position in Position.objects.all():
        assert 7 <= position.opened_at.astimezone(warsaw).hour < 23
    per_day = {}
    for position in Position.objects.all():
        day = position.opened_at.astimezone(warsaw).date()
        per_day[day] = per_day.get(day, 0) + 1
    assert max(per_day.values()) <= 3
    night = [d for d in Decision.objects.exclude(action="FLAT") if not 7 <= d.as_of.astimezone(warsaw).hour < 23]
    assert all(d.outcome == "blocked" for d in night)
    every = Decision.objects.first()
    assert {g["name"] for g in every.gates} >= {"daily_loss", "trading_hours", "cooldown", "one_position"}


def test_pipeline_every_decision_gate_and_order_is_in_a_verified_audit_chain(btc_15m):
    from decisions.audit_services import audit_verify
    from decisions.models import AuditRecord

    _, frame = btc_15m
    _mode_on()

    _replay_day(frame)

    report = audit_verify()
    assert report.ok and report.count == AuditRecord.objects.count()
    kinds = {k: AuditRecord.objects.filter(kind=k).count() for k in ("decision", "gate", "order")}
    assert kinds["decision"] == kinds["gate"] == Decision.objects.count()
    # Each order: created + report, and one more: the position its entry opened, or the reduce or
    # close its exit booked.
    assert kinds["order"] == 3 * Order.objects.count()
    assert AuditRecord.objects.filter(kind="order", body__action="position_opened").count() == \
        Order.objects.filter(leg="entry").count()


def test_pipeline_daily_loss_trips_breaker_to_safe_until_next_local_day_and_audits(btc_15m):
    from zoneinfo import ZoneInfo

    from decisions.models import AuditRecord

    _, frame = btc_15m
    _mode_on()
    first_close = next(_close_times(frame))
    _account_down_3_percent_today(first_close)

    cycle_run(now=first_close, decide=True)

    config = trading_config_get()
    local_midnight = (first_close.astimezone(ZoneInfo("Europe/Warsaw")) + timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0)
    assert config.safe_until == local_midnight
    assert config.effective_mode(first_close) == "SAFE" and config.effective_mode(local_midnight) == "ON"
    assert Decision.objects.get().mode == "SAFE"
    change = AuditRecord.objects.get(kind="mode_change")
    assert change.actor == "engine" and "daily loss limit hit" in change.body["reason"]


def test_pipeline_decisions_and_orders_record_the_config_version(btc_15m):
    _, frame = btc_15m
    _mode_on(version=4)

    _replay_day(frame)

    assert set(Decision.objects.values_list("config_version", flat=True)) == {4}
    assert set(Order.objects.values_list("config_version", flat=True)) == {4}


def test_pipeline_flow_filters_refuse_longs_when_funding_is_too_high(btc_15m):
    from market.ingest import derivatives_upsert

    instrument, frame = btc_15m
    _mode_on()
    start = int(frame["open_time_ms"].iloc[0]) // 28_800_000 * 28_800_000
    marks = [start + k * 28_800_000 for k in range(int(len(frame) * 900_000 / 28_800_000) + 2)]
    derivatives_upsert(instrument_id=instrument.pk, kind="funding", period="8h",
                       frame=pd.DataFrame({"ts_ms": marks, "funding_rate": ["0.001"] * len(marks)}))

    _replay_day(frame)

    assert not Position.objects.filter(side="LONG").exists()
    refused = Decision.objects.filter(reason__startswith="LONG refused by the flow: funding 0.1000%/8h")
    assert refused.exists()
    assert all(d.action == "FLAT" for d in refused)
