"""The API's fast paths print what DRF's serializers and JSONRenderer print, byte for byte.

Candle pages come as JSON text (from MariaDB's SQL, or Python elsewhere: this file runs on both),
list pages are read as dicts of columns, equity points are rendered once per curve, and a list
without filter parameters skips the FilterSet. Each is checked against the ordinary DRF path.
"""
import datetime as dt
import json
import math
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.renderers import JSONRenderer

from dashboard import equity_curve
from dashboard.api import filters, serializers_market as market, serializers_trading as trading
from dashboard.api.candle_rows import candle_rows_json
from dashboard.api.fields import plain, value_lookups
from dashboard.api.rendering import RawJSON, SplicingJSONRenderer
from dashboard.api.views_equity import points_json
from decisions.models import Decision
from execution.models import EquityPoint
from market.models import Candle
from tests.dashboard.factories import AccountFactory, CandleFactory, DecisionFactory, InstrumentFactory, T0

pytestmark = pytest.mark.django_db
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def candles():
    """Candles whose columns take every shape: whole, trailing zeros, tiny, 32 digits, null, microseconds."""
    btc = InstrumentFactory(data_source="exchange")
    shapes = [
        dict(open=Decimal("65000"), volume=Decimal("12.5")),
        dict(open=Decimal("65000.1200"), high=Decimal("65100.0000000001"), volume=Decimal("0"),
             quote_volume=Decimal("0.0000000100"), trades=0, taker_buy_base=Decimal("1000"),
             taker_buy_quote=Decimal("10.10")),
        dict(low=Decimal("0.0000000001"), close=Decimal("0.1"), volume=Decimal("1234567890123456789012.1234567891"),
             trades=123456789012, open_time=T0 + 2 * MINUTE + dt.timedelta(microseconds=250)),
        dict(open=Decimal("100"), high=Decimal("1000000"), low=Decimal("10"), close=Decimal("100.5"),
             volume=Decimal("100.000"), quote_volume=Decimal("1E+3")),
    ]
    for n, shape in enumerate(shapes):
        CandleFactory(instrument=btc, open_time=shape.pop("open_time", T0 + n * MINUTE), **shape)
    return Candle.objects.filter(instrument=btc, timeframe="1m").order_by("open_time")


def serializer_rows(queryset) -> list[dict]:
    # One row at a time goes field by field through DRF (DecimalText, DateTimeField): the reference.
    return [dict(market.CandleSerializer(candle).data) for candle in queryset]


def test_candle_rows_json_is_what_the_serializer_and_renderer_print(candles):
    raw = candle_rows_json(candles, 0, 10)

    assert json.loads(raw.text) == serializer_rows(candles)
    assert raw.text.encode() == JSONRenderer().render(serializer_rows(candles))
    assert json.loads(raw.text)[2]["open_time"] == "2024-03-01T12:02:00.000250Z"
    if connection.vendor == "mysql":
        # SQLite keeps a decimal column as a float (15 digits); MariaDB's DECIMAL(32, 10) keeps all.
        assert json.loads(raw.text)[2]["volume"] == "1234567890123456789012.1234567891"


def test_candle_rows_json_reads_the_window_and_the_order_it_is_given(candles):
    newest_first = candles.order_by("-open_time")

    assert json.loads(candle_rows_json(newest_first, 1, 2).text) == serializer_rows(newest_first)[1:3]
    assert candle_rows_json(candles, 0, 0).text == "[]"


def test_candles_endpoint_bytes_equal_drf_rendering_of_the_serializer(candles, viewer_api):
    response = viewer_api.get("/api/candles/", {"symbol": "BTCUSDT", "timeframe": "1m", "limit": 2, "offset": 1})

    expected = {"count": 4, "next": "http://testserver/api/candles/?limit=2&offset=3&symbol=BTCUSDT&timeframe=1m",
                "previous": "http://testserver/api/candles/?limit=2&symbol=BTCUSDT&timeframe=1m",
                "results": serializer_rows(candles)[1:3]}
    assert response.status_code == 200
    assert response.content == JSONRenderer().render(expected)


def _counted(viewer_api, params: dict) -> tuple[dict, bool]:
    """The candles endpoint's answer and whether it ran a COUNT query."""
    with CaptureQueriesContext(connection) as queries:
        body = viewer_api.get("/api/candles/", {"symbol": "BTCUSDT", "timeframe": "1m", **params}).json()
    return body, any("COUNT(" in q["sql"].upper() for q in queries.captured_queries)


@pytest.mark.parametrize("params, count, rows, counted", [
    ({"limit": 10}, 4, 4, False),                       # the whole range fits: offset + rows is the count
    ({"limit": 4}, 4, 4, False),                        # exactly: the row past the page is not there
    ({"limit": 2, "offset": 3}, 4, 1, False),           # the last page
    ({"limit": 3}, 4, 3, True),                         # more rows follow: counted
    ({"limit": 2, "offset": 9}, 4, 0, True),            # past the end: counted, empty
    ({"limit": 2, "start": "2030-01-01T00:00:00Z"}, 0, 0, False),   # nothing in range
])
def test_candle_pages_reaching_the_end_of_the_range_need_no_count(candles, viewer_api, params, count, rows, counted):
    body, ran_count = _counted(viewer_api, params)

    assert (body["count"], len(body["results"]), ran_count) == (count, rows, counted)
    assert (body["next"] is None) == (params.get("offset", 0) + params["limit"] >= count)


def test_candles_browsable_api_shows_the_rows(candles, viewer_api):
    response = viewer_api.get("/api/candles/", {"symbol": "BTCUSDT", "timeframe": "1m"}, HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert "65000.12" in response.content.decode()


@pytest.mark.parametrize("text", ["1234567890123456789012.1234567891", "0.0000000001", "65000", "-12.5", "0"])
def test_plain_keeps_every_digit(text):
    # Decimal's default context rounds normalize() to 28 digits; a DECIMAL(32, 10) holds 32.
    assert plain(Decimal(text)) == text
    assert plain(Decimal(text + "000")) == text if "." in text else True


def test_splicing_renderer_writes_the_bytes_json_renderer_writes():
    rows = [{"a": "1", "b": None, "c": 0.25, "d": "ünïcode \u2028"}]
    data = {"count": 1, "next": None, "results": rows, "note": "raw-json look-alike \x00raw-json-"}
    raw = RawJSON(JSONRenderer().render(rows).decode())

    assert SplicingJSONRenderer().render({**data, "results": raw}) == JSONRenderer().render(data)
    indented = SplicingJSONRenderer().render({**data, "results": raw}, renderer_context={"indent": 4})
    assert indented == JSONRenderer().render(data, renderer_context={"indent": 4})


def test_list_pages_are_read_as_dicts_and_print_as_the_serializer_does(viewer_api):
    btc = InstrumentFactory(data_source="exchange")
    for n in range(3):
        DecisionFactory(instrument=btc, as_of=T0 + n * MINUTE, entry_price=Decimal("65000.50"),
                        quantity=Decimal("0.0150"), take_profits=[{"price": "65500", "share": "1"}],
                        rationale=[{"name": "trend", "value": 0.5}], confidence=0.75)

    body = viewer_api.get("/api/decisions/", {"limit": 2, "offset": 1}).json()

    page = Decision.objects.order_by("-as_of", "-pk")[1:3]
    assert value_lookups(trading.DecisionSerializer) is not None
    assert body["results"] == [dict(trading.DecisionSerializer(row).data) for row in page]
    assert body["results"][0]["symbol"] == "BTCUSDT" and body["results"][0]["entry_price"] == "65000.5"


def test_serializers_with_fields_of_their_own_are_read_as_instances():
    # created_by prints the user's name: a dict of columns only holds the id.
    assert value_lookups(market.SentimentSerializer) is None
    assert value_lookups(market.UploadSerializer) is None


def test_list_without_filter_parameters_does_not_build_the_filterset(viewer_api, monkeypatch):
    btc = InstrumentFactory(data_source="exchange")
    DecisionFactory(instrument=btc, as_of=T0, outcome="flat", action="FLAT")
    DecisionFactory(instrument=btc, as_of=T0 + MINUTE, outcome="blocked", action="LONG")
    built = []
    real_init = filters.DecisionFilter.__init__
    monkeypatch.setattr(filters.DecisionFilter, "__init__",
                        lambda self, *a, **kw: built.append(1) or real_init(self, *a, **kw))

    everything = viewer_api.get("/api/decisions/", {"limit": 10}).json()
    assert built == []
    blocked = viewer_api.get("/api/decisions/", {"outcome": "blocked"}).json()
    assert built == [1]
    assert [r["outcome"] for r in everything["results"]] == ["blocked", "flat"]
    assert [r["outcome"] for r in blocked["results"]] == ["blocked"]


def test_equity_points_are_rendered_once_per_curve_and_print_as_json_renderer_does(viewer_api):
    equity_curve.cache_clear()
    account = AccountFactory()
    EquityPoint.objects.bulk_create([
        EquityPoint(account=account, ts=T0 + n * MINUTE, balance_usdt=Decimal("10000"), unrealized_pnl_usdt=0,
                    equity_usdt=Decimal(f"{10000 + 100 * math.sin(n / 20):.2f}")) for n in range(300)])

    response = viewer_api.get("/api/equity/", {"account": account.pk, "max_points": 50})

    curve = equity_curve.equity_curve(account, None, None, 50)
    expected = {"account": {"id": account.pk, "name": account.name, "broker": account.broker}, "start": None,
                "end": None, "downsampled": True, "peak_equity_usdt": plain(curve.series.peak_equity_usdt),
                "points": curve.points}
    assert response.content == JSONRenderer().render(expected)
    assert points_json(curve) is points_json(curve)
    equity_curve.cache_clear()
