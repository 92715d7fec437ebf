"""The live cycle's reads: open positions read once while nothing writes them and again after every write;
the active instruments compiled.

The cycle runs outside a transaction (the engine's autocommit), so these tests commit for real.
"""
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from decisions.models import Decision
from execution import engine
from execution.engine import cycle_run
from execution.models import Account, EquityPoint, Position
from execution.paper_venue import PaperVenue
from execution.selectors import position_get_open, positions_open, positions_remembered
from execution.services import position_open
from market.models import Candle, Instrument
from market.services import instrument_ensure
from tests.execution.live_cycle_fixtures import market  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)       # a 15m boundary, hours from a funding time
M15 = timedelta(minutes=15)


def _bar(instrument, open_time, h="60100", c="60050"):
    Candle.objects.create(instrument=instrument, timeframe="15m", open_time=open_time, open=D("60000"), high=D(h),
                          low=D("59900"), close=D(c), volume=D("10"))


def _entered(account, instrument, config, now=NOW) -> Position:
    decision = Decision.objects.create(
        instrument=instrument, timeframe="15m", as_of=now, action="LONG", mode="ON", outcome="executed",
        entry_price=D("60000"), stop_price=D("59000"), target_price=D("61000"), quantity=D("0.010"),
        take_profits=[{"price": "61000", "share": "1"}], reason="test")
    return position_open(decision=decision, account=account, broker=PaperVenue(account, config), now=now,
                         reference_price=D("60000"), config=config)


def _position_reads(queries: CaptureQueriesContext) -> int:
    """Return the reads whose rows are positions (not a subquery of another table's read)."""
    return sum(1 for q in queries.captured_queries
               if q["sql"].replace('"', "`").startswith("SELECT `execution_position`."))


def _described(positions: list[Position]) -> list[tuple]:
    return [(p.pk, p.instrument.exchange_symbol, p.status, p.quantity, p.stop_price, p.take_profits)
            for p in positions]


# --- positions_remembered ---------------------------------------------------------------------

def test_positions_remembered_without_writes_reads_once_and_answers_the_same(market):
    account, instrument, config = market
    _entered(account, instrument, config)

    with positions_remembered(), CaptureQueriesContext(connection) as queries:
        first, second = positions_open(account), positions_open(account)
        of_instrument = position_get_open(account=account, instrument=instrument)

    assert _position_reads(queries) == 1
    assert _described(first) == _described(second) == _described(positions_open(account))
    assert of_instrument.pk == first[0].pk and of_instrument.instrument == instrument


def test_positions_remembered_position_opened_between_reads_is_seen(market):
    account, instrument, config = market

    with positions_remembered():
        before = positions_open(account)
        _entered(account, instrument, config)
        after = positions_open(account)

    assert before == [] and [p.instrument_id for p in after] == [instrument.pk]


def test_positions_remembered_update_between_reads_is_seen(market):
    account, instrument, config = market
    position = _entered(account, instrument, config)

    with positions_remembered():
        positions_open(account)
        Position.objects.filter(pk=position.pk).update(stop_price=D("59500"))
        moved = positions_open(account)
        position.status, position.open_key, position.closed_at = Position.Status.CLOSED, None, NOW
        position.save()
        closed = positions_open(account)

    assert moved[0].stop_price == D("59500")
    assert closed == [] and position_get_open(account=account, instrument=instrument) is None


def test_positions_remembered_answers_share_no_ladder(market):
    account, instrument, config = market
    stored = _entered(account, instrument, config).take_profits

    with positions_remembered():
        positions_open(account)[0].take_profits[0]["price"] = "1"     # changed in memory, never saved
        again = positions_open(account)

    assert again[0].take_profits == stored and stored[0]["price"] == "61000"


def test_positions_remembered_inside_a_transaction_reads_every_time(market):
    account, instrument, config = market
    _entered(account, instrument, config)

    with positions_remembered(), CaptureQueriesContext(connection) as queries:
        with transaction.atomic():
            positions_open(account)
            positions_open(account)
        positions_open(account)        # what the rolled-back or committed block read is not kept

    assert _position_reads(queries) == 3


def test_positions_remembered_read_in_a_rolled_back_transaction_is_not_kept(market):
    account, instrument, config = market

    with positions_remembered():
        try:
            with transaction.atomic():
                _entered(account, instrument, config)
                inside = positions_open(account)
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        after = positions_open(account)

    assert len(inside) == 1 and after == []


# --- the cycle --------------------------------------------------------------------------------

def test_cycle_quiet_without_positions_reads_them_twice(market, monkeypatch):
    account, instrument, _config = market
    _bar(instrument, NOW)
    seen = []
    monkeypatch.setattr(engine, "decision_run", lambda **kw: seen.append(positions_open(kw["account"])))

    with CaptureQueriesContext(connection) as queries:
        cycle_run(now=NOW + M15, decide=True)

    # The exits' read answers the decision's (nothing wrote positions); the equity point reads afresh.
    assert _position_reads(queries) == 2
    assert seen == [[]] and EquityPoint.objects.get(ts=NOW + M15).unrealized_pnl_usdt == 0


def test_cycle_position_closed_by_another_process_during_the_cycle_is_not_counted_twice(market, monkeypatch):
    account, instrument, config = market
    position = _entered(account, instrument, config)
    _bar(instrument, NOW)
    pnl = (D("60050") - position.entry_price) * position.quantity

    def kill_switch(**kw):
        assert len(positions_open(kw["account"])) == 1      # the decision's read, as decision_run makes it
        # Then a web process closes the position at the last close and books its PnL, on its own connection.
        def close():
            Position.objects.filter(pk=position.pk).update(status=Position.Status.CLOSED, open_key=None,
                                                           closed_at=NOW + M15)
            Account.objects.filter(pk=account.pk).update(balance_usdt=F("balance_usdt") + pnl)
            connection.close()
        web = threading.Thread(target=close)
        web.start()
        web.join()
    monkeypatch.setattr(engine, "decision_run", kill_switch)
    balance = Account.objects.get(pk=account.pk).balance_usdt

    cycle_run(now=NOW + M15, decide=True)

    point = EquityPoint.objects.get(ts=NOW + M15)
    # The balance has the close's PnL, so the closed position's PnL is not added again as unrealised.
    assert (point.balance_usdt, point.unrealized_pnl_usdt) == (balance + pnl, 0)
    assert point.equity_usdt == balance + pnl


def test_cycle_quiet_with_an_open_position_reads_again_after_the_exits_mark_their_progress(market):
    account, instrument, config = market
    _entered(account, instrument, config)
    _bar(instrument, NOW)

    with CaptureQueriesContext(connection) as queries:
        cycle_run(now=NOW + M15, decide=False)

    # The exits read it and write how far they checked; the equity point reads it afresh.
    position = Position.objects.get()
    assert position.exits_checked_until == NOW
    assert _position_reads(queries) == 2
    assert (EquityPoint.objects.get(ts=NOW + M15).unrealized_pnl_usdt
            == (D("60050") - position.entry_price) * position.quantity)


def test_cycle_position_opened_by_the_decision_reaches_the_equity_point(market, monkeypatch):
    account, instrument, config = market
    _bar(instrument, NOW)
    seen = []

    def enter(**kw):
        seen.append(positions_open(kw["account"]))     # the decision's read, after the exits' one
        return _entered(kw["account"], instrument, config, now=kw["now"])
    monkeypatch.setattr(engine, "decision_run", enter)

    cycle_run(now=NOW + M15, decide=True)

    position = Position.objects.get()
    point = EquityPoint.objects.get(ts=NOW + M15)
    assert seen == [[]]
    assert point.unrealized_pnl_usdt == (D("60050") - position.entry_price) * position.quantity != 0


def test_cycle_position_closed_by_the_exits_is_gone_for_the_decision_and_the_equity_point(market, monkeypatch):
    account, instrument, config = market
    _entered(account, instrument, config)
    _bar(instrument, NOW, h="61500", c="61400")      # reaches the target
    seen = []
    monkeypatch.setattr(engine, "decision_run", lambda **kw: seen.append(positions_open(kw["account"])))

    result = cycle_run(now=NOW + M15, decide=True)

    assert result.exits == 1 and seen == [[]]
    assert EquityPoint.objects.get(ts=NOW + M15).unrealized_pnl_usdt == 0


def test_instruments_active_compiled_equals_the_orm_read(market):
    _account, instrument, _config = market
    instrument_ensure(exchange="binanceusdm", exchange_symbol="ETHUSDT", market_type="swap")   # not active
    second = instrument_ensure(exchange="binanceusdm", exchange_symbol="SOLUSDT", market_type="swap")
    second.is_active = True
    second.save()

    found = engine._instruments_active()

    expected = list(Instrument.objects.filter(is_active=True).order_by("pk"))
    assert [i.pk for i in found] == [instrument.pk, second.pk] == [i.pk for i in expected]
    assert [vars(i) | {"_state": None} for i in found] == [vars(i) | {"_state": None} for i in expected]
    assert all(not i._state.adding for i in found)
