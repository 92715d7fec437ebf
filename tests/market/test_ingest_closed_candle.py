"""A closed candle written outside a transaction: one guarded INSERT when it is the newest bar, else the
transactional path, with the same counts, revisions and errors."""
from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd
import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from market.ingest import candle_series_touch, candles_upsert
from market.models import Candle, CandleSeries
from market.services import instrument_ensure

# Outside a transaction is the case under test, so no test-wide atomic block.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def instrument():
    return instrument_ensure(exchange="binanceusdm", exchange_symbol="BTCUSDT", market_type="swap")


def _bars(*minutes, close="1.5", high="2"):
    return pd.DataFrame({"open_time_ms": [m * 60_000 for m in minutes], "open": "1", "high": high, "low": "1",
                         "close": close, "volume": "3"})


def _revision(instrument):
    return CandleSeries.objects.get(instrument=instrument, timeframe="1m").revision


def _stored_with_revision(instrument, *minutes):
    candles_upsert(instrument_id=instrument.pk, timeframe="1m", frame=_bars(*minutes))
    candle_series_touch(instrument_id=instrument.pk, timeframe="1m")
    return _revision(instrument)


def _is_guarded_insert(sql: str) -> bool:
    return sql.startswith("INSERT") and "NOT EXISTS" in sql


def test_candles_upsert_newest_closed_candle_is_one_insert_stored_as_written(instrument):
    revision = _stored_with_revision(instrument, 0, 1)

    with CaptureQueriesContext(connection) as queries:
        gained = candles_upsert(instrument_id=instrument.pk, timeframe="1m",
                                frame=_bars(2, close="108989.40").assign(low=["1e-05"]))

    assert gained == 1
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["INSERT"]
    stored = Candle.objects.get(open_time=datetime(1970, 1, 1, 0, 2, tzinfo=UTC))
    assert (stored.close, stored.low, stored.trades) == (Decimal("108989.40"), Decimal("0.00001"), None)
    assert _revision(instrument) == revision


def test_candles_upsert_closed_candle_behind_the_newest_replaces_the_revision(instrument):
    revision = _stored_with_revision(instrument, 0, 2)

    gained = candles_upsert(instrument_id=instrument.pk, timeframe="1m", frame=_bars(1))

    assert gained == 1
    assert Candle.objects.count() == 3
    assert _revision(instrument) != revision


def test_candles_upsert_stored_closed_candle_again_keeps_or_replaces_the_revision(instrument):
    revision = _stored_with_revision(instrument, 0)

    same = candles_upsert(instrument_id=instrument.pk, timeframe="1m", frame=_bars(0))
    kept = _revision(instrument)
    changed = candles_upsert(instrument_id=instrument.pk, timeframe="1m", frame=_bars(0, close="1.75"))

    assert (same, changed) == (0, 0)
    assert kept == revision
    assert _revision(instrument) != revision
    assert Candle.objects.get().close == Decimal("1.75")


def test_candles_upsert_closed_candle_another_writer_stored_first_is_overwritten_and_not_counted(instrument):
    revision = _stored_with_revision(instrument, 0)
    theirs = []

    def another_writer_first(execute, sql, params, many, context):
        if _is_guarded_insert(sql) and not theirs:
            theirs.append(Candle.objects.create(instrument=instrument, timeframe="1m", open=1, high=2, low=1, close=9,
                                                volume=3, open_time=datetime(1970, 1, 1, 0, 1, tzinfo=UTC)))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(another_writer_first):
        gained = candles_upsert(instrument_id=instrument.pk, timeframe="1m", frame=_bars(1, close="1.25"))

    assert theirs and gained == 0
    assert Candle.objects.get(pk=theirs[0].pk).close == Decimal("1.25")
    assert _revision(instrument) != revision


def test_candles_upsert_closed_candle_whose_insert_meets_a_concurrent_insert_is_stored_by_the_transaction(instrument):
    # The unique key refused the row mid-statement (another writer's insert of the same bar, which
    # then rolled back): the statement wrote nothing, so the transactional path stores the bar.
    _stored_with_revision(instrument, 0)

    def concurrent_insert(execute, sql, params, many, context):
        if _is_guarded_insert(sql):
            raise IntegrityError("duplicate entry")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(concurrent_insert):
        gained = candles_upsert(instrument_id=instrument.pk, timeframe="1m", frame=_bars(1))

    assert gained == 1
    assert Candle.objects.count() == 2


def test_candles_upsert_closed_candle_breaking_a_constraint_raises_and_writes_nothing(instrument):
    _stored_with_revision(instrument, 0)

    with pytest.raises(IntegrityError):
        candles_upsert(instrument_id=instrument.pk, timeframe="1m", frame=_bars(1, high="0.5"))

    assert Candle.objects.count() == 1


def test_candles_upsert_closed_candle_with_a_non_number_raises_before_any_statement(instrument):
    with CaptureQueriesContext(connection) as queries, pytest.raises(ValueError, match="column 'close': '1,5'"):
        candles_upsert(instrument_id=instrument.pk, timeframe="1m", frame=_bars(0, close="1,5"))

    assert queries.captured_queries == []
    assert not Candle.objects.exists()


def test_candles_upsert_closed_candle_inside_a_transaction_reads_the_newest_first(instrument):
    _stored_with_revision(instrument, 0)

    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        gained = candles_upsert(instrument_id=instrument.pk, timeframe="1m", frame=_bars(1))

    assert gained == 1
    statements = [q["sql"] for q in queries.captured_queries]
    first_insert = next(k for k, sql in enumerate(statements) if "INSERT INTO" in sql)
    assert any(sql.startswith("SELECT") for sql in statements[:first_insert])
    assert not any(_is_guarded_insert(sql) for sql in statements)


def test_candles_upsert_closed_candle_outside_years_1_to_9999_raises_before_any_statement(instrument):
    frame = _bars(0).assign(open_time_ms=[253_402_300_800_000])      # 10000-01-01

    with CaptureQueriesContext(connection) as queries, pytest.raises(ValueError, match="year 10000 is out of range"):
        candles_upsert(instrument_id=instrument.pk, timeframe="1m", frame=frame)

    assert queries.captured_queries == []
