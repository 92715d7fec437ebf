"""Drift report: a real day the paper engine traded, replayed through the backtester and diffed with its books.

The day (tests/market_fixtures.py, mode ON, edge bar 0.5) is traded once per module by the live
cycle (execution.engine.cycle_run); each test then edits the books inside its own transaction, so
the edits are rolled back. Known differences are written into the live records, consistently (the
fill, its order and the position's booked PnL), and each must land in its bucket to the cent.
"""
import asyncio
import logging
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D, localcontext

import pandas as pd
import pytest
import time_machine
from hypothesis import given, settings as hypothesis_settings, strategies as st
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.apps import apps
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db.models import Max, ProtectedError, RestrictedError

from decisions.audit_services import config_change_audit
from decisions.models import AuditHead, Decision, Mode
from execution.backtest.drift import BUCKETS as CORE_BUCKETS, PRECISION, Trade, leg_of, moment_split, trade_pnl, trade_split
from decisions.selectors import trading_config_get
from execution.drift import drift_report_build, drift_window
from execution.drift_replay import trading_config_at
from execution.engine import cycle_run
from execution.models import Account, DriftReport, FundingPayment, Position
from execution.tasks import drift_report_all
from market.ingest import candles_upsert
from market.models import Candle
from market.services import instrument_ensure
from tests.market_fixtures import BTC_15M_FILE, DAY_BARS, WARMUP_BARS

FIRST_CLOSE = datetime(2025, 7, 7, 15, tzinfo=timezone.utc)    # the fixture's first close after the warm-up
LAST_CLOSE = FIRST_CLOSE + timedelta(minutes=15 * (DAY_BARS - 1))
AUTO_PK = ("AutoField", "BigAutoField", "SmallAutoField")
BUCKETS = ("signal", "size", "fill_price", "latency", "exit_path", "fees", "funding")


def _tables():
    return [m for m in apps.get_models() if not m._meta.proxy and m._meta.managed
            and m._meta.pk.get_internal_type() in AUTO_PK]


def _rows_added_remove(before: dict) -> None:
    """Delete every row with a key above the one its table had before, retrying what a reference still holds."""
    pending = [m for m in before if m._base_manager.filter(pk__gt=before[m]).exists()]
    for _ in range(len(pending) + 1):
        for model in list(pending):
            try:
                model._base_manager.filter(pk__gt=before[model]).delete()
                pending.remove(model)
            except (ProtectedError, RestrictedError):
                continue
    assert not pending, f"rows left behind in {pending}"


@pytest.fixture(scope="module")
def paper_day(django_db_setup, django_db_blocker):
    """Trade the real day once with the live cycle (paper account); remove every row it made afterwards."""
    with django_db_blocker.unblock():
        before = {m: m._base_manager.aggregate(top=Max("pk"))["top"] or 0 for m in _tables()}
        head = AuditHead.objects.values_list("pk", "seq", "hash").first()
        frame = pd.read_csv(settings.MARKET_DATA_DIR / BTC_15M_FILE, dtype=str, nrows=WARMUP_BARS + DAY_BARS)
        frame["open_time_ms"] = frame["open_time_ms"].astype("int64")
        instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
        instrument.is_active = True
        instrument.save()
        candles_upsert(instrument_id=instrument.pk, timeframe="15m", frame=frame)
        config = trading_config_get()
        config.mode, config.edge_threshold = Mode.ON, 0.5
        config.save()
        for k in range(DAY_BARS):
            cycle_run(now=FIRST_CLOSE + timedelta(minutes=15 * k), decide=True)
        try:
            yield instrument
        finally:
            _rows_added_remove(before)
            if head is not None:
                AuditHead.objects.filter(pk=head[0]).update(seq=head[1], hash=head[2])


@pytest.fixture
def day(paper_day, db):
    return paper_day


def _account() -> Account:
    return Account.objects.get(name="paper")


def _build(**kwargs) -> DriftReport:
    return drift_report_build(account=_account(), start=FIRST_CLOSE, end=LAST_CLOSE, now=LAST_CLOSE, **kwargs)


def _position(as_of: str) -> Position:
    return Position.objects.select_related("decision").get(decision__as_of=datetime.fromisoformat(as_of))


def _row(report: DriftReport, as_of: str) -> dict:
    return next(r for r in report.rows if r["as_of"] == as_of)


def _cents(value) -> D:
    return D(value).quantize(D("0.01"))


def _split(report: DriftReport) -> dict[str, D]:
    return {name: _cents(value) for name, value in report.summary["split"].items()}


def _zero_split() -> dict[str, D]:
    return dict.fromkeys(BUCKETS, D("0.00"))


def _close(open_time: datetime) -> D:
    return Candle.objects.get(timeframe="15m", open_time=open_time).close


# Edits of the live books, each as the venue would have reported it (fill, order and position agree).

def _entry_refill(position: Position, price: D, at: datetime | None = None) -> None:
    """Rewrite the position's entry as filled at `price` (and at `at`); its booked PnL follows."""
    order = position.decision.orders.get(leg="entry")
    fill = order.fills.get()
    direction = 1 if position.side == "LONG" else -1
    position.realized_pnl_usdt -= direction * (price - fill.price) * position.initial_quantity
    position.entry_price = fill.price = order.average_price = price
    if at is not None:
        fill.ts = order.created_at = at
    fill.save()
    order.save()
    position.save()


def _extra_fee(position: Position, leg: str, fee: D) -> None:
    fill = position.decision.orders.get(leg=leg).fills.get()
    fill.fee_usdt += fee
    fill.save()
    position.fees_usdt += fee
    position.realized_pnl_usdt -= fee
    position.save()


def _funding(position: Position, at: datetime, amount: D) -> None:
    FundingPayment.objects.create(account=position.account, instrument=position.instrument, position=position,
                                  ts=at, rate=D("0.0001"), amount_usdt=amount, source=FundingPayment.Source.VENUE)
    position.funding_usdt += amount
    position.realized_pnl_usdt += amount
    position.save()


def _skip(position: Position) -> None:
    """Make the live engine not have taken this trade: no orders, fills or position; the decision skipped."""
    decision = position.decision
    for order in decision.orders.all():
        order.fills.all().delete()
        order.delete()
    position.delete()
    Decision.objects.filter(pk=decision.pk).update(outcome=Decision.Outcome.SKIPPED,
                                                   reason="not executed: venue refused the order")


# (a) The same inputs, the same trading: no gap, no slippage, no alert.

def test_drift_report_of_the_unchanged_day_has_no_gap_no_slippage_and_no_alert(day, caplog):
    with caplog.at_level(logging.WARNING, logger="execution.drift"):
        report = _build()

    summary = report.summary
    assert len(report.rows) == DAY_BARS
    assert summary["decisions"] == {"moments": DAY_BARS, "compared": DAY_BARS, "same": DAY_BARS, "different": 0,
                                    "live_only": 0, "backtest_only": 0}
    assert summary["trades"] == {"both": 4, "live only": 0, "backtest only": 0, "direction": 0}
    assert D(summary["live_pnl_usdt"]) == D(summary["backtest_pnl_usdt"]) == sum(
        (p.realized_pnl_usdt for p in Position.objects.all()), D(0))
    assert D(summary["gap_usdt"]) == D(summary["residual_usdt"]) == 0
    assert _split(report) == _zero_split()
    assert report.slippage_bps == 0 and summary["slippage"]["legs"] == 13    # 4 entries and 9 exit legs
    assert report.alert is False and report.slippage_limit_bps == D("5")
    assert summary["caveats"] == [] and summary["config_version"] == 1
    assert not [r for r in caplog.records if "drift report" in r.getMessage()]


# (b) Known differences, one per trade, each in its own bucket.

def test_drift_report_puts_each_injected_difference_in_its_bucket_to_the_cent(day):
    short_1, short_2 = _position("2025-07-07T15:00+00:00"), _position("2025-07-07T17:00+00:00")
    long_1, long_2 = _position("2025-07-08T10:00+00:00"), _position("2025-07-08T12:00+00:00")
    assert (long_1.side, long_1.entry_price, long_1.initial_quantity) == ("LONG", D("108416.6"), D("0.138"))
    assert (short_2.side, short_2.initial_quantity, long_2.realized_pnl_usdt) == ("SHORT", D("0.058"),
                                                                                  D("28.63272356"))
    # Latency: the second short's entry reached the market one bar late, at that bar's close move.
    moved = _close(datetime(2025, 7, 7, 17, tzinfo=timezone.utc)) - _close(datetime(2025, 7, 7, 16, 45,
                                                                                    tzinfo=timezone.utc))
    _entry_refill(short_2, short_2.entry_price + moved, at=datetime(2025, 7, 7, 17, 15, tzinfo=timezone.utc))
    # Slippage: the first long bought 10 bps worse: 108416.6 * 1.001 = 108525.0166, 108.4166 * 0.138 = 14.96 USDT.
    _entry_refill(long_1, D("108525.0166"))
    _extra_fee(short_1, "sl", D("1.2345"))
    _funding(long_1, datetime(2025, 7, 8, 11, tzinfo=timezone.utc), D("-3.21"))
    FundingPayment.objects.create(account=long_1.account, instrument=long_1.instrument, position=None,
                                  ts=datetime(2025, 7, 8, 8, tzinfo=timezone.utc), amount_usdt=D("0.50"),
                                  source=FundingPayment.Source.VENUE)
    _skip(long_2)

    report = _build()

    latency = moved * D("0.058")      # a short entered higher by `moved` gains it on every unit
    assert moved != 0
    assert _split(report) == {"signal": D("-28.63"), "size": D("0.00"), "fill_price": D("-14.96"),
                              "latency": _cents(latency), "exit_path": D("0.00"), "fees": D("-1.23"),
                              "funding": D("-2.71")}
    assert _cents(report.summary["gap_usdt"]) == _cents(latency - D("28.63272356") - D("14.9614908")
                                                        - D("1.2345") - D("3.21") + D("0.50"))
    assert D(report.summary["residual_usdt"]) == 0
    assert report.summary["trades"] == {"both": 3, "live only": 0, "backtest only": 1, "direction": 0}
    assert report.summary["decisions"]["different"] == 1
    skipped = _row(report, "2025-07-08T12:00:00Z")
    assert (skipped["trade"], skipped["live"]["outcome"], skipped["backtest"]["outcome"]) == (
        "backtest only", "skipped", "executed")
    slipped = _row(report, "2025-07-08T10:00:00Z")["legs"][0]
    assert (slipped["leg"], D(slipped["slippage_bps"]), D(slipped["latency_bps"])) == ("entry", 10, 0)
    late = _row(report, "2025-07-07T17:00:00Z")
    assert (late["sent_ms"], late["fill_ms"], D(late["legs"][0]["slippage_bps"])) == (900_000, 900_000, 0)
    # The skipped trade's legs are not compared: 10 bps over the 9 legs both still filled.
    assert report.slippage_bps == D("1.1111")


def test_drift_report_residual_shows_a_fee_the_position_never_booked(day):
    short_1 = _position("2025-07-07T15:00+00:00")
    fill = short_1.decision.orders.get(leg="sl").fills.get()
    fill.fee_usdt += D("2.50")
    fill.save()     # the venue's fill, but not the position's PnL

    report = _build()

    assert _split(report)["fees"] == D("-2.50")
    assert D(report.summary["gap_usdt"]) == 0
    assert D(report.summary["residual_usdt"]) == D("2.50")
    assert D(_row(report, "2025-07-07T15:00:00Z")["residual_usdt"]) == D("2.50")


# The slippage alert: a dashboard event and a WARNING line exactly when the average passes the limit.

@pytest.mark.parametrize(("limit", "alert"), [(D("0.7692"), False), (D("0.7691"), True)])
def test_drift_report_alerts_only_when_average_slippage_passes_the_limit(day, limit, alert):
    _entry_refill(_position("2025-07-08T10:00+00:00"), D("108525.0166"))    # 10 bps on one of 13 legs

    report = _build(slippage_limit_bps=limit)

    assert report.slippage_bps == D("0.7692")      # 10 / 13
    assert report.alert is alert


def _live_messages(work) -> list[dict]:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)("live", channel)

    async def drain():
        messages = []
        while True:
            try:
                messages.append(await asyncio.wait_for(layer.receive(channel), timeout=0.2))
            except asyncio.TimeoutError:
                return messages
    work()
    return async_to_sync(drain)()


def test_drift_report_alert_reaches_the_live_group_and_the_log(day, caplog, django_capture_on_commit_callbacks):
    _entry_refill(_position("2025-07-08T10:00+00:00"), D("108525.0166"))
    reports = []

    def build():
        with django_capture_on_commit_callbacks(execute=True), caplog.at_level(logging.WARNING):
            reports.append(_build(slippage_limit_bps=D("0.5")))
    messages = _live_messages(build)

    report = reports[0]
    alerts = [m for m in messages if m["event"] == "alert"]
    assert len(alerts) == 1 and alerts[0]["data"]["drift_report"] == report.pk
    assert alerts[0]["data"]["level"] == "warning" and alerts[0]["data"]["account"] == "paper"
    assert "average slippage 0.7692 bps passed the limit of 0.5 bps" in alerts[0]["data"]["message"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "execution.drift"]
    assert [r.getMessage() for r in warnings] == [alerts[0]["data"]["message"]]


def test_drift_report_without_slippage_sends_no_alert(day, django_capture_on_commit_callbacks):
    def build():
        with django_capture_on_commit_callbacks(execute=True):
            _build(slippage_limit_bps=D("0"))

    assert [m for m in _live_messages(build) if m["event"] == "alert"] == []


# The configuration as it was, and bad input.

def test_drift_report_replays_the_configuration_in_force_at_the_start(day):
    config = trading_config_get()
    initial = {"edge_threshold": config.edge_threshold}
    config.edge_threshold, config.version = 0.99, 2       # at 0.99 nothing on this day would trade
    config.save()
    config_change_audit(config=config, changed=["edge_threshold"], initial=initial, actor="tester",
                        now=FIRST_CLOSE + timedelta(hours=3), reason="stricter")

    report = _build()

    assert trading_config_at(FIRST_CLOSE).edge_threshold == 0.5
    assert trading_config_at(LAST_CLOSE).edge_threshold == 0.99
    assert D(report.summary["gap_usdt"]) == 0 and report.summary["trades"]["both"] == 4
    assert report.summary["config_version"] == 1
    assert report.summary["caveats"] == ["the trading configuration changed 1 time(s) inside the window; the "
                                         "backtest keeps version 1 (in force at the start) throughout"]


def test_drift_report_refuses_naive_times_and_an_empty_window_storing_nothing(day):
    with pytest.raises(ValueError, match="timezone-aware"):
        drift_report_build(account=_account(), start=FIRST_CLOSE.replace(tzinfo=None), end=LAST_CLOSE,
                           now=LAST_CLOSE)
    with pytest.raises(ValueError, match="no 15m bar closes between"):
        drift_report_build(account=_account(), start=LAST_CLOSE + timedelta(minutes=1),
                           end=LAST_CLOSE + timedelta(minutes=14), now=LAST_CLOSE)

    assert not DriftReport.objects.exists()


def test_drift_window_is_the_last_days_of_bar_closes():
    start, end = drift_window(now=datetime(2025, 7, 8, 14, 52, 10, tzinfo=timezone.utc), days=1, timeframe="15m")

    assert (start, end) == (FIRST_CLOSE, LAST_CLOSE)
    with pytest.raises(ValueError, match="at least 1"):
        drift_window(now=LAST_CLOSE, days=0, timeframe="15m")


# The command and the nightly task.

def test_drift_report_command_stores_the_report_and_prints_the_split(day, capsys):
    call_command("drift_report", "--account", "paper", "--days", "1", "--end", "2025-07-08T14:45")

    report = DriftReport.objects.get()
    out = capsys.readouterr().out
    assert (report.start, report.end, report.account.name) == (FIRST_CLOSE, LAST_CLOSE, "paper")
    assert f"drift report {report.pk}: paper 2025-07-07 15:00 to 2025-07-08 14:45 UTC, 96 decisions" in out
    assert "gap 0 = signal 0, size 0, fill_price 0, latency 0, exit_path 0, fees 0, funding 0, residual 0" in out
    assert "average slippage 0.0000 bps (limit 5" in out


def test_drift_report_command_names_an_unknown_account(day):
    with pytest.raises(CommandError, match="no account 'nobody'; accounts: paper"):
        call_command("drift_report", "--account", "nobody")


def test_drift_report_all_task_reports_every_account_over_drift_days(day, settings):
    settings.DRIFT_DAYS = 1
    Account.objects.create(name="idle", starting_balance_usdt=D("500"), balance_usdt=D("500"))

    with time_machine.travel(datetime(2025, 7, 8, 14, 50, tzinfo=timezone.utc), tick=False):
        outcome = drift_report_all()

    paper = DriftReport.objects.get(account__name="paper")
    idle = DriftReport.objects.get(account__name="idle")
    assert outcome == (f"idle: report {idle.pk}: gap 0 USDT, no fills compared; "
                       f"paper: report {paper.pk}: gap 0 USDT, slippage 0.0000 bps")
    assert (paper.start, paper.end, len(paper.rows)) == (FIRST_CLOSE, LAST_CLOSE, DAY_BARS)
    assert idle.rows == [] and idle.summary["instruments"] == []


# The split itself (execution.backtest.drift), without a database.

def _core_trade(side, entry, exits, *, fees=D("0"), funding=D("0"), mark=D("100")) -> Trade:
    quantity = sum((q for _, q, _ in exits), D(0))
    return Trade(side, leg_of("entry", [(entry, quantity, D(0))]),
                 tuple(leg_of(n, [(p, q, D(0))]) for n, q, p in exits), fees, funding, None, FIRST_CLOSE, FIRST_CLOSE,
                 mark)


def test_trade_split_puts_a_stop_where_the_backtest_took_its_target_in_exit_path():
    live = _core_trade("LONG", D("100"), [("sl", D("2"), D("98"))])
    backtest = _core_trade("LONG", D("100"), [("tp1", D("2"), D("103"))])

    split = trade_split(live, backtest)

    assert split["exit_path"] == D("-10") and split["fill_price"] == split["size"] == split["latency"] == 0


def test_moment_split_of_opposite_directions_is_all_signal():
    live = _core_trade("SHORT", D("100"), [("sl", D("1"), D("101"))], fees=D("0.5"))
    backtest = _core_trade("LONG", D("100"), [("tp1", D("1"), D("101"))])

    split = moment_split(live, backtest)

    assert split["signal"] == D("-2.5") and sum(split.values()) == split["signal"]


prices = st.decimals(min_value=D("50"), max_value=D("150"), places=1)
quantities = st.decimals(min_value=D("0.001"), max_value=D("5"), places=3)
money = st.decimals(min_value=D("-20"), max_value=D("20"), places=4)
legs = st.lists(st.tuples(st.sampled_from(["tp1", "tp2", "sl", "mark"]), quantities, prices), min_size=1,
                max_size=3, unique_by=lambda leg: leg[0])


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.sampled_from(["LONG", "SHORT"]), prices, prices, legs, legs, money, money, money, money, prices, prices)
def test_trade_split_buckets_add_up_to_the_pnl_difference_of_the_fills(side, entry_live, entry_bt, exits_live,
                                                                       exits_bt, fee_live, fee_bt, fund_live,
                                                                       fund_bt, mark_live, mark_bt):
    live = _core_trade(side, entry_live, exits_live, fees=fee_live, funding=fund_live, mark=mark_live)
    backtest = _core_trade(side, entry_bt, exits_bt, fees=fee_bt, funding=fund_bt, mark=mark_bt)

    split = trade_split(live, backtest)

    assert set(split) == set(CORE_BUCKETS)
    with localcontext(prec=PRECISION):     # the core's arithmetic: exact at this precision
        assert sum(split.values()) == trade_pnl(live) - trade_pnl(backtest)
