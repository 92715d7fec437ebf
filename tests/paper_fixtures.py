"""A paper account mid-trade, shared by the control tests (decisions.control and the control page)."""
from datetime import datetime, timedelta
from decimal import Decimal as D

from decisions.selectors import trading_config_get
from execution.models import Account, Order, Position
from execution.oms import OrderIntent, make_intent_id
from execution.orders import order_place
from execution.paper_venue import PaperVenue
from market.models import Candle, Instrument
from market.services import instrument_ensure


def paper_book(*, now: datetime, tag: str) -> tuple[Account, Instrument, Position, Order]:
    """Store a paper account with an open BTCUSDT long and a resting entry limit, priced near 60 000 at `now`.

    Return (account, instrument, position, entry); `tag` keys the entry's client order id. The
    closed 1 m bars before `now` price what a stop or the kill switch does to them.
    """
    account = Account.objects.create(name="paper", starting_balance_usdt=D("10000"), balance_usdt=D("10000"))
    instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
    for n in range(5, 0, -1):
        Candle.objects.create(instrument=instrument, timeframe="1m", open_time=now - timedelta(minutes=n + 1),
                              open=D("60000"), high=D("60100"), low=D("59900"), close=D("60050"), volume=D("10"))
    position = Position.objects.create(account=account, instrument=instrument, side="LONG", open_key=instrument.pk,
                                       quantity=D("0.010"), initial_quantity=D("0.010"), entry_price=D("59000"),
                                       stop_price=D("58000"), target_price=D("62000"), opened_at=now - timedelta(hours=1))
    intent = OrderIntent(make_intent_id(tag), "entry", instrument.symbol, "buy", "limit_maker", D("0.010"),
                         price=D("50000"))
    entry, _ = order_place(account=account, instrument=instrument, intent=intent, now=now - timedelta(minutes=3),
                           broker=PaperVenue(account, trading_config_get()), reference_price=D("60050"))
    assert entry.status == "accepted"
    return account, instrument, position, entry
