"""The equity endpoint: the same LTTB points and drawdown as the dashboard's equity_series, cached by range."""
import datetime as dt
import math
from decimal import Decimal

import pytest

from dashboard import selectors
from execution.models import EquityPoint
from tests.dashboard.factories import AccountFactory, T0

pytestmark = pytest.mark.django_db
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def account():
    """A paper account with 2,000 minute points: a sine wave around 10,000 USDT with exact cents."""
    account = AccountFactory()
    EquityPoint.objects.bulk_create([
        EquityPoint(account=account, ts=T0 + n * MINUTE, balance_usdt=Decimal("10000"), unrealized_pnl_usdt=0,
                    equity_usdt=Decimal(f"{10000 + 500 * math.sin(n / 150) + n * 0.01:.2f}"))
        for n in range(2000)])
    return account


def test_equity_downsampled_matches_the_dashboard_selection_exactly(account, viewer_api):
    start, end = T0 + 100 * MINUTE, T0 + 1800 * MINUTE

    body = viewer_api.get("/api/equity/", {"account": account.pk, "start": start.isoformat(),
                                           "end": end.isoformat(), "max_points": 200}).json()

    expected = selectors.equity_series(account, start, end, 200)
    assert body["downsampled"] is True and len(body["points"]) == 200
    assert [p["ts"] for p in body["points"]] == [t.isoformat().replace("+00:00", "Z") for t in expected.times]
    assert [p["equity_usdt"] for p in body["points"]] == [f"{e.normalize():f}" for e in expected.equity_usdt]
    assert [p["drawdown_pct"] for p in body["points"]] == expected.drawdown_pct
    assert body["peak_equity_usdt"] == f"{expected.peak_equity_usdt.normalize():f}"
    assert (body["start"], body["end"]) == ("2024-03-01T13:40:00Z", "2024-03-02T18:00:00Z")


def test_equity_short_range_returns_every_point(account, viewer_api):
    body = viewer_api.get("/api/equity/", {"account": account.pk, "end": (T0 + 2 * MINUTE).isoformat()}).json()

    assert body["downsampled"] is False
    assert [p["equity_usdt"] for p in body["points"]] == ["10000", "10003.34", "10006.69"]
    assert body["account"] == {"id": account.pk, "name": "paper", "broker": "paper"}


def test_equity_default_account_and_max_points(account, viewer_api):
    body = viewer_api.get("/api/equity/").json()

    assert body["account"]["id"] == account.pk and len(body["points"]) == 1000


def test_equity_new_last_point_is_seen_at_once(account, viewer_api):
    viewer_api.get("/api/equity/", {"max_points": 50})
    EquityPoint.objects.create(account=account, ts=T0 + 2000 * MINUTE, balance_usdt=Decimal("1"),
                               unrealized_pnl_usdt=0, equity_usdt=Decimal("20000.01"))

    body = viewer_api.get("/api/equity/", {"max_points": 50}).json()

    assert body["points"][-1] == {"ts": "2024-03-02T21:20:00Z", "equity_usdt": "20000.01", "drawdown_pct": 0.0}
    assert body["peak_equity_usdt"] == "20000.01"


def test_equity_updated_last_point_is_seen_at_once(account, viewer_api):
    viewer_api.get("/api/equity/", {"max_points": 50})
    EquityPoint.objects.filter(account=account, ts=T0 + 1999 * MINUTE).update(equity_usdt=Decimal("9000.5"))

    body = viewer_api.get("/api/equity/", {"max_points": 50}).json()

    assert body["points"][-1]["equity_usdt"] == "9000.5"


@pytest.mark.parametrize("params, field", [
    ({"max_points": 1}, "max_points"),
    ({"max_points": 100001}, "max_points"),
    ({"max_points": "many"}, "max_points"),
    ({"account": 999999}, "account"),
    ({"start": "2024-03-02T00:00:00Z", "end": "2024-03-01T00:00:00Z"}, "end"),
    ({"start": "yesterday"}, "start"),
])
def test_equity_bad_query_is_400_naming_the_field(account, viewer_api, params, field):
    response = viewer_api.get("/api/equity/", params)

    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_equity_empty_range_is_an_empty_curve(account, viewer_api):
    body = viewer_api.get("/api/equity/", {"start": "2030-01-01T00:00:00Z"}).json()

    assert (body["points"], body["downsampled"], body["peak_equity_usdt"]) == ([], False, None)


def test_equity_without_any_account_is_404(viewer_api):
    response = viewer_api.get("/api/equity/")

    assert response.status_code == 404
    assert response.json() == {"detail": "no account exists yet"}
