"""A testnet account on the local USD-M emulator with its execution loop, for tests that tick it by hand."""
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal as D

from analytics.services import ms_to_datetime
from execution.brokers.ccxt import CcxtBroker
from execution.loop import ExecutionLoop
from execution.models import Account
from execution.reconciliation import reconciliation_run
from execution.stream.applier import StreamApplier
from execution.stream.health import StreamPolicy
from market.models import Candle, Instrument
from market.services import instrument_ensure
from tests.emulator.fixtures import usdm_client

SYMBOL = "BTCUSDT"
LADDER = [{"price": "60600.0", "share": "0.5"}, {"price": "61200.0", "share": "0.5"}]


@dataclass
class Venue:
    emulator: object
    broker: CcxtBroker
    account: Account
    instrument: Instrument
    loop: ExecutionLoop
    now: datetime

    def at(self, seconds: float) -> datetime:
        return self.now + timedelta(seconds=seconds)

    def market(self, price: D, seconds: float) -> None:
        """Move the venue to `price` (the ticker the loop chases) and store a 1 m bar closing at `seconds`."""
        self.emulator.set_price(SYMBOL, price)
        close_at = self.at(seconds)
        Candle.objects.update_or_create(instrument=self.instrument, timeframe="1m",
                                        open_time=close_at - timedelta(minutes=1),
                                        defaults=dict(open=price, high=price, low=price, close=price, volume=D(1)))

    def tick(self, seconds: float):
        report = self.loop.tick(self.at(seconds))
        assert report.errors == []
        return report

    def venue_orders(self) -> list[tuple]:
        return sorted((o.client_order_id.rsplit("-", 1)[1], o.type, o.quantity - o.filled, o.price or o.trigger_price)
                      for o in self.broker.open_orders(SYMBOL))

    def venue_stops(self) -> list[tuple[D, D]]:
        return [(o.quantity - o.filled, o.trigger_price) for o in self.broker.open_orders(SYMBOL)
                if o.type == "stop_market"]

    def venue_position(self) -> D:
        return sum((p.quantity for p in self.broker.positions() if p.symbol == SYMBOL), D(0))

    def stops(self) -> list[tuple[D, D]]:
        """Return the venue's open stops straight from its book: (quantity, trigger)."""
        with self.emulator.venue.lock:
            algos = self.emulator.venue.algos.open_orders(SYMBOL)
        return [(a.quantity, a.trigger_price) for a in algos if a.order_type == "STOP_MARKET"]

    def targets(self) -> list[tuple[D, D]]:
        with self.emulator.venue.lock:
            algos = self.emulator.venue.algos.open_orders(SYMBOL)
        return sorted((a.quantity, a.trigger_price) for a in algos if a.order_type == "TAKE_PROFIT_MARKET")


def venue_rig(trading_emulator) -> Venue:
    """Return a testnet account on the emulator and its started execution loop (real reconciliation, REST polls)."""
    client = usdm_client(trading_emulator, timeout_ms=1_000)
    client.load_markets()
    broker = CcxtBroker(client, sleep=lambda s: None)
    account = Account.objects.create(name="demo", broker=Account.Broker.TESTNET, starting_balance_usdt=D("10000"),
                                     balance_usdt=D("10000"))
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol=SYMBOL, market_type="swap")
    now = ms_to_datetime(broker.server_time_ms()).replace(microsecond=0)
    # No user stream: the applier polls REST every second, as it does while the stream is stale.
    applier = StreamApplier(account=account, broker=broker, policy=StreamPolicy(poll_every_ms=1_000))
    loop = ExecutionLoop(account, broker, "engine-1", reconcile=reconciliation_run, stream=applier)
    loop.start(now)
    return Venue(trading_emulator, broker, account, instrument, loop, now)
