"""row_upsert: one statement that inserts a row or updates the one with the same unique keys."""
import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from analytics.models import Flow
from execution.models import EquityPoint
from execution.services import account_ensure
from tests.dashboard.factories import InstrumentFactory
from tradingbot.upsert import row_upsert

pytestmark = pytest.mark.django_db
TS = dt.datetime(2025, 7, 8, 12, 0, tzinfo=dt.UTC)


def test_row_upsert_inserts_then_updates_the_same_row_in_one_statement_each():
    account = account_ensure(name="paper")
    values = {"balance_usdt": Decimal("100"), "unrealized_pnl_usdt": Decimal("0"), "equity_usdt": Decimal("100")}

    with CaptureQueriesContext(connection) as queries:
        first = row_upsert(EquityPoint, keys={"account": account, "ts": TS}, values=values)
    second = row_upsert(EquityPoint, keys={"account": account, "ts": TS},
                        values={**values, "unrealized_pnl_usdt": Decimal("-2.5"), "equity_usdt": Decimal("97.5")})

    writes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    assert len(writes) == 1
    assert first.pk is not None and second.pk == first.pk
    stored = EquityPoint.objects.get()
    assert (stored.pk, stored.equity_usdt, stored.unrealized_pnl_usdt) == (first.pk, Decimal("97.5"), Decimal("-2.5"))


def test_row_upsert_with_a_value_that_cannot_be_stored_raises_and_leaves_the_transaction_usable():
    instrument = InstrumentFactory()
    with transaction.atomic():
        with pytest.raises(TypeError):
            row_upsert(Flow, keys={"instrument": instrument, "as_of": TS},
                       values={"crowd_bias": 0.1, "trap_index": 0.2, "global_risk_score": 0.3, "warnings": [],
                               "parts": {}, "inputs": {"bad": {1, 2}}})
        assert not Flow.objects.exists()        # the caller's transaction still answers


@pytest.mark.django_db(transaction=True)
def test_row_upsert_outside_a_transaction_is_the_one_statement_alone():
    account = account_ensure(name="paper")
    values = {"balance_usdt": Decimal("100"), "unrealized_pnl_usdt": Decimal("0"), "equity_usdt": Decimal("100")}

    with CaptureQueriesContext(connection) as queries:
        point = row_upsert(EquityPoint, keys={"account": account, "ts": TS}, values=values)

    # No BEGIN and COMMIT around it (bulk_create's own transaction): one statement is atomic alone.
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["INSERT"]
    assert EquityPoint.objects.get(pk=point.pk).equity_usdt == Decimal("100")
