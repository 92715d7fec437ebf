"""A decision waiting for approval, shared by the live-socket tests (in one process and across processes)."""
import datetime as dt
from decimal import Decimal

from decisions.models import Decision
from execution.services import account_ensure
from tests.dashboard.factories import CandleFactory, DecisionFactory, InstrumentFactory, TradingConfigFactory

MINUTE = dt.timedelta(minutes=1)


def pending_decision_create(now: dt.datetime, **config) -> Decision:
    """Store a HYBRID decision waiting for approval at `now`, priced by closed 1m candles inside its entry zone.

    `config` sets more trading-configuration fields (e.g. the trading hours); the paper account the
    approval trades on is created too.
    """
    TradingConfigFactory(mode="HYBRID", **config)
    btc = InstrumentFactory(data_source="exchange")
    account_ensure(name="paper")
    for minutes in (3, 2):  # closed bars; the last one prices the approval
        CandleFactory(instrument=btc, timeframe="1m", open_time=now - minutes * MINUTE, close=Decimal("65050"))
    return DecisionFactory(
        instrument=btc, timeframe="15m", as_of=now - 10 * MINUTE, action="LONG", mode="HYBRID",
        outcome="pending", approval="pending", entry_price=Decimal("65050"), stop_price=Decimal("64800.5"),
        target_price=Decimal("65800.5"), quantity=Decimal("0.015"),
        take_profits=[{"price": "65300.5", "share": "0.5"}, {"price": "65800.5", "share": "0.5"}],
        entry_zone_low=Decimal("64990"), entry_zone_high=Decimal("65110"), expires_at=now + dt.timedelta(hours=4))
