"""The user data stream: health rules, ccxt.pro conversions, and the stream against the local emulator.

Emulator tests run UserStream on its own thread and drive StreamApplier by hand on a fake clock:
outages of 65 s and 2 h take milliseconds. Waiting for the stream thread is real (a few ms), the
time the books see is not.
"""
import socket
import time
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from decisions.models import AuditRecord
from execution.brokers.base import VenueOrder
from execution.brokers.ccxt import CcxtBroker
from execution.models import Account, Fill, Order
from execution.oms import OrderIntent, make_intent_id
from execution.orders import order_place
from execution.stream.applier import StreamApplier
from execution.stream.client import UserStream
from execution.stream.convert import balance_of, fill_of, order_of, position_of
from execution.stream.health import StreamHealth, StreamPolicy
from market.services import instrument_ensure
from tests.emulator.fixtures import usdm_client

T0 = 1_000_000_000_000
MARKET = {"id": "BTCUSDT", "symbol": "BTC/USDT:USDT", "contractSize": 1.0}


# -- StreamHealth ---------------------------------------------------------------------------------

def _live(at_ms: int = T0) -> StreamHealth:
    return StreamHealth().with_connected(at_ms, listen_key_expires_ms=at_ms + 3_600_000)


@pytest.mark.parametrize(("health", "now_ms", "stale"), [
    # never connected: poll until the socket is up (after the grace)
    (StreamHealth(), T0, True),
    # open and quiet: trusted up to 30 s after the last event or heartbeat
    (_live(), T0 + 29_999, False),
    (_live(), T0 + 30_000, True),
    (_live().with_event(T0 + 20_000), T0 + 49_999, False),
    # dropped: a blip shorter than the grace is caught up after reconnecting
    (_live().with_disconnected(T0 + 1_000), T0 + 10_999, False),
    (_live().with_disconnected(T0 + 1_000), T0 + 11_000, True),
    # the listenKey lapsed: the socket may look open, nothing will come
    (_live().with_event(T0 + 3_600_000), T0 + 3_600_000, True),
    (_live().with_event(T0 + 3_590_000, listen_key_expires_ms=T0 + 7_200_000), T0 + 3_600_000, False),
    # a tighter policy
    (StreamHealth(policy=StreamPolicy(stale_after_ms=10_000)).with_connected(T0), T0 + 10_000, True),
])
def test_stream_health_is_stale_table(health, now_ms, stale):
    assert health.is_stale(now_ms) is stale


def test_stream_health_second_disconnect_keeps_first_loss_time():
    health = _live().with_disconnected(T0 + 1_000).with_disconnected(T0 + 9_000)

    assert health.since_ms == T0 + 1_000 and health.is_stale(T0 + 11_000)


@pytest.mark.parametrize(("health", "now_ms", "due"), [
    # healthy and caught up: no polls
    (_live().with_poll("BTCUSDT", T0 + 1), T0 + 20_000, False),
    # stale: every 5 s per symbol
    (StreamHealth().with_poll("BTCUSDT", T0), T0 + 4_999, False),
    (StreamHealth().with_poll("BTCUSDT", T0), T0 + 5_000, True),
    (StreamHealth().with_poll("BTCUSDT", T0), T0 + 1, False),
    # back after a gap: one poll per symbol whose last poll predates the socket
    (StreamHealth().with_poll("BTCUSDT", T0).with_connected(T0 + 8_000), T0 + 8_000, True),
    (StreamHealth().with_poll("BTCUSDT", T0 + 6_000).with_connected(T0 + 8_000), T0 + 10_000, False),
    (StreamHealth().with_poll("BTCUSDT", T0 + 6_000).with_connected(T0 + 8_000), T0 + 11_000, True),
    (_live().with_poll("BTCUSDT", T0 + 1).with_disconnected(T0 + 5).with_connected(T0 + 9_000), T0 + 9_000, True),
    # dropped within the grace: wait for the socket
    (_live().with_poll("BTCUSDT", T0 + 1).with_disconnected(T0 + 2_000), T0 + 8_000, False),
])
def test_stream_health_poll_due_table(health, now_ms, due):
    assert health.poll_due("BTCUSDT", now_ms) is due


@pytest.mark.parametrize(("working_since_ms", "due"), [
    # orders older than the socket: their updates may have fallen into the gap
    (T0 + 7_999, True),
    # orders younger than the socket: every update of theirs was streamed
    (T0 + 8_000, False),
])
def test_stream_health_catch_up_only_for_orders_older_than_socket(working_since_ms, due):
    health = StreamHealth().with_poll("BTCUSDT", T0).with_connected(T0 + 8_000)

    assert health.poll_due("BTCUSDT", T0 + 9_000, working_since_ms) is due


def test_stream_health_poll_due_for_unpolled_symbol_while_stale():
    assert StreamHealth().with_poll("BTCUSDT", T0).poll_due("ETHUSDT", T0 + 1)


@given(silence_ms=st.integers(0, 10_000_000), connected=st.booleans())
def test_stream_health_stale_within_thirty_seconds_of_silence(silence_ms, connected):
    health = _live() if connected else _live().with_disconnected(T0)

    stale = health.is_stale(T0 + silence_ms)

    assert stale is (silence_ms >= (30_000 if connected else 10_000))


@given(steps=st.lists(st.integers(1, 4_000), min_size=1, max_size=200))
def test_stream_health_polls_while_stale_are_five_seconds_apart(steps):
    health, now_ms, polls = StreamHealth(), T0, []

    for step in steps:
        now_ms += step
        if health.poll_due("BTCUSDT", now_ms):
            health, polls = health.with_poll("BTCUSDT", now_ms), [*polls, now_ms]

    assert polls and all(later - earlier >= 5_000 for earlier, later in zip(polls, polls[1:]))
    assert now_ms - polls[-1] < 5_000


# -- conversions ----------------------------------------------------------------------------------

def _ws_order(**info) -> dict:
    base = {"X": "NEW", "o": "LIMIT", "c": "tb-a-entry", "i": 7}
    return {"id": "7", "clientOrderId": "tb-a-entry", "symbol": "BTC/USDT:USDT", "side": "buy", "type": "limit",
            "amount": 0.01, "filled": 0.004, "price": 59000.0, "status": "open", "lastUpdateTimestamp": T0,
            "info": base | info}


@pytest.mark.parametrize(("info", "status", "conditional"), [
    # ORDER_TRADE_UPDATE: Binance's order status
    ({"X": "PARTIALLY_FILLED"}, "partially_filled", False),
    ({"X": "EXPIRED_IN_MATCH"}, "expired", False),
    # ALGO_UPDATE: the algo status; FINISHED short of its quantity was cancelled in the engine
    ({"aid": 9, "X": "TRIGGERING", "o": "STOP_MARKET", "q": "0.010", "aq": "0.000"}, "triggered", True),
    ({"aid": 9, "X": "FINISHED", "o": "STOP_MARKET", "q": "0.010", "aq": "0.010"}, "filled", True),
    ({"aid": 9, "X": "FINISHED", "o": "STOP_MARKET", "q": "0.010", "aq": "0.004"}, "canceled", True),
])
def test_order_of_maps_venue_status(info, status, conditional):
    venue = order_of(_ws_order(**info), MARKET)

    assert (venue.status, venue.conditional, venue.symbol, venue.client_order_id) == (
        status, conditional, "BTCUSDT", "tb-a-entry")


def test_fill_of_takes_client_id_and_realized_pnl_from_the_event():
    trade = {"id": "11", "order": "7", "timestamp": T0, "price": 60000.0, "amount": 0.01, "takerOrMaker": "taker",
             "fee": {"cost": 0.3, "currency": "USDT"}, "symbol": "BTC/USDT:USDT",
             "info": {"c": "tb-a-entry", "rp": "1.5", "t": 11}}

    fill = fill_of(trade, MARKET)

    assert (fill.client_order_id, fill.trade_id, fill.exchange_order_id) == ("tb-a-entry", "11", "7")
    assert (fill.quantity, fill.fee_usdt, fill.realized_pnl_usdt) == (D("0.01"), D("0.3"), D("1.5"))


@pytest.mark.parametrize(("side", "contracts", "quantity"), [("long", 0.02, D("0.02")), ("short", 0.02, D("-0.02")),
                                                             ("long", 0, D("0"))])
def test_position_of_signs_quantity_and_keeps_closed(side, contracts, quantity):
    position = position_of({"side": side, "contracts": contracts, "entryPrice": 60000.0}, MARKET)

    assert (position.symbol, position.quantity) == ("BTCUSDT", quantity)


@pytest.mark.parametrize(("balance", "expected"), [
    # ACCOUNT_UPDATE names the wallet only
    ({"USDT": {"total": 9999.7, "free": None}}, (D("9999.7"), D("9999.7"))),
    ({"USDT": {"total": 9999.7, "free": 9000.0}}, (D("9999.7"), D("9000.0"))),
])
def test_balance_of_reads_usdt_wallet(balance, expected):
    found = balance_of(balance)

    assert (found.wallet_usdt, found.available_usdt) == expected


def test_balance_of_without_usdt_returns_none():
    assert balance_of({"BNB": {"total": 1.0}}) is None


# -- against the emulator -------------------------------------------------------------------------

class FakeClock:
    """Epoch ms that move only when told; callable, as UserStream's clock."""

    def __init__(self, start_ms: int):
        self.now_ms = start_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, seconds: float) -> None:
        self.now_ms += int(seconds * 1000)

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_ms / 1000, UTC)


class Rig:
    """The emulator, a REST broker, the books, and a running UserStream feeding a StreamApplier."""

    def __init__(self, emulator, dead_ws_url: str):
        self.emulator, self.dead_ws_url = emulator, dead_ws_url
        rest = usdm_client(emulator, timeout_ms=2_000)
        rest.load_markets()
        self.broker = CcxtBroker(rest, sleep=lambda s: None)
        self.account = Account.objects.create(name="demo", broker=Account.Broker.TESTNET,
                                              starting_balance_usdt=D("10000"), balance_usdt=D("10000"))
        self.instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")
        # Anchored at the venue's (wall) clock once: REST trade reads start from order creation times.
        self.clock = FakeClock(int(time.time() * 1000))
        self.applier = StreamApplier(account=self.account, broker=self.broker)
        self.kinds: list[str] = []
        self.pro = usdm_client(emulator, pro=True)
        self.stream = UserStream(self.pro, on_update=self._on_update, clock_ms=self.clock, backoff_s=0.02,
                                 max_backoff_s=0.1, heartbeat_s=0.05)

    def _on_update(self, kind, payload, received_ms) -> None:
        self.kinds.append(kind)
        self.applier.enqueue(kind, payload, received_ms)

    def place(self, side: str, type_: str = "limit", price: D | None = None, quantity: D = D("0.010")) -> Order:
        intent = OrderIntent(make_intent_id("stream", side, str(price)), "entry", self.instrument.symbol, side, type_,
                             quantity, price)
        order, _ = order_place(account=self.account, instrument=self.instrument, intent=intent, broker=self.broker,
                               reference_price=D("60000"), now=self.clock.now)
        return order

    def tick(self):
        return self.applier.tick(self.clock.now)

    def settle(self, predicate, timeout_s: float = 5.0):
        """Tick at the frozen fake time until `predicate()` holds; the stream thread needs real moments."""
        for _ in range(int(timeout_s / 0.02)):
            self.tick()
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError(f"not settled; health={self.applier.health}")

    def wait(self, predicate, timeout_s: float = 5.0) -> None:
        """Wait for the stream thread without applying anything."""
        for _ in range(int(timeout_s / 0.02)):
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError("the stream did not deliver in time")

    def outage(self) -> None:
        """Cut the user stream and keep it down: the socket drops and reconnects find nothing listening."""
        self.pro.urls["api"]["ws"]["linear"] = self.dead_ws_url
        self.emulator.drop_user_stream()
        self.settle(lambda: not self.applier.health.connected)

    def restore(self) -> None:
        self.pro.urls["api"]["ws"]["linear"] = self.emulator.ws_url
        self.settle(lambda: self.applier.health.connected)

    def polls(self) -> int:
        return len([p for p in self.emulator.params("/fapi/v1/openOrders") if p.get("symbol") == "BTCUSDT"])


@pytest.fixture
def dead_ws_url():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"ws://127.0.0.1:{port}/ws"


@pytest.fixture
def rig(trading_emulator, db, dead_ws_url):
    rig = Rig(trading_emulator, dead_ws_url)
    rig.stream.start()
    rig.settle(lambda: rig.applier.health.connected)
    yield rig
    rig.stream.stop()


def _fills(order: Order) -> list[str]:
    return list(Fill.objects.filter(order=order).values_list("trade_id", flat=True))


def _refreshed(order: Order) -> Order:
    return Order.objects.get(pk=order.pk)


def test_user_stream_books_a_venue_fill_through_the_stream(rig):
    buy = rig.place("buy", price=D("59000"))
    rig.tick()
    polls = rig.polls()

    rig.emulator.set_price("BTCUSDT", D("58900"))
    rig.settle(lambda: _refreshed(buy).status == "filled" and "BTCUSDT" in rig.applier.positions)

    assert len(_fills(buy)) == 1 and _refreshed(buy).filled_quantity == D("0.010")
    assert rig.polls() == polls and not rig.applier.health.is_stale(rig.clock.now_ms)
    assert rig.applier.positions["BTCUSDT"].quantity == D("0.010")
    assert rig.applier.balance.wallet_usdt < D("10000")


def test_user_stream_stop_closes_the_socket_and_the_thread(rig):
    rig.stream.stop()

    rig.wait(lambda: not any(rig.emulator.server.hub.clients.values()))
    assert not rig.stream.running


def test_user_stream_pings_often_enough_to_notice_a_dead_socket_within_thirty_seconds(rig):
    sockets = [c for url, c in rig.pro.clients.items() if rig.stream.listen_key in url]
    grace_ms = rig.applier.health.policy.reconnect_grace_ms

    # ccxt closes a socket whose pongs stop after at most keepAlive * (misses + 1); then the grace runs
    assert [c.keepAlive * (c.maxPingPongMisses + 1) + grace_ms <= 30_000 for c in sockets] == [True]


def test_user_stream_market_order_reply_and_stream_book_one_fill(rig):
    order = rig.place("buy", type_="market")

    rig.wait(lambda: "fill" in rig.kinds)
    report = rig.tick()

    assert report.fills == 0
    assert _refreshed(order).status == "filled" and len(_fills(order)) == 1


def test_user_stream_stop_fired_on_the_venue_books_its_fill_once(rig):
    rig.place("buy", type_="market")
    intent = OrderIntent(make_intent_id("stream", "sl"), "sl", rig.instrument.symbol, "sell", "stop_market",
                         D("0.010"), trigger_price=D("59000"), reduce_only=True)
    stop, _ = order_place(account=rig.account, instrument=rig.instrument, intent=intent, broker=rig.broker,
                          reference_price=D("60000"), now=rig.clock.now)
    rig.tick()
    polls = rig.polls()

    rig.emulator.set_price("BTCUSDT", D("58900"))
    rig.settle(lambda: _refreshed(stop).status == "filled")

    assert len(_fills(stop)) == 1 and _refreshed(stop).filled_quantity == D("0.010")
    assert rig.polls() == polls


def test_user_stream_update_older_than_the_books_keeps_the_state(rig):
    order = rig.place("buy", type_="market")
    rig.wait(lambda: "fill" in rig.kinds)
    rig.tick()
    audits = AuditRecord.objects.count()

    rig.applier.enqueue("order", VenueOrder(order.client_order_id, order.exchange_order_id, "BTCUSDT", "buy",
                                            "market", "accepted", D("0.010")), rig.clock.now_ms)
    report = rig.tick()

    assert (report.orders, _refreshed(order).status, AuditRecord.objects.count()) == (0, "filled", audits)


@pytest.mark.parametrize("first", ["stream", "poll"])
def test_user_stream_same_trade_on_stream_and_poll_booked_once(rig, first):
    buy = rig.place("buy", price=D("59000"))
    rig.tick()

    rig.emulator.set_price("BTCUSDT", D("58900"))
    if first == "stream":
        rig.settle(lambda: _fills(buy))
    else:
        rig.wait(lambda: "fill" in rig.kinds)       # queued by the stream, not yet applied
    rig.applier.poll("BTCUSDT", rig.clock.now)
    rig.tick()

    assert _refreshed(buy).status == "filled" and len(_fills(buy)) == 1


def test_user_stream_drop_of_five_seconds_caught_up_without_going_stale(rig):
    buy = rig.place("buy", price=D("59000"))
    rig.clock.advance(1)
    rig.outage()

    rig.emulator.set_price("BTCUSDT", D("58900"))       # fills while nobody listens
    stale = []
    for _ in range(5):
        rig.clock.advance(1)
        stale.append(rig.tick().stale)
    rig.restore()
    rig.settle(lambda: _refreshed(buy).status == "filled")

    assert stale == [False] * 5
    assert rig.polls() == 1 and len(_fills(buy)) == 1      # the one catch-up poll after reconnecting


def _outage_with_fill(rig, seconds: int, step_s: int = 1) -> tuple[Order, Order, list[int], list[int]]:
    """Place a buy that fills and a sell that stays working, drop the stream, run `seconds` of fake time."""
    buy, sell = rig.place("buy", price=D("59000")), rig.place("sell", price=D("61000"))
    rig.clock.advance(1)
    rig.outage()
    rig.emulator.set_price("BTCUSDT", D("58900"))
    stale_at, polled_at = [], []
    for elapsed in range(step_s, seconds + 1, step_s):
        rig.clock.advance(step_s)
        report = rig.tick()
        if report.stale:
            stale_at.append(elapsed)
        if report.polled:
            polled_at.append(elapsed)
    return buy, sell, stale_at, polled_at


def test_user_stream_drop_of_sixty_five_seconds_polls_every_five_seconds_then_resumes(rig):
    buy, sell, stale_at, polled_at = _outage_with_fill(rig, 65)

    assert stale_at[0] <= 30 and stale_at == list(range(stale_at[0], 66))
    assert polled_at == list(range(stale_at[0], 66, 5)) and rig.polls() == len(polled_at)
    assert _refreshed(buy).status == "filled" and len(_fills(buy)) == 1

    rig.clock.advance(1)
    rig.restore()
    for _ in range(10):                                  # back on the stream: one catch-up poll, then none
        rig.clock.advance(1)
        rig.tick()
    assert rig.polls() == len(polled_at) + 1 and not rig.tick().stale

    rig.emulator.set_price("BTCUSDT", D("61100"))
    rig.settle(lambda: _refreshed(sell).status == "filled")
    assert rig.polls() == len(polled_at) + 1 and len(_fills(sell)) == 1 and len(_fills(buy)) == 1


def test_user_stream_drop_of_two_hours_with_lapsed_listen_key_resumes_on_a_new_key(rig):
    old_key = rig.stream.listen_key
    buy, sell, stale_at, polled_at = _outage_with_fill(rig, 30, step_s=5)
    rig.emulator.expire_listen_key()                     # two hours without keepalive: the key is gone

    rig.clock.advance(2 * 3600 - 30)
    assert rig.tick().polled == ["BTCUSDT"]
    rig.clock.advance(3)
    assert rig.tick().polled == []                       # five seconds apart, not a backlog
    rig.restore()

    assert stale_at[0] <= 30 and polled_at == [10, 15, 20, 25, 30]
    assert rig.stream.listen_key not in (None, old_key)
    assert _refreshed(buy).status == "filled" and len(_fills(buy)) == 1
    rig.clock.advance(5)
    rig.tick()                                           # the catch-up poll
    polls = rig.polls()
    rig.emulator.set_price("BTCUSDT", D("61100"))
    rig.settle(lambda: _refreshed(sell).status == "filled")
    assert rig.polls() == polls and len(_fills(sell)) == 1


def test_user_stream_listen_key_expiry_reconnects_on_new_key_without_losing_a_fill(rig):
    buy, sell = rig.place("buy", price=D("59000")), rig.place("sell", price=D("61000"))
    old_key, sessions, polls = rig.stream.listen_key, rig.stream.sessions, rig.polls()
    rig.clock.advance(1)

    rig.emulator.expire_listen_key()
    rig.emulator.set_price("BTCUSDT", D("58900"))        # the emulator closes the socket first: the fill is unheard
    rig.wait(lambda: rig.stream.sessions > sessions)
    rig.clock.advance(5)
    rig.settle(lambda: _refreshed(buy).status == "filled")

    assert rig.stream.listen_key not in (None, old_key)
    assert len(_fills(buy)) == 1 and rig.polls() == polls + 1     # booked by the catch-up poll
    rig.clock.advance(5)
    rig.tick()
    polls = rig.polls()
    rig.emulator.set_price("BTCUSDT", D("61100"))
    rig.settle(lambda: _refreshed(sell).status == "filled")
    assert rig.polls() == polls and len(_fills(sell)) == 1
