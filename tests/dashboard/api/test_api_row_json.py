"""List pages written by the database (dashboard.api.row_json) parse to what the serializers print.

On MariaDB every list endpoint that pages with KeysFirstPagination gets its rows as JSON text from
SQL; on SQLite the same pages go through FastListSerializer. Either way the parsed page must equal
DRF's serializer output row by row, for values of every shape: trailing zeros, microseconds, nulls,
booleans, quotes, backslashes, newlines and non-ASCII text, nested JSON.
"""
import datetime as dt
import json
from decimal import Decimal

import pytest
from django.db import connection

from analytics.models import Flow, Snapshot
from dashboard.api import serializers_market as market, serializers_trading as trading
from dashboard.api.row_json import columns_of, page_rows_json, value_sql_of
from decisions.models import Decision
from execution.models import Account, BacktestRun, Fill, Order, Position
from market.models import DerivativesSample
from tests.dashboard.api.world import world_build
from tests.dashboard.factories import DecisionFactory, SnapshotFactory, T0

pytestmark = pytest.mark.django_db
on_mariadb = pytest.mark.skipif(connection.vendor != "mysql", reason="the SQL of row_json is MariaDB's")

TRICKY_TEXT = 'He said "buy"\\ then\nsold: café ✓ \t 🚀'

# (list URL, model, serializer of its list)
ENDPOINTS = [
    ("/api/accounts/", Account, trading.AccountSerializer),
    ("/api/decisions/", Decision, trading.DecisionSerializer),
    ("/api/orders/", Order, trading.OrderSerializer),
    ("/api/fills/", Fill, trading.FillSerializer),
    ("/api/positions/", Position, trading.PositionSerializer),
    ("/api/derivatives/", DerivativesSample, market.DerivativesSampleSerializer),
    ("/api/snapshots/", Snapshot, market.SnapshotSerializer),
    ("/api/flows/", Flow, market.FlowSerializer),
    ("/api/backtests/", BacktestRun, trading.BacktestSerializer),
]


def tricky_rows_add(world) -> None:
    """Rows beside the world's whose values take the shapes a hand-written JSON printer gets wrong."""
    DecisionFactory(instrument=world.instrument, as_of=T0 + dt.timedelta(minutes=5, microseconds=250),
                    reason=TRICKY_TEXT, entry_price=Decimal("65000.1200"), quantity=Decimal("0.0010"),
                    stop_price=None, target_price=Decimal("1E+5"), confidence=0.1 + 0.2,
                    take_profits=[{"price": "65500.50", "share": "0.5"}, {"price": "66000", "share": "0.5"}],
                    rationale=[TRICKY_TEXT, {"nested": {"list": [1, 2.5, None, True], "text": "é"}}],
                    approval_note="")
    Order.objects.create(account=world.account, instrument=world.instrument, client_order_id="tb-2-sl",
                         intent_id="tb-2", leg="sl", side="sell", type="stop_market", status="new",
                         quantity=Decimal("0.0150"), trigger_price=Decimal("64000.0000000001"), reduce_only=True,
                         conditional=True, reject_reason=TRICKY_TEXT,
                         created_at=T0 + dt.timedelta(microseconds=1), updated_at=T0 + dt.timedelta(seconds=1))
    DerivativesSample.objects.create(instrument=world.instrument, kind="mark", ts=T0 + dt.timedelta(minutes=1),
                                     mark_price=Decimal("65000.10"), index_price=Decimal("64999.9"),
                                     basis=Decimal("-0.2"), open_interest=None)
    SnapshotFactory(instrument=world.instrument, as_of=T0 + dt.timedelta(minutes=5), atr=1e-7,
                    features={"fvg": [], "note": TRICKY_TEXT, "ratio": 1 / 3})
    Flow.objects.create(instrument=world.instrument, as_of=T0 + dt.timedelta(minutes=5), crowd_bias=-0.0,
                        trap_index=1e16, global_risk_score=100.0,
                        warnings=[{"name": "crowded", "detail": TRICKY_TEXT}])


@pytest.mark.parametrize("url, model, serializer", ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_every_list_page_parses_to_what_its_serializer_prints(viewer_api, url, model, serializer):
    world = world_build()
    tricky_rows_add(world)

    body = viewer_api.get(url, {"limit": 100}).json()

    assert body["count"] == model.objects.count() == len(body["results"])
    rows = model.objects.in_bulk([row["id"] for row in body["results"]])
    assert body["results"] == [dict(serializer(rows[row["id"]]).data) for row in body["results"]]


def test_decision_pages_keep_the_order_and_window_of_the_keys(viewer_api):
    world = world_build()
    tricky_rows_add(world)
    for n in range(6):
        DecisionFactory(instrument=world.instrument, as_of=T0 + dt.timedelta(hours=1, minutes=n))

    body = viewer_api.get("/api/decisions/", {"limit": 3, "offset": 2}).json()

    expected = Decision.objects.order_by("-as_of", "-pk")[2:5]
    assert [row["id"] for row in body["results"]] == [row.pk for row in expected]
    assert body["results"] == [dict(trading.DecisionSerializer(row).data) for row in expected]
    tricky = viewer_api.get("/api/decisions/", {"limit": 1, "offset": 6}).json()["results"][0]
    assert tricky["reason"] == TRICKY_TEXT and tricky["entry_price"] == "65000.12"
    assert tricky["as_of"] == "2024-03-01T12:05:00.000250Z" and tricky["stop_price"] is None


def test_the_database_writes_the_page_on_mariadb_only():
    world = world_build()
    rows = Decision.objects.order_by("-as_of")
    text = page_rows_json(rows, [world.decision.pk], trading.DecisionSerializer)

    if connection.vendor == "mysql":
        assert json.loads(text) == [dict(trading.DecisionSerializer(world.decision).data)]
    else:
        assert text is None        # the page goes through FastListSerializer
    # A serializer with a field of its own (the uploader's name) has no SQL form anywhere.
    assert columns_of(market.UploadSerializer) is None
    assert page_rows_json(rows, [world.decision.pk], market.UploadSerializer) is None


def test_columns_name_each_printed_field_with_its_kind():
    kinds = {name: kind for name, _, kind in columns_of(trading.OrderSerializer)}

    assert kinds["quantity"] == "decimal" and kinds["created_at"] == "time" and kinds["reduce_only"] == "boolean"
    assert kinds["status"] == "text" and kinds["instrument"] == "number" and kinds["config_version"] == "number"
    symbol = [(lookup, kind) for name, lookup, kind in columns_of(trading.DecisionSerializer) if name == "symbol"]
    assert symbol == [("instrument__exchange_symbol", "text")]


@on_mariadb
@pytest.mark.parametrize("kind, value, expected", [
    ("decimal", Decimal("65000.1200000000"), "65000.12"),
    ("decimal", Decimal("65000.0000000000"), "65000"),
    ("decimal", Decimal("0E-10"), "0"),
    ("decimal", Decimal("-12.5000000000"), "-12.5"),
    ("decimal", None, None),
    ("whole decimal", Decimal("650"), "650"),
    ("time", dt.datetime(2024, 3, 1, 12, 0), "2024-03-01T12:00:00Z"),
    ("time", dt.datetime(2024, 3, 1, 12, 0, 0, 1), "2024-03-01T12:00:00.000001Z"),
    ("boolean", True, True),
    ("boolean", False, False),
    ("boolean", None, None),
    ("number", 123456789012, 123456789012),
    ("number", 0.30000000000000004, 0.30000000000000004),
    ("text", TRICKY_TEXT, TRICKY_TEXT),
    ("text", "", ""),
    ("json", json.dumps({"a": [1, "é", None]}), {"a": [1, "é", None]}),
    ("json", None, None),
])
def test_each_kind_prints_as_json_the_value_parses_back_to(kind, value, expected):
    # The value as the column type holds it: DECIMAL(32, 10) as MONEY, DATETIME(6) as Django's.
    column = {"decimal": "CAST(%s AS DECIMAL(32, 10))", "whole decimal": "CAST(%s AS DECIMAL(20, 0))",
              "time": "CAST(%s AS DATETIME(6))"}.get(kind, "%s")
    sql, params = value_sql_of(kind, column, [value])
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE({sql}, 'null')", params)
        text = cursor.fetchone()[0]

    assert json.loads(text) == expected


def test_an_unknown_kind_is_refused_by_name():
    with pytest.raises(ValueError, match="'uuid'"):
        value_sql_of("uuid", "col", [])


def test_the_browsable_api_shows_a_page_written_by_the_database(viewer_api):
    world = world_build()
    world.decision.reason = "breakout above the Asian range"
    world.decision.save()

    response = viewer_api.get("/api/decisions/", HTTP_ACCEPT="text/html")

    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    assert "breakout above the Asian range" in response.content.decode()
