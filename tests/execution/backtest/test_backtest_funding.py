"""Funding in the backtester: every 8 h from stored rates, the paper venue's rule, hand-checked to the cent.

Real USD-M BTCUSDT 1m bars of 2025-06-06..16 with the real funding rates of those days; 15m candles
resampled from the minutes. From the 2025-06-10 01:00 close, mode ON: a short opens at 05:30 and is
stopped at 09:32, so it holds through the 08:00 settlement (rate 0.0001, stamped 1 ms late).
"""
import logging
from datetime import datetime, timezone
from decimal import Decimal as D

import numpy as np
import pandas as pd
import pytest

from decisions.models import Mode, TradingConfig
from execution.backtest.engine import backtest_run
from execution.backtest.exits import funding_settle
from execution.backtest.ledger import Ledger, SimPosition
from execution.backtest.state import Run, SymbolRun
from execution.backtest.world import Candles, FundingRates, InstrumentSpec, Market, to_decimal
from execution.backtest.decide import ApprovalPolicy
from market.resample import resample
from market.services import KNOWN_FILTERS

MINUTES_FILE = "binance_usdm_BTCUSDT_1m_2025-06-06_2025-06-16.csv.gz"
FUNDING_FILE = "binance_usdm_BTCUSDT_funding_2024-07-19_2025-06-17.csv.gz"
START = datetime(2025, 6, 10, 1, 0, tzinfo=timezone.utc)
SETTLEMENT_MS = 1_749_542_400_000          # 2025-06-10 08:00 UTC
CYCLES = 40


def _spec() -> InstrumentSpec:
    filters = {k: D(v) for k, v in KNOWN_FILTERS["BTCUSDT"].items()}
    return InstrumentSpec.of(type("Row", (), dict(pk=1, symbol="BTC/USDT:USDT", exchange_symbol="BTCUSDT",
                                                  base="BTC", **filters)))


@pytest.fixture
def minutes(market_data_dir):
    frame = pd.read_csv(market_data_dir / MINUTES_FILE)
    numbers = frame.astype({c: float for c in frame.columns if c != "open_time_ms"})
    return {"1m": Candles.from_frame("1m", frame), "15m": Candles.from_frame("15m", resample(numbers, "1m", "15m"))}


@pytest.fixture
def rates(market_data_dir) -> pd.DataFrame:
    return pd.read_csv(market_data_dir / FUNDING_FILE, dtype={"funding_rate": str})


def _funding(rates: pd.DataFrame) -> FundingRates:
    return FundingRates.of(rates["funding_time_ms"].to_numpy(), rates["funding_rate"].tolist())


def _run(candles, funding, cycles=CYCLES):
    config = TradingConfig(mode=Mode.ON, edge_threshold=0.5)
    end = datetime.fromtimestamp(START.timestamp() + (cycles - 1) * 900, tz=timezone.utc)
    return backtest_run(candles=candles, instrument=_spec(), funding=funding, config=config,
                        starting_equity=D("10000"), start=START, end=end)


def test_funding_short_through_a_settlement_receives_qty_mark_rate_to_the_cent(minutes, rates):
    result = _run(minutes, _funding(rates))

    [payment] = result.funding
    position = next(p for p in result.trades if p.id == payment.position_id)
    # The mark is the last close by 08:00 (no stored mark): the 07:59 1m bar's close.
    minute = minutes["1m"]
    mark = to_decimal(minute.close[np.searchsorted(minute.open_time_ms, SETTLEMENT_MS - 60_000)])
    assert (payment.ts, payment.rate, payment.mark_price) == (datetime(2025, 6, 10, 8, tzinfo=timezone.utc),
                                                              D("0.0001"), mark)
    assert position.side == "SHORT" and position.opened_ms < SETTLEMENT_MS < position.closed_ms
    # A positive rate: longs pay shorts, quantity x mark x rate, to 1e-8 USDT.
    assert payment.amount_usdt == (position.initial_quantity * mark * D("0.0001")).quantize(D("0.00000001"))
    assert payment.amount_usdt > 0 and position.funding_usdt == payment.amount_usdt
    # Accounting: funding is in the position's PnL, and all PnL is the balance change.
    assert result.equity[-1].balance_usdt == D("10000") + sum((p.realized_pnl_usdt for p in result.trades), D(0))


def test_funding_missing_rate_is_skipped_and_logged_and_nothing_else_changes(minutes, rates, caplog):
    with_rate = _run(minutes, _funding(rates))
    without = rates[(rates["funding_time_ms"] - SETTLEMENT_MS).abs() > 60_000]

    with caplog.at_level(logging.WARNING, logger="execution.backtest.exits"):
        result = _run(minutes, _funding(without))

    assert result.funding == ()
    assert "BTCUSDT at 2025-06-10T08:00:00+00:00 not booked: no stored funding rate or price" in caplog.text
    # The same trades, the funding alone missing from the PnL and the balance.
    amount = with_rate.funding[0].amount_usdt
    assert result.orders == with_rate.orders
    assert result.equity[-1].balance_usdt == with_rate.equity[-1].balance_usdt - amount


def test_funding_rate_stamped_over_a_minute_away_is_not_the_settlement(rates):
    funding = _funding(rates)

    assert funding.at(SETTLEMENT_MS) == (D("0.0001"), None)            # stamped 1 ms after 08:00
    assert funding.at(SETTLEMENT_MS + 61_000) is None
    assert funding.at(SETTLEMENT_MS + 4 * 3_600_000) is None            # no settlement at 12:00


def test_funding_long_pays_quantity_times_mark_times_a_positive_rate(minutes):
    config = TradingConfig()
    market = Market(minutes, FundingRates.of([SETTLEMENT_MS], ["0.0001"]))
    sym = SymbolRun(_spec(), market)
    run = Run(config, [sym], Ledger(D("1000"), D("1000")), "paper", 1, ApprovalPolicy())
    position = SimPosition(1, "BTCUSDT", 0, None, "LONG", D("100000"), D("0.5"), D("0.5"), D("90000"), D("110000"),
                           [], None, SETTLEMENT_MS - 3_600_000, D(0), D(0))

    payment = funding_settle(run, sym, position, SETTLEMENT_MS)
    again = funding_settle(run, sym, position, SETTLEMENT_MS)

    mark = market.last_close(SETTLEMENT_MS)
    assert payment.amount_usdt == -(D("0.5") * mark * D("0.0001")).quantize(D("0.00000001"))
    assert again is None and run.ledger.balance_usdt == D("1000") + payment.amount_usdt
    assert position.realized_pnl_usdt == position.funding_usdt == payment.amount_usdt
