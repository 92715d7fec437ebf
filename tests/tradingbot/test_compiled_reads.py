"""Reads compiled once per shape answer what the ORM answers, for every new value, and read the database each time."""
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest

from tradingbot.compiled_reads import _SHAPES, rows_compiled
from market.models import Candle, EtfFlow
from market.services import instrument_ensure

pytestmark = pytest.mark.django_db
START = datetime(2025, 7, 8, 0, 0, tzinfo=UTC)
STEP = timedelta(minutes=15)


@pytest.fixture
def instruments():
    return [instrument_ensure(exchange="binanceusdm", exchange_symbol=symbol, market_type="swap")
            for symbol in ("BTCUSDT", "ETHUSDT")]


@pytest.fixture
def key(request):
    """Return a key of this test alone: a shape learnt by another test would hide the first call."""
    yield ("test", request.node.name)
    _SHAPES.pop(next((k for k in _SHAPES if k[2] == ("test", request.node.name)), None), None)


def _candles(instrument, count, close=D("100")):
    Candle.objects.bulk_create([
        Candle(instrument=instrument, timeframe="15m", open_time=START + k * STEP, open=close, high=close,
               low=close, close=close + k, volume=D("1.5"), quote_volume=D("150"))
        for k in range(count)])


def _closes(*, instrument_id: int, after: datetime, until: datetime):
    return (Candle.objects.filter(instrument_id=instrument_id, timeframe="15m", open_time__gt=after,
                                  open_time__lte=until).order_by("open_time").values_list("open_time", "close"))


def _shape(key):
    return next(shape for k, shape in _SHAPES.items() if k[2] == key)


def test_rows_compiled_each_call_binds_its_own_values(instruments, key):
    _candles(instruments[0], 10)
    _candles(instruments[1], 4, close=D("7"))
    cases = [(instruments[0], START, START + 5 * STEP), (instruments[1], START - STEP, START + 9 * STEP),
             (instruments[0], START + 8 * STEP, START + 20 * STEP), (instruments[1], START + 9 * STEP, START)]

    for instrument, after, until in cases:
        rows = rows_compiled(key, Candle, _closes, instrument_id=instrument.pk, after=after, until=until)

        assert rows == list(_closes(instrument_id=instrument.pk, after=after, until=until))
    assert _shape(key) is not None


def test_rows_compiled_later_call_is_one_query_and_builds_no_queryset(instruments, key, django_assert_num_queries):
    _candles(instruments[0], 6)
    built = []

    def counted(**values):
        built.append(values)
        return _closes(**values)

    rows_compiled(key, Candle, counted, instrument_id=instruments[0].pk, after=START, until=START + 2 * STEP)
    built.clear()
    with django_assert_num_queries(1):
        rows = rows_compiled(key, Candle, counted, instrument_id=instruments[0].pk, after=START,
                             until=START + 4 * STEP)

    assert built == []
    assert [close for _, close in rows] == [D("101"), D("102"), D("103"), D("104")]


def test_rows_compiled_sees_a_write_between_calls(instruments, key):
    values = dict(instrument_id=instruments[0].pk, after=START - STEP, until=START + 10 * STEP)
    assert rows_compiled(key, Candle, _closes, **values) == []

    _candles(instruments[0], 3)
    Candle.objects.filter(instrument=instruments[0], open_time=START).update(close=D("55.5"))

    assert [close for _, close in rows_compiled(key, Candle, _closes, **values)] == [D("55.5"), D("101"), D("102")]


def test_rows_compiled_equal_values_on_the_first_call_still_bind_apart(instruments, key):
    _candles(instruments[0], 6)
    rows_compiled(key, Candle, _closes, instrument_id=instruments[0].pk, after=START, until=START)

    rows = rows_compiled(key, Candle, _closes, instrument_id=instruments[0].pk, after=START, until=START + 3 * STEP)

    assert len(rows) == 3


def _closes_derived(*, instrument_id: int, until: datetime):
    # The lower bound derived from a value: not a parameter the value binds.
    return _closes(instrument_id=instrument_id, after=until - 2 * STEP, until=until)


def _closes_sliced(*, instrument_id: int, count: int):
    return (Candle.objects.filter(instrument_id=instrument_id).order_by("open_time")
            .values_list("open_time", "close")[:count])


def _flows_since_day_of(*, asset: str, moment: datetime):
    return EtfFlow.objects.filter(asset=asset, date__gte=moment.date()).order_by("date").values_list("date", "fund")


@pytest.mark.parametrize(("build", "first", "second"), [
    # A bound computed from a value.
    (_closes_derived, {"until": START + 3 * STEP}, {"until": START + 5 * STEP}),
    # A value in a slice: it is in the SQL text, not a parameter.
    (_closes_sliced, {"count": 2}, {"count": 4}),
], ids=["derived", "sliced"])
def test_rows_compiled_value_not_a_plain_parameter_is_read_through_the_orm(instruments, key, build, first,
                                                                          second):
    _candles(instruments[0], 8)

    rows_compiled(key, Candle, build, instrument_id=instruments[0].pk, **first)
    rows = rows_compiled(key, Candle, build, instrument_id=instruments[0].pk, **second)

    assert _shape(key) is None
    assert rows == list(build(instrument_id=instruments[0].pk, **second))


def test_rows_compiled_date_of_a_datetime_value_is_read_through_the_orm(key):
    EtfFlow.objects.create(asset="BTC", fund="IBIT", date=date(2025, 7, 7), net_flow_usd=D("1.00"), known_at=START)
    EtfFlow.objects.create(asset="BTC", fund="FBTC", date=date(2025, 7, 9), net_flow_usd=D("2.00"), known_at=START)

    rows_compiled(key, EtfFlow, _flows_since_day_of, asset="BTC", moment=START)
    rows = rows_compiled(key, EtfFlow, _flows_since_day_of, asset="BTC", moment=START + timedelta(days=1))

    assert _shape(key) is None
    assert rows == [(date(2025, 7, 9), "FBTC")]


def test_models_compiled_makes_the_instances_the_queryset_makes_and_sees_a_write():
    from decisions.models import AuditHead
    from tradingbot.compiled_reads import models_compiled

    def heads(*, pk: int):
        return AuditHead.objects.filter(pk=pk)

    first, = models_compiled("test heads", AuditHead, heads, pk=1)
    AuditHead.objects.filter(pk=1).update(seq=first.seq + 5)
    again, = models_compiled("test heads", AuditHead, heads, pk=1)

    expected = AuditHead.objects.get(pk=1)
    assert vars(again) | {"_state": None} == vars(expected) | {"_state": None} and again.seq == first.seq + 5
    assert (again._state.adding, again._state.db) == (expected._state.adding, expected._state.db)
