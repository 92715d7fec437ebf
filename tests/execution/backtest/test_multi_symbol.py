"""Several symbols on one account: one clock, shared risk limits, one wallet, per-symbol results.

Real USD-M BTCUSDT and ETHUSDT 15m candles of the same days (2025-07-07 to 10), mode ON with the edge
bar at 0.5 so both symbols trade.
"""
from collections import Counter
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command

from decisions.models import Decision, Mode, TradingConfig
from decisions.risk.wall import day_bounds
from decisions.risk_state import risk_limits_for
from decisions.selectors import trading_config_get
from execution.backtest.engine import backtest_run
from execution.backtest.runs import symbol_load
from execution.backtest.world import Candles, InstrumentSpec, SymbolData
from execution.engine import cycle_run
from execution.models import BacktestRun, EquityPoint, Order, Position
from market.ingest import candles_upsert
from market.services import KNOWN_FILTERS, instrument_ensure
from tests.market_fixtures import BTC_15M_FILE, WARMUP_BARS, real_frame

ETH_15M_FILE = "binance_usdm_ETHUSDT_15m_2025-07-04_2025-12-31.csv.gz"
DAYS = 3
STEP_MS = 900_000


def _spec(pk: int, symbol: str) -> InstrumentSpec:
    base = symbol.removesuffix("USDT")
    filters = {k: D(v) for k, v in KNOWN_FILTERS[symbol].items()}
    return InstrumentSpec.of(type("Row", (), dict(pk=pk, symbol=f"{base}/USDT:USDT", exchange_symbol=symbol,
                                                  base=base, **filters)))


@pytest.fixture
def frames(market_data_dir):
    rows = WARMUP_BARS + DAYS * 96
    return real_frame(market_data_dir, BTC_15M_FILE, rows), real_frame(market_data_dir, ETH_15M_FILE, rows)


def _config(**fields) -> TradingConfig:
    config = TradingConfig()
    config.mode, config.edge_threshold = Mode.ON, 0.5
    for name, value in fields.items():
        setattr(config, name, value)
    return config


def _run(frames, symbols=("BTCUSDT", "ETHUSDT"), **fields):
    btc, eth = frames
    by_symbol = {"BTCUSDT": (1, btc), "ETHUSDT": (2, eth)}
    data = [SymbolData(_spec(by_symbol[s][0], s), {"15m": Candles.from_frame("15m", by_symbol[s][1])})
            for s in symbols]
    start = datetime.fromtimestamp((int(btc["open_time_ms"].iloc[WARMUP_BARS]) + STEP_MS) / 1000, tz=timezone.utc)
    return backtest_run(symbols=data, config=_config(**fields), starting_equity=D("10000"), start=start)


def _entries_per_day(result, config) -> Counter:
    limits = risk_limits_for(config)
    return Counter(day_bounds(p.opened_ms, limits)[0] for p in result.trades)


def test_multi_symbol_steps_both_symbols_on_one_clock_and_one_wallet(frames):
    result = _run(frames)

    assert result.symbols == ("BTCUSDT", "ETHUSDT")
    # One decision per symbol at every close, in instrument order.
    assert [d.symbol for d in result.decisions[:2]] == ["BTCUSDT", "ETHUSDT"]
    assert Counter(d.symbol for d in result.decisions) == {"BTCUSDT": DAYS * 96, "ETHUSDT": DAYS * 96}
    assert {p.symbol for p in result.trades} == {"BTCUSDT", "ETHUSDT"}
    assert {o.symbol for o in result.orders} == {"BTCUSDT", "ETHUSDT"}
    # One wallet: every position's PnL (both symbols, fees included) is the balance change.
    last = result.equity[-1]
    assert last.balance_usdt == D("10000") + sum((p.realized_pnl_usdt for p in result.trades), D(0))
    assert len(result.equity) == DAYS * 96


def test_multi_symbol_daily_trade_limit_counts_both_symbols(frames):
    config = _config()
    alone = [_run(frames, symbols=(s,)) for s in ("BTCUSDT", "ETHUSDT")]
    together = _run(frames)

    # Each symbol alone stays within 3 entries a day, but the two together would exceed it on some day;
    # on the shared account the gate counts both, and blocks the entry that would be the fourth.
    assert max((_entries_per_day(alone[0], config) + _entries_per_day(alone[1], config)).values()) > \
        config.max_trades_per_day
    assert max(_entries_per_day(together, config).values()) <= config.max_trades_per_day
    assert any(d.reason.startswith("blocked by trades_per_day") for d in together.decisions)


def test_multi_symbol_max_open_positions_is_account_wide(frames):
    result = _run(frames, max_open_positions=1)

    # Never two positions at once, whatever the symbol; a signal on the other symbol is refused meanwhile.
    spans = [(p.opened_ms, p.closed_ms or 2**62) for p in result.trades]
    assert all(b[0] >= a[1] for a, b in zip(sorted(spans), sorted(spans)[1:]))
    blocked = [d for d in result.decisions if d.reason.startswith("blocked by max_positions")]
    assert blocked
    for decision in blocked:
        now = decision.as_of.timestamp() * 1000
        # Exits are booked at the bar's open: a position closed at this close was still open when it was decided.
        holding = [p for p in result.trades if p.opened_ms <= now and (p.closed_ms is None or p.closed_ms >= now)]
        assert holding and all(p.symbol != decision.symbol for p in holding)


def test_multi_symbol_results_do_not_depend_on_the_listing_order(frames):
    first = _run(frames)
    second = _run(frames, symbols=("ETHUSDT", "BTCUSDT"))

    # Instruments step in their id order (the live cycle's), however they are listed.
    assert first == second


@pytest.fixture
def two_stored(market_data_dir, db):
    """Store warm-up plus the days of real BTCUSDT and ETHUSDT 15m candles; return (btc, eth, start, end)."""
    config = trading_config_get()
    config.mode, config.edge_threshold = Mode.ON, 0.5
    config.save()
    stored = []
    for symbol, name in (("BTCUSDT", BTC_15M_FILE), ("ETHUSDT", ETH_15M_FILE)):
        frame = real_frame(market_data_dir, name, WARMUP_BARS + DAYS * 96)
        instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol=symbol, market_type="swap")
        candles_upsert(instrument_id=instrument.pk, timeframe="15m", frame=frame)
        stored.append(instrument)
    start = datetime.fromtimestamp((int(frame["open_time_ms"].iloc[WARMUP_BARS]) + STEP_MS) / 1000, tz=timezone.utc)
    end = datetime.fromtimestamp((int(frame["open_time_ms"].iloc[-1]) + STEP_MS) / 1000, tz=timezone.utc)
    return (*stored, start, end)


def test_backtest_command_with_symbols_stores_one_run_with_a_breakdown_per_symbol(two_stored):
    btc, eth, start, end = two_stored
    out = StringIO()

    call_command("backtest", "--symbols", "BTCUSDT,ETHUSDT", "--timeframe", "15m", "--start", start.isoformat(),
                 "--end", end.isoformat(), "--workers", "2", stdout=out)

    run = BacktestRun.objects.get()
    assert (run.instrument, run.symbols, run.status) == (btc, ["BTCUSDT", "ETHUSDT"], "done")
    assert {t["symbol"] for t in run.trades} == {"BTCUSDT", "ETHUSDT"}
    by_symbol = run.metrics["by_symbol"]
    assert set(by_symbol) == {"BTCUSDT", "ETHUSDT"}
    assert sum(part["count"] for part in by_symbol.values()) == run.metrics["trade_count"]
    assert sum(D(part["net_pnl_usdt"]) for part in by_symbol.values()) == D(run.metrics["net_pnl_usdt"])
    assert "  ETHUSDT: " in out.getvalue()


def test_backtest_command_refuses_an_unknown_symbol_in_the_list(two_stored):
    with pytest.raises(Exception, match="no instrument 'DOGEUSDT'"):
        call_command("backtest", "--symbols", "BTCUSDT,DOGEUSDT", "--start", "2025-07-08", "--end", "2025-07-09",
                     stdout=StringIO())

    assert not BacktestRun.objects.exists()


def test_parity_two_symbols_on_one_account_live_and_backtest_trade_identically(two_stored):
    btc, eth, _, _ = two_stored
    for instrument in (btc, eth):
        instrument.is_active = True
        instrument.save()
    config = trading_config_get()
    config.max_open_positions = 1          # the second symbol's signals meet the first one's position
    config.save()
    start = datetime(2025, 7, 8, 6, 0, tzinfo=timezone.utc)
    closes = [start + timedelta(milliseconds=k * STEP_MS) for k in range(36)]
    for now in closes:
        cycle_run(now=now, decide=True)
    first = Position.objects.order_by("pk").first()
    data = [symbol_load(instrument=i, config=config, start=start, end=closes[-1]) for i in (btc, eth)]

    result = backtest_run(symbols=data, config=config, starting_equity=D(settings.PAPER_STARTING_EQUITY_USDT),
                          start=start, end=closes[-1], first_position_id=first.pk)

    live_decisions = [(d.instrument.exchange_symbol, d.as_of, d.action, d.outcome, d.reason, d.quantity)
                      for d in Decision.objects.select_related("instrument").order_by("as_of", "instrument_id")]
    # ETH's signals meet BTC's position: the account-wide cap blocks them, live and in the backtest.
    assert any(row[0] == "ETHUSDT" and row[4].startswith("blocked by max_positions") for row in live_decisions)
    assert [(d.symbol, d.as_of, d.action, d.outcome, d.reason, d.quantity) for d in result.decisions] == \
        live_decisions
    assert [(o.created_at, o.client_order_id, o.side, o.quantity, o.average_price, o.status)
            for o in sorted(result.orders, key=lambda o: o.created_at)] == \
        [(o.created_at, o.client_order_id, o.side, o.quantity, o.average_price, o.status)
         for o in Order.objects.order_by("created_at", "pk")]
    assert [(p.ts, p.equity_usdt) for p in result.equity] == \
        [(p.ts, p.equity_usdt) for p in EquityPoint.objects.order_by("ts")]
