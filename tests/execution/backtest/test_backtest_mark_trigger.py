"""Stops in the backtester trigger on the mark or the last price per TradingConfig.stop_working_type.

Hand-built 1m bars and 1m mark klines (stored at their open time with their close, as the collectors
store them) show each rule alone; then a real day with stored mark klines runs through the live
cycle (paper venue, paper_exit_bars) and through the backtester loaded from the database
(runs.symbol_load), with identical orders and fills.
"""
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pandas as pd
import pytest
from django.conf import settings

from decisions.models import Mode, TradingConfig
from decisions.selectors import trading_config_get
from execution.backtest.decide import ApprovalPolicy
from execution.backtest.engine import backtest_run
from execution.backtest.exits import exits_check
from execution.backtest.ledger import Ledger, SimPosition
from execution.backtest.runs import symbol_load
from execution.backtest.state import Run, SymbolRun
from execution.backtest.world import Candles, FundingRates, InstrumentSpec, Market, MarkPrices
from execution.engine import cycle_run
from execution.models import Position
from market.ingest import derivatives_upsert
from market.models import DerivativesKind
from market.services import KNOWN_FILTERS
from tests.execution.backtest.test_parity import _backtest_fills, _backtest_orders, _live_fills, _live_orders
from tests.market_fixtures import DAY_BARS, WARMUP_BARS

STEP_MS = 900_000
T0 = 1_749_549_600_000          # 2025-06-10 10:00 UTC: no funding time among the bars
MINUTE_MS = 60_000
STOP = D("59000")


def _spec() -> InstrumentSpec:
    filters = {k: D(v) for k, v in KNOWN_FILTERS["BTCUSDT"].items()}
    return InstrumentSpec.of(type("Row", (), dict(pk=1, symbol="BTC/USDT:USDT", exchange_symbol="BTCUSDT",
                                                  base="BTC", **filters)))


def _minutes(bars: list[tuple[str, str, str, str]]) -> Candles:
    frame = pd.DataFrame(bars, columns=["open", "high", "low", "close"])
    frame["open_time_ms"] = [T0 + k * MINUTE_MS for k in range(len(bars))]
    frame["volume"] = "10"
    return Candles.from_frame("1m", frame)


def _marks(closes: dict[int, str]) -> MarkPrices:
    """Return 1m mark klines by the minute their close falls on (k: the close at T0 + k minutes)."""
    return MarkPrices.of([(T0 + (k - 1) * MINUTE_MS, "1m", mark) for k, mark in closes.items()])


def _exits(bars, marks: MarkPrices | None, working_type: str, checked_bars: int):
    """Check the exits of a long (entry 60000, stop 59000, target 62000) opened at T0 over the first bars."""
    # No slippage: the fill is the price the trigger rule gives (slippage is tested with the paper broker).
    config = TradingConfig(stop_working_type=working_type, slippage_bps=D(0))
    sym = SymbolRun(_spec(), Market({"1m": _minutes(bars)}, None, marks))
    run = Run(config, [sym], Ledger(D("10000"), D("10000")), "paper", 1, ApprovalPolicy())
    position = SimPosition(1, "BTCUSDT", T0, None, "LONG", D("60000"), D("0.1"), D("0.1"), STOP, D("62000"),
                           [], None, T0, D(0), D(0))
    run.ledger.position_add(position)

    exits_check(run, sym, T0 + checked_bars * MINUTE_MS)

    return position, run


# Minute 1 wicks the last price through the stop while the mark (closes 59990, 59900) stays above it.
# Minute 2's last price holds above the stop (low 59200) while its mark closes at 58950, below it.
LAST_WICK = [("60000", "60100", "59900", "60000"), ("60000", "60050", "58800", "59900"),
             ("59900", "59950", "59200", "59300"), ("59300", "59400", "59250", "59350")]
MARK_DIP = {0: "60000", 1: "59990", 2: "59900", 3: "58950", 4: "59340"}


def test_last_price_wick_closes_under_contract_price_and_keeps_the_position_under_mark_price():
    on_last, last_run = _exits(LAST_WICK, _marks(MARK_DIP), "CONTRACT_PRICE", checked_bars=2)
    on_mark, mark_run = _exits(LAST_WICK, _marks(MARK_DIP), "MARK_PRICE", checked_bars=2)

    # The bar opened above the stop: the stop fills at its level, at the bar's open time.
    assert (on_last.status, on_last.closed_ms, on_last.exit_price, on_last.exit_reason) == (
        "closed", T0 + MINUTE_MS, STOP, "stop")
    assert [(o.leg, o.created_ms, o.average_price) for o in last_run.orders] == [("sl", T0 + MINUTE_MS, STOP)]
    assert (on_mark.status, on_mark.quantity, on_mark.exits_checked_until_ms) == ("open", D("0.1"), T0 + MINUTE_MS)
    assert mark_run.orders == [] and mark_run.fills == []


def test_mark_dip_closes_under_mark_price_at_the_worst_last_price_and_keeps_the_position_under_contract_price():
    no_wick = [LAST_WICK[0], ("60000", "60050", "59800", "59900"), *LAST_WICK[2:]]

    on_mark, mark_run = _exits(no_wick, _marks(MARK_DIP), "MARK_PRICE", checked_bars=4)
    on_last, last_run = _exits(no_wick, _marks(MARK_DIP), "CONTRACT_PRICE", checked_bars=4)

    # Triggered by the mark in minute 2; the last price never reached the stop, so the market order
    # fills at the bar's worst last price (its low 59200), never better than the stop.
    assert (on_mark.status, on_mark.closed_ms, on_mark.exit_price, on_mark.exit_reason) == (
        "closed", T0 + 2 * MINUTE_MS, D("59200"), "stop")
    assert [(o.leg, o.created_ms, o.average_price, o.filled_quantity) for o in mark_run.orders] == [
        ("sl", T0 + 2 * MINUTE_MS, D("59200"), D("0.1"))]
    assert (on_last.status, on_last.quantity, on_last.exits_checked_until_ms) == ("open", D("0.1"), T0 + 3 * MINUTE_MS)
    assert last_run.fills == []


def test_bar_without_a_mark_close_inside_triggers_on_its_own_range_under_mark_price():
    # The mark klines end at minute 1's open: minute 1 has no mark close after its open.
    on_mark, _ = _exits(LAST_WICK, _marks({0: "60000", 1: "59990"}), "MARK_PRICE", checked_bars=2)
    without_marks, _ = _exits(LAST_WICK, None, "MARK_PRICE", checked_bars=2)

    assert (on_mark.closed_ms, on_mark.exit_price, on_mark.exit_reason) == (T0 + MINUTE_MS, STOP, "stop")
    assert (without_marks.closed_ms, without_marks.exit_price) == (T0 + MINUTE_MS, STOP)


def test_funding_mark_without_the_settlements_own_is_the_last_mark_close():
    market = Market({"1m": _minutes(LAST_WICK)}, FundingRates.of([T0 + 3 * MINUTE_MS], ["0.0001"]),
                    _marks(MARK_DIP))

    # paper_venue._mark_at: the kline closing at the settlement, not the later one nor the last price.
    assert market.funding_mark(T0 + 3 * MINUTE_MS) == (D("0.0001"), D("58950"))


# -- parity on a real day with stored mark klines ---------------------------------------------------

def _first_close(frame) -> datetime:
    return datetime.fromtimestamp((int(frame["open_time_ms"].iloc[WARMUP_BARS]) + STEP_MS) / 1000, tz=timezone.utc)


def _mode_on(config: TradingConfig) -> TradingConfig:
    """Switch to ON with the edge bar at 0.5, as the parity tests do: trades happen on this day."""
    config.mode = Mode.ON
    config.edge_threshold = 0.5
    return config


def _mark_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Return 5m mark klines derived from the 15m candles: low + 5, high - 5, close + 2 in each quarter."""
    rows = []
    for open_ms, high, low, close in zip(frame["open_time_ms"], frame["high"].astype(float),
                                         frame["low"].astype(float), frame["close"].astype(float)):
        for k, mark in enumerate((low + 5, high - 5, close + 2)):
            rows.append((int(open_ms) + k * 300_000, f"{mark:.1f}", f"{mark - 30:.1f}", "30"))
    return pd.DataFrame(rows, columns=["ts_ms", "mark_price", "index_price", "basis"])


@pytest.fixture
def day_with_marks(btc_15m):
    """Store 5m mark klines over the day, replay it live and backtest it from the database under MARK_PRICE."""
    instrument, frame = btc_15m
    derivatives_upsert(instrument_id=instrument.pk, kind=DerivativesKind.MARK_INDEX, period="5m",
                       frame=_mark_frame(frame))
    config = _mode_on(trading_config_get())
    config.stop_working_type = "MARK_PRICE"
    config.save()
    first = _first_close(frame)
    end = first + timedelta(milliseconds=(DAY_BARS - 1) * STEP_MS)
    for k in range(DAY_BARS):
        cycle_run(now=first + timedelta(milliseconds=k * STEP_MS), decide=True)
    first_position = Position.objects.order_by("pk").first()
    data = symbol_load(instrument=instrument, config=config, start=first, end=end)
    args = dict(symbols=[data], config=config, starting_equity=D(settings.PAPER_STARTING_EQUITY_USDT), start=first,
                end=end, first_position_id=first_position.pk if first_position else 1)
    on_last = TradingConfig.objects.get(pk=config.pk)
    on_last.stop_working_type = "CONTRACT_PRICE"
    return data, backtest_run(**args), backtest_run(**(args | {"config": on_last}))


def test_parity_day_with_mark_klines_live_and_backtest_order_and_fill_identically(day_with_marks):
    data, on_mark, on_last = day_with_marks

    live_orders = _live_orders()
    assert data.marks is not None and set(data.marks.by_period) == {"5m"}
    assert {row[2] for row in live_orders} >= {"entry", "sl"}
    assert _backtest_orders(on_mark) == live_orders
    assert _backtest_fills(on_mark) == _live_fills()
    # The marks changed the trading: the same day on the last price trades otherwise.
    assert _backtest_orders(on_last) != live_orders
