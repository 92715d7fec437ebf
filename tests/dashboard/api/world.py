"""One stored row of every kind the API serves, for the access and content tests."""
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from analytics.models import Flow
from decisions.models import Decision
from execution.models import Account, BacktestRun, EquityPoint, Fill, Order, Position
from market.models import DerivativesSample, Instrument, SentimentInput
from tests.dashboard.factories import (AccountFactory, CandleFactory, DecisionFactory, InstrumentFactory,
                                      PositionFactory, SnapshotFactory, T0)

MINUTE = dt.timedelta(minutes=1)


@dataclass
class World:
    instrument: Instrument
    account: Account
    decision: Decision
    order: Order
    fill: Fill
    position: Position
    backtest: BacktestRun
    sentiment: SentimentInput


def world_build() -> World:
    """Store an instrument with candles, analytics, a decision, an order with a fill, a position, equity, a run."""
    btc = InstrumentFactory(data_source="exchange")
    for n in range(5):
        CandleFactory(instrument=btc, timeframe="1m", open_time=T0 + n * MINUTE)
    DerivativesSample.objects.create(instrument=btc, kind="funding", ts=T0, funding_rate=Decimal("0.0001"))
    SnapshotFactory(instrument=btc)
    Flow.objects.create(instrument=btc, as_of=T0, crowd_bias=0.2, trap_index=0.1, global_risk_score=40.0)
    account = AccountFactory(api_key_encrypted="ENCRYPTED-KEY-MATERIAL", api_secret_encrypted="ENCRYPTED-SECRET")
    decision = DecisionFactory(instrument=btc, rationale=["trend: up on 5m"],
                               gates=[{"name": "daily_loss", "passed": True, "reason": "0.1% lost"}])
    order = Order.objects.create(account=account, instrument=btc, decision=decision, client_order_id="tb-1-entry",
                                 intent_id="tb-1", leg="entry", side="buy", type="market", status="filled",
                                 quantity=Decimal("0.015"), filled_quantity=Decimal("0.015"),
                                 average_price=Decimal("65050.5"), created_at=T0, updated_at=T0)
    fill = Fill.objects.create(order=order, trade_id="t-1", ts=T0, price=Decimal("65050.5"),
                               quantity=Decimal("0.015"), fee_usdt=Decimal("0.39030300"))
    position = PositionFactory(account=account, instrument=btc, decision=decision)
    for n in range(3):
        EquityPoint.objects.create(account=account, ts=T0 + n * MINUTE, balance_usdt=Decimal("10000"),
                                   unrealized_pnl_usdt=Decimal(n), equity_usdt=Decimal("10000") + n)
    backtest = BacktestRun.objects.create(
        instrument=btc, timeframe="15m", start=T0, end=T0 + dt.timedelta(days=1), starting_equity_usdt=Decimal("10000"),
        final_equity_usdt=Decimal("10123.45"), parameters={"risk_per_trade_fraction": "0.005"}, code_version="abc",
        status="done", trades=[{"entry": "65000", "exit": "65500", "r": 1.2}], equity=[[1709294400000, "10000"]],
        metrics={"trades": 1, "profit_factor": 2.0}, created_at=T0)
    sentiment = SentimentInput.objects.create(asset="BTC", score=Decimal("0.25"), source="fear-greed", known_at=T0)
    return World(btc, account, decision, order, fill, position, backtest, sentiment)
