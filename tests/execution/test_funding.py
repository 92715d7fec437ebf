"""Venue funding booked from the venue's income history, FIFO realised PnL of a position, venue equity points."""
from dataclasses import dataclass, field
from itertools import count
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest

from execution.brokers.base import FundingReport, VenueBalance
from execution.brokers.ccxt import CcxtBroker
from execution.emulator.rest_account import settle_funding
from execution.funding import (SINCE_OVERLAP, equity_snapshot_accounts, equity_snapshot_venue, fifo_position_realized,
                               funding_since, funding_sync, funding_sync_accounts, ms_to_utc)
from execution.models import Account, EquityPoint, Fill, FundingPayment, Order, Position
from execution.tasks import equity_snapshot_all, funding_sync_all
from market.models import Instrument
from market.services import instrument_ensure
from tests.emulator.fixtures import usdm_client

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 26, 7, 0, tzinfo=timezone.utc)
FUNDING = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass
class FakeBroker:
    """The two reads this module needs, from canned venue values; records each funding read's start."""

    reports: list[FundingReport] = field(default_factory=list)
    wallet: VenueBalance = VenueBalance(D("10000"), D("9000"))
    since_asked: list[int] = field(default_factory=list)
    name: str = "fake"

    def funding_payments(self, symbol, since_ms):
        self.since_asked.append(since_ms)
        return [r for r in self.reports if r.ts_ms >= since_ms and symbol in (None, r.symbol)]

    def balance(self):
        return self.wallet


@pytest.fixture
def account() -> Account:
    return Account.objects.create(name="demo", broker=Account.Broker.TESTNET, starting_balance_usdt=D("10000"),
                                  balance_usdt=D("10000"))


@pytest.fixture
def btc() -> Instrument:
    return instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")


def position(account, instrument, *, side="LONG", opened_at=T0, closed_at=None, **fields) -> Position:
    closed = closed_at is not None
    return Position.objects.create(
        account=account, instrument=instrument, side=side, open_key=None if closed else instrument.pk,
        status=Position.Status.CLOSED if closed else Position.Status.OPEN, quantity=D("0.010"),
        entry_price=D("60000"), stop_price=D("59000"), target_price=D("63000"), opened_at=opened_at,
        closed_at=closed_at, **fields)


def report(amount: str, ts: datetime = FUNDING, symbol: str = "BTCUSDT", venue_id: str = "8082457372019390060"):
    return FundingReport(symbol, ms(ts), D(amount), None, venue_id)


# -- funding_sync ------------------------------------------------------------------------------------

def test_funding_sync_books_payment_on_open_position_to_the_cent(account, btc):
    held = position(account, btc, realized_pnl_usdt=D("-0.30"))
    broker = FakeBroker([report("-0.06")])

    [payment] = funding_sync(account=account, broker=broker, now=FUNDING + timedelta(minutes=5))

    held.refresh_from_db()
    assert (payment.ts, payment.amount_usdt, payment.source, payment.venue_id, payment.position) == (
        FUNDING, D("-0.06"), FundingPayment.Source.VENUE, "8082457372019390060", held)
    assert (held.funding_usdt, held.realized_pnl_usdt) == (D("-0.06"), D("-0.36"))
    assert broker.since_asked == [ms(T0 - SINCE_OVERLAP)]


def test_funding_sync_rerun_books_nothing_twice(account, btc):
    held = position(account, btc)
    broker = FakeBroker([report("-0.06"), report("0.0125", FUNDING + timedelta(hours=8), venue_id="2")])
    funding_sync(account=account, broker=broker, now=FUNDING + timedelta(hours=9))

    again = funding_sync(account=account, broker=broker, now=FUNDING + timedelta(hours=9, minutes=15))

    held.refresh_from_db()
    assert again == []
    assert FundingPayment.objects.count() == 2 and held.funding_usdt == D("-0.0475")
    # the second read starts at the last booked payment, less the overlap
    assert broker.since_asked[-1] == ms(FUNDING + timedelta(hours=8) - SINCE_OVERLAP)


@pytest.mark.parametrize(("closed_at", "charged"), [
    # closed before the funding time: nothing
    (FUNDING - timedelta(seconds=1), False),
    # closed at or after it: the position paid it
    (FUNDING, True),
    (FUNDING + timedelta(minutes=3), True),
])
def test_funding_sync_closed_position_charged_only_when_held_at_funding_time(account, btc, closed_at, charged):
    closed = position(account, btc, closed_at=closed_at)

    [payment] = funding_sync(account=account, broker=FakeBroker([report("-0.06")]),
                             now=FUNDING + timedelta(minutes=5))

    closed.refresh_from_db()
    assert (payment.position, closed.funding_usdt, closed.realized_pnl_usdt) == (
        (closed, D("-0.06"), D("-0.06")) if charged else (None, D(0), D(0)))


def test_funding_sync_position_opened_after_funding_gets_nothing(account, btc):
    earlier = position(account, btc, closed_at=FUNDING - timedelta(minutes=30))
    later = position(account, btc, opened_at=FUNDING + timedelta(minutes=30))
    broker = FakeBroker([report("-0.06")])

    [payment] = funding_sync(account=account, broker=broker, now=FUNDING + timedelta(hours=1))

    assert payment.position is None
    assert [p.funding_usdt for p in Position.objects.filter(pk__in=[earlier.pk, later.pk])] == [D(0), D(0)]


def test_funding_sync_leaves_account_balance_to_reconciliation(account, btc):
    position(account, btc)

    funding_sync(account=account, broker=FakeBroker([report("-12.34")]), now=FUNDING)

    account.refresh_from_db()
    assert account.balance_usdt == D("10000")


def test_funding_sync_symbol_not_in_books_creates_instrument(account, btc):
    position(account, btc)

    [payment] = funding_sync(account=account, broker=FakeBroker([report("0.5", symbol="ETHUSDT")]), now=FUNDING)

    assert (payment.instrument.symbol, payment.position) == ("ETH/USDT:USDT", None)


def test_funding_sync_nothing_held_reads_nothing(account):
    broker = FakeBroker([report("-0.06")])

    assert funding_sync(account=account, broker=broker, now=FUNDING) == []
    assert broker.since_asked == []


def test_funding_since_recently_closed_position_still_read(account, btc):
    position(account, btc, closed_at=FUNDING + timedelta(minutes=1))

    assert funding_since(account=account, now=FUNDING + timedelta(hours=2)) == T0 - SINCE_OVERLAP
    assert funding_since(account=account, now=FUNDING + timedelta(days=2)) is None


def test_funding_sync_paper_account_refused():
    paper = Account.objects.create(name="paper", starting_balance_usdt=D(1), balance_usdt=D(1))

    with pytest.raises(ValueError, match="paper account"):
        funding_sync(account=paper, broker=FakeBroker(), now=FUNDING)


@pytest.mark.parametrize("ts_ms", [1707465600000, 1707465600001, 1795661677756])
def test_ms_to_utc_exact_to_the_millisecond(ts_ms):
    assert ms(ms_to_utc(ts_ms)) == ts_ms and ms_to_utc(ts_ms).tzinfo is timezone.utc


# -- against the emulator --------------------------------------------------------------------------

@pytest.fixture
def venue_broker(trading_emulator) -> CcxtBroker:
    client = usdm_client(trading_emulator, timeout_ms=1_000)
    client.load_markets()
    return CcxtBroker(client, sleep=lambda s: None)


def test_funding_sync_emulator_books_settled_funding_once(trading_emulator, venue_broker, account, btc):
    venue_broker.exchange.create_order("BTC/USDT:USDT", "market", "buy", 0.01)
    now = ms_to_utc(venue_broker.server_time_ms())
    held = position(account, btc, opened_at=now - timedelta(hours=2))
    funding_ms = ms(now - timedelta(hours=1))
    settle_funding(trading_emulator.venue, "BTCUSDT", D("0.0001"), D("60123.45"), funding_ms)

    booked = funding_sync(account=account, broker=venue_broker, now=now)
    again = funding_sync(account=account, broker=venue_broker, now=now)

    held.refresh_from_db()
    # 0.01 * 60123.45 * 0.0001 = 0.0601234500, paid by the long
    assert [(p.ts, p.amount_usdt) for p in booked] == [(ms_to_utc(funding_ms), D("-0.06012345"))]
    assert again == [] and held.funding_usdt == D("-0.06012345")


def test_equity_snapshot_venue_emulator_wallet_plus_unrealized(trading_emulator, venue_broker, account):
    venue_broker.exchange.create_order("BTC/USDT:USDT", "market", "buy", 0.01)
    trading_emulator.set_price("BTCUSDT", D("61000"))
    wallet = venue_broker.balance().wallet_usdt

    point = equity_snapshot_venue(account=account, broker=venue_broker, now=FUNDING)

    assert (point.balance_usdt, point.unrealized_pnl_usdt, point.equity_usdt) == (wallet, D("10"), wallet + 10)


# -- equity points and the per-account jobs --------------------------------------------------------------

def test_equity_snapshot_venue_same_minute_updates_one_point(account):
    equity_snapshot_venue(account=account, broker=FakeBroker(wallet=VenueBalance(D("100"), D("0"), D("5"))), now=T0)

    equity_snapshot_venue(account=account, broker=FakeBroker(wallet=VenueBalance(D("100"), D("0"), D("-5"))), now=T0)

    assert list(EquityPoint.objects.values_list("balance_usdt", "unrealized_pnl_usdt", "equity_usdt")) == [
        (D("100"), D("-5"), D("95"))]


def test_venue_account_jobs_one_failure_does_not_stop_the_others(account, btc):
    Account.objects.create(name="broken", broker=Account.Broker.LIVE, starting_balance_usdt=D(1), balance_usdt=D(1))
    Account.objects.create(name="paper", starting_balance_usdt=D(1), balance_usdt=D(1))
    position(account, btc)

    def factory(acc):
        if acc.name == "broken":
            raise RuntimeError("no API key")
        return FakeBroker([report("-0.06")])

    funding = funding_sync_accounts(now=FUNDING, broker_factory=factory)
    equity = equity_snapshot_accounts(now=FUNDING, broker_factory=factory)

    assert funding == {"demo": "1 booked", "broken": "failed: RuntimeError: no API key"}
    assert equity == {"demo": "10000", "broken": "failed: RuntimeError: no API key"}


@pytest.mark.parametrize("task", [funding_sync_all, equity_snapshot_all])
def test_venue_account_tasks_without_venue_accounts_say_so(task):
    assert task() == "no venue accounts"


# -- FIFO realised PnL of a position -------------------------------------------------------------------

ORDER_NUMBERS = count(1)


def fill(account, instrument, side, quantity, price, ts, fee="0") -> Fill:
    n = next(ORDER_NUMBERS)
    order = Order.objects.create(
        account=account, instrument=instrument, client_order_id=f"tb-fifo-{n}", intent_id=f"fifo{n}",
        leg="entry", side=side, type="market", quantity=D(quantity), status="filled", created_at=ts, updated_at=ts)
    return Fill.objects.create(order=order, trade_id=str(n), ts=ts, price=D(price), quantity=D(quantity),
                               fee_usdt=D(fee))


def test_fifo_position_realized_entry_fill_before_opened_at_counts(account, btc):
    fill(account, btc, "buy", "0.010", "60000", T0 - timedelta(seconds=2), fee="0.30")
    fill(account, btc, "buy", "0.010", "61000", T0 + timedelta(minutes=1), fee="0.305")
    fill(account, btc, "sell", "0.015", "62000", T0 + timedelta(minutes=30), fee="0.465")
    held = position(account, btc, opened_at=T0)

    # 0.010 * 2000 + 0.005 * 1000 = 25, less 1.07 of fees
    assert fifo_position_realized(held) == D("23.93")


def test_fifo_position_realized_earlier_round_trip_left_out(account, btc):
    fill(account, btc, "sell", "0.010", "60000", T0 - timedelta(hours=2))
    fill(account, btc, "buy", "0.010", "59000", T0 - timedelta(hours=1))        # an earlier short: +10
    fill(account, btc, "buy", "0.010", "60000", T0)
    fill(account, btc, "sell", "0.010", "59500", T0 + timedelta(hours=1))
    earlier = position(account, btc, side="SHORT", opened_at=T0 - timedelta(hours=2),
                       closed_at=T0 - timedelta(hours=1))
    later = position(account, btc, closed_at=T0 + timedelta(hours=1))

    assert (fifo_position_realized(earlier), fifo_position_realized(later)) == (D("10"), D("-5"))


def test_fifo_position_realized_without_fills_is_zero(account, btc):
    assert fifo_position_realized(position(account, btc)) == 0
