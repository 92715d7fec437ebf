"""Parity on 1m bars with funding: the live cycle and the backtester trade a real day identically, field by field.

The database holds what an operator would import: the real USD-M BTCUSDT 1m recording of 2025-06-06..16,
the real funding rates of that time (`market_file_import`) and 15m candles resampled from the minutes
(`resample_missing`). The live engine (`execution.engine.cycle_run`, paper venue, simulated clock,
mode ON) runs every 15m close of the day; the backtester runs the same day from the same rows
(`runs.symbol_load`). Decisions, orders, fills, funding payments, positions and equity points must be
the same. Stops and targets fill on the 1m bars, structure confirmations read 5m bars resampled from
1m, the higher views are resampled from 15m, and a short position pays funding at 08:00 UTC.
"""
from datetime import datetime, timedelta, timezone
from decimal import Context, Decimal as D

import pytest
from django.conf import settings

from decisions.models import Decision, Mode
from decisions.selectors import trading_config_get
from execution.backtest.engine import backtest_run
from execution.backtest.runs import symbol_load
from execution.engine import cycle_run
from execution.models import EquityPoint, Fill, FundingPayment, Order, Position
from market.importer import market_file_import, resample_missing
from market.models import Instrument

MINUTES_FILE = "binance_usdm_BTCUSDT_1m_2025-06-06_2025-06-16.csv.gz"
FUNDING_FILE = "binance_usdm_BTCUSDT_funding_2024-07-19_2025-06-17.csv.gz"
FIRST_CLOSE = datetime(2025, 6, 10, 1, 0, tzinfo=timezone.utc)     # the 301st 15m close: after the warm-up
STEP = timedelta(minutes=15)


@pytest.fixture
def btc_minutes(market_data_dir, db):
    """Import the real 1m bars and funding rates, resample 15m candles; return the active instrument."""
    market_file_import(market_data_dir / MINUTES_FILE)
    market_file_import(market_data_dir / FUNDING_FILE)
    instrument = Instrument.objects.get(exchange_symbol="BTCUSDT")
    instrument.is_active = True
    instrument.save()
    resample_missing(instrument, "15m")
    return instrument


def _both(instrument, cycles: int, first_close: datetime = FIRST_CLOSE, **config_fields):
    """Run `cycles` closes from `first_close` through the live engine and the backtester; return the backtest."""
    config = trading_config_get()
    config.mode, config.edge_threshold = Mode.ON, 0.5      # trades happen on this day
    for name, value in config_fields.items():
        setattr(config, name, value)
    config.save()
    end = first_close + STEP * (cycles - 1)
    for k in range(cycles):
        cycle_run(now=first_close + STEP * k, decide=True)
    first = Position.objects.order_by("pk").first()
    data = symbol_load(instrument=instrument, config=config, start=first_close, end=end)
    return backtest_run(symbols=[data], config=config, starting_equity=D(settings.PAPER_STARTING_EQUITY_USDT),
                        start=first_close, end=end, first_position_id=first.pk if first else 1)


def _decisions_live() -> list[tuple]:
    return [(d.as_of, d.action, d.outcome, d.reason, d.entry_price, d.stop_price, d.target_price,
             tuple((D(t["price"]), D(t["share"])) for t in d.take_profits), d.quantity, d.approval)
            for d in Decision.objects.order_by("as_of")]


def _decisions_backtest(result) -> list[tuple]:
    return [(d.as_of, d.action, d.outcome, d.reason, d.entry_price, d.stop_price, d.target_price,
             tuple((D(str(p)), D(str(s))) for p, s in d.take_profits), d.quantity, d.approval)
            for d in result.decisions]


def _orders_live() -> list[tuple]:
    return [(o.created_at, o.client_order_id, o.leg, o.side, o.type, o.quantity, o.price, o.filled_quantity,
             o.average_price, o.status) for o in Order.objects.order_by("created_at", "pk")]


def _orders_backtest(result) -> list[tuple]:
    return [(o.created_at, o.client_order_id, o.leg, o.side, o.type, o.quantity, o.price, o.filled_quantity,
             o.average_price, o.status) for o in sorted(result.orders, key=lambda o: o.created_at)]


def _fills_live() -> list[tuple]:
    return [(f.order.client_order_id, f.ts, f.price, f.quantity, f.fee_usdt, f.liquidity)
            for f in Fill.objects.select_related("order").order_by("ts", "pk")]


def _fills_backtest(result) -> list[tuple]:
    return [(f.client_order_id, f.ts, f.price, f.quantity, f.fee_usdt, f.liquidity)
            for f in sorted(result.fills, key=lambda f: f.ts)]


def _positions_live() -> list[tuple]:
    return [(p.pk, p.side, p.opened_at, p.entry_price, p.initial_quantity, p.quantity, p.fees_usdt, p.funding_usdt,
             p.realized_pnl_usdt, p.closed_at, p.exit_price, p.exit_reason, p.liquidation_price, p.margin_usdt, p.trail_distance)
            for p in Position.objects.order_by("pk")]


def _positions_backtest(result) -> list[tuple]:
    def at(ms):
        return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return [(p.id, p.side, at(p.opened_ms), p.entry_price, p.initial_quantity, p.quantity, p.fees_usdt,
             p.funding_usdt, p.realized_pnl_usdt, at(p.closed_ms), p.exit_price, p.exit_reason, p.liquidation_price,
             p.margin_usdt, p.trail_distance) for p in result.trades]


def test_parity_1m_day_with_funding_decides_orders_fills_pays_funding_and_books_identically(btc_minutes):
    result = _both(btc_minutes, 96)

    funding_live = [(p.position_id, p.ts, p.rate, p.amount_usdt) for p in FundingPayment.objects.order_by("ts", "pk")]
    equity_live = [(p.ts, p.balance_usdt, p.unrealized_pnl_usdt, p.equity_usdt)
                   for p in EquityPoint.objects.order_by("ts")]

    # The day exercises what is compared: entries, stops on 1m bars and a funding payment.
    assert len(_decisions_live()) == 96 and {o[2] for o in _orders_live()} >= {"entry", "sl"}
    assert funding_live and all(amount != 0 for *_, amount in funding_live)
    assert _decisions_backtest(result) == _decisions_live()
    assert _orders_backtest(result) == _orders_live()
    assert _fills_backtest(result) == _fills_live()
    assert [(f.position_id, f.ts, f.rate, f.amount_usdt) for f in result.funding] == funding_live
    assert _positions_backtest(result) == _positions_live()
    assert [(p.ts, p.balance_usdt, p.unrealized_pnl_usdt, p.equity_usdt) for p in result.equity] == equity_live


LIMIT_START = datetime(2025, 6, 10, 5, 0, tzinfo=timezone.utc)


def test_parity_1m_limit_entries_rest_fill_in_part_and_chase_identically(btc_minutes):
    # 05:00 to 09:45: the 05:30 entry rests as a post-only limit and fills in part on the 1m bars as maker
    # (0.1 % of each bar's volume); at 05:45 the chase cancels it and takes the rest at market, the
    # position grows to the whole entry, and it pays funding at 08:00 before its stop.
    result = _both(btc_minutes, 20, LIMIT_START, entry_order_type="limit", paper_fill_participation=D("0.001"))

    orders = _orders_live()
    entries = [o for o in orders if o[2].startswith("entry")]
    assert [o[2:5] for o in entries[:2]] == [("entry", "sell", "limit_maker"), ("entrymkt", "sell", "market")]
    assert entries[0][9] == "canceled" and 0 < entries[0][7] < entries[0][5] and FundingPayment.objects.exists()
    assert _decisions_backtest(result) == _decisions_live()
    assert _orders_backtest(result) == orders
    assert _fills_backtest(result) == _fills_live()
    assert [(f.position_id, f.ts, f.amount_usdt) for f in result.funding] == \
        [(p.position_id, p.ts, p.amount_usdt) for p in FundingPayment.objects.order_by("ts", "pk")]
    # The grown position's entry price is a volume-weighted mean with more than 10 decimals. Its row keeps
    # 10 decimal places (MariaDB, and the backtest); SQLite keeps 15 significant digits (Django reads the
    # column back through a float), so the positions are compared at those 15 digits.
    assert _digits15(_positions_backtest(result)) == _digits15(_positions_live())
    assert [p.equity_usdt for p in result.equity] == [p.equity_usdt for p in EquityPoint.objects.order_by("ts")]


def _digits15(rows: list[tuple]) -> list[tuple]:
    fifteen = Context(prec=15)
    return [tuple(fifteen.create_decimal(v) if isinstance(v, D) else v for v in row) for row in rows]


def test_parity_1m_live_venue_cancel_reads_no_bar_after_the_cycle(btc_minutes):
    # The cycle hands its clock to the paper venue (broker_for(now=)): cancelling the resting entry
    # at 05:45 matches it against the bars up to 05:45, never the stored 05:46 bar.
    _both(btc_minutes, 4, LIMIT_START + 2 * STEP, entry_order_type="limit", paper_fill_participation=D("0.001"))

    fills = Fill.objects.filter(order__leg="entry")
    assert fills.exists() and all(f.ts < LIMIT_START + 3 * STEP for f in fills)
