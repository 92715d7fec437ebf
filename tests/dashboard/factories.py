"""factory_boy factories for the rows the dashboard reads."""
import datetime as dt
from decimal import Decimal

import factory

from analytics.models import Snapshot
from decisions.models import Decision, TradingConfig
from execution.models import Account, EquityPoint, Position
from market.models import Candle, Instrument

T0 = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)


class InstrumentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Instrument
        django_get_or_create = ("exchange", "symbol", "data_source")

    exchange = "binanceusdm"
    symbol = "BTC/USDT:USDT"
    exchange_symbol = "BTCUSDT"
    market_type = "swap"
    data_source = "replay"
    base = "BTC"
    quote = "USDT"
    tick_size = Decimal("0.1")
    step_size = Decimal("0.001")
    is_active = True


class CandleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Candle

    instrument = factory.SubFactory(InstrumentFactory)
    timeframe = "1m"
    open_time = factory.Sequence(lambda n: T0 + dt.timedelta(minutes=n))
    open = Decimal("65000")
    high = Decimal("65100")
    low = Decimal("64900")
    close = Decimal("65050")
    volume = Decimal("12.5")


class SnapshotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Snapshot

    instrument = factory.SubFactory(InstrumentFactory)
    timeframe = "5m"
    as_of = T0
    close = Decimal("65050")
    atr = 123.456
    trend = "up"
    momentum = "strong"
    features = factory.LazyFunction(lambda: {"structure": {"last_break": "BOS up", "swing_high": 65500.0}})


class TradingConfigFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TradingConfig

    mode = "HYBRID"
    paused = False


class DecisionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Decision

    instrument = factory.SubFactory(InstrumentFactory)
    timeframe = "5m"
    as_of = T0
    action = "LONG"
    mode = "HYBRID"
    outcome = "executed"
    entry_price = Decimal("65050")
    stop_price = Decimal("64800.5")
    target_price = Decimal("65550.5")
    quantity = Decimal("0.015")
    reason = "trend up with momentum"
    rationale = factory.LazyFunction(lambda: ["trend: up on 5m", {"name": "momentum", "value": "strong"}])
    gates = factory.LazyFunction(list)


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account
        django_get_or_create = ("name",)

    name = "paper"
    broker = "paper"
    starting_balance_usdt = Decimal("10000")
    balance_usdt = Decimal("10250.75")


class PositionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Position

    account = factory.SubFactory(AccountFactory)
    instrument = factory.SubFactory(InstrumentFactory)
    side = "LONG"
    status = "open"
    open_key = factory.LazyAttribute(lambda o: o.instrument.pk if o.status == "open" else None)
    quantity = Decimal("0.015")
    entry_price = Decimal("65000")
    stop_price = Decimal("64800.5")
    target_price = Decimal("65550.5")
    opened_at = T0


class EquityPointFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EquityPoint

    account = factory.SubFactory(AccountFactory)
    ts = factory.Sequence(lambda n: T0 + dt.timedelta(minutes=n))
    balance_usdt = Decimal("10000")
    unrealized_pnl_usdt = Decimal("0")
    equity_usdt = factory.LazyAttribute(lambda o: o.balance_usdt + o.unrealized_pnl_usdt)
