"""Parity: real candles through the live cycle and through the backtester give the same trading, field by field."""
import dataclasses
import json
from datetime import datetime, timezone
from decimal import Decimal as D

import pytest
from django.conf import settings

from decisions.models import Decision, Mode, TradingConfig
from decisions.selectors import trading_config_get
from execution.backtest.engine import backtest_run
from execution.backtest.metrics import summarize
from execution.backtest.runs import closed_trades
from execution.backtest.world import Candles, InstrumentSpec
from execution.engine import cycle_run
from execution.models import EquityPoint, Fill, Order, Position
from market.services import KNOWN_FILTERS
from tests.market_fixtures import BTC_15M_FILE, DAY_BARS, WARMUP_BARS, real_frame

STEP_MS = 900_000


def _mode_on(config: TradingConfig) -> TradingConfig:
    """Switch to ON with the edge bar at 0.5 (tests/execution/test_pipeline.py): trades happen on this day."""
    config.mode = Mode.ON
    config.edge_threshold = 0.5
    return config


def _first_close(frame) -> datetime:
    return datetime.fromtimestamp((int(frame["open_time_ms"].iloc[WARMUP_BARS]) + STEP_MS) / 1000, tz=timezone.utc)


def _decision_row(as_of, action, outcome, reason, entry, stop, target, take_profits, quantity) -> tuple:
    return (as_of, action, outcome, reason, entry, stop, target,
            tuple((D(str(p)), D(str(s))) for p, s in take_profits), quantity)


def _live_decisions(instrument) -> list[tuple]:
    rows = Decision.objects.filter(instrument=instrument).order_by("as_of")
    return [_decision_row(d.as_of, d.action, d.outcome, d.reason, d.entry_price, d.stop_price, d.target_price,
                          [(t["price"], t["share"]) for t in d.take_profits], d.quantity) for d in rows]


def _backtest_decisions(result) -> list[tuple]:
    return [_decision_row(d.as_of, d.action, d.outcome, d.reason, d.entry_price, d.stop_price, d.target_price,
                          d.take_profits, d.quantity) for d in result.decisions]


def _live_orders() -> list[tuple]:
    return [(o.created_at, o.client_order_id, o.leg, o.side, o.type, o.quantity, o.average_price, o.status)
            for o in Order.objects.order_by("created_at", "pk")]


def _backtest_orders(result) -> list[tuple]:
    return [(o.created_at, o.client_order_id, o.leg, o.side, o.type, o.quantity, o.average_price, o.status)
            for o in sorted(result.orders, key=lambda o: o.created_at)]


def _live_fills() -> list[tuple]:
    return [(f.order.client_order_id, f.ts, f.price, f.quantity, f.fee_usdt)
            for f in Fill.objects.select_related("order").order_by("ts", "pk")]


def _backtest_fills(result) -> list[tuple]:
    return [(f.client_order_id, f.ts, f.price, f.quantity, f.fee_usdt)
            for f in sorted(result.fills, key=lambda f: f.ts)]


@pytest.fixture
def day_through_both(btc_15m):
    """Replay the fixture's day through cycle_run (DB, paper venue) and backtest_run; return both."""
    instrument, frame = btc_15m
    config = _mode_on(trading_config_get())
    config.save()
    first = _first_close(frame)
    closes = [first.timestamp() + k * STEP_MS / 1000 for k in range(DAY_BARS)]
    for ts in closes:
        cycle_run(now=datetime.fromtimestamp(ts, tz=timezone.utc), decide=True)
    first_position = Position.objects.order_by("pk").first()
    result = backtest_run(candles={"15m": Candles.from_frame("15m", frame)}, instrument=InstrumentSpec.of(instrument),
                          config=config, starting_equity=D(settings.PAPER_STARTING_EQUITY_USDT), start=first,
                          first_position_id=first_position.pk if first_position else 1)
    return instrument, result


def test_parity_day_live_and_backtest_decide_order_fill_and_book_identically(day_through_both):
    instrument, result = day_through_both

    live_decisions = _live_decisions(instrument)
    live_orders = _live_orders()
    live_equity = [(p.ts, p.balance_usdt, p.unrealized_pnl_usdt, p.equity_usdt)
                   for p in EquityPoint.objects.order_by("ts")]

    # The day exercises the paths compared: entries, a take-profit, stops, and an exit and an
    # entry in the same cycle (12:00 on 2025-07-08).
    assert len(live_decisions) == DAY_BARS
    assert {row[2] for row in live_orders} >= {"entry", "tp1", "tp2", "sl"}
    assert _backtest_decisions(result) == live_decisions
    assert _backtest_orders(result) == live_orders
    assert _backtest_fills(result) == _live_fills()
    assert [(p.ts, p.balance_usdt, p.unrealized_pnl_usdt, p.equity_usdt) for p in result.equity] == live_equity


# The backtester alone (no database): an unsaved configuration and the stored filters of BTCUSDT.

def _spec() -> InstrumentSpec:
    filters = {k: D(v) for k, v in KNOWN_FILTERS["BTCUSDT"].items()}
    return InstrumentSpec.of(type("Row", (), dict(pk=1, symbol="BTC/USDT:USDT", exchange_symbol="BTCUSDT",
                                                  base="BTC", **filters)))


def _run(frame, **overrides):
    args = dict(candles={"15m": Candles.from_frame("15m", frame)}, instrument=_spec(),
                config=_mode_on(TradingConfig()), starting_equity=D("10000"), start=_first_close(frame))
    return backtest_run(**(args | overrides))


@pytest.fixture
def btc_frame(market_data_dir):
    return real_frame(market_data_dir, BTC_15M_FILE, WARMUP_BARS + DAY_BARS)


def test_backtest_decision_at_bar_unchanged_when_later_bars_removed(btc_frame):
    full = _run(btc_frame)
    executed = [i for i, d in enumerate(full.decisions) if d.outcome == "executed"]

    # Cut at every close of the day: entries, bars inside trades and bars after exits are all among them.
    assert len(full.decisions) == DAY_BARS and len(executed) >= 2
    for cut in (d.as_of for d in full.decisions):
        keep = btc_frame[btc_frame["open_time_ms"] + STEP_MS <= cut.timestamp() * 1000]
        cut_run = _run(keep)

        assert cut_run.decisions == tuple(d for d in full.decisions if d.as_of <= cut)
        assert cut_run.equity == tuple(p for p in full.equity if p.ts <= cut)


def _canonical(value):
    if isinstance(value, D):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"no canonical form for {type(value).__name__}")


def _result_bytes(result) -> bytes:
    """Return the run's decisions, orders, fills, trades, equity and metrics as canonical JSON bytes."""
    trades = closed_trades(result, "BTCUSDT")
    metrics = summarize(trades, [int(e.ts.timestamp() * 1000) for e in result.equity],
                        [e.equity_usdt for e in result.equity], start_ms=int(result.equity[0].ts.timestamp() * 1000),
                        end_ms=int(result.equity[-1].ts.timestamp() * 1000), starting_equity=D("10000"))
    body = {"result": dataclasses.asdict(result), "metrics": metrics.as_dict()}
    return json.dumps(body, sort_keys=True, default=_canonical, separators=(",", ":")).encode()


def test_backtest_two_runs_give_identical_results(btc_frame):
    first, second = _run(btc_frame), _run(btc_frame)

    assert first.orders and first == second
    assert _result_bytes(first) == _result_bytes(second)
