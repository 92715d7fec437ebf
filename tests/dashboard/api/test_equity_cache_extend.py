"""The kept equity curve grows by the new points only, and answers byte for byte as a cold computation."""
import datetime as dt
import math
from decimal import Decimal

import pytest

from dashboard import equity_curve as equity
from execution.models import EquityPoint
from tests.dashboard.factories import AccountFactory, T0

pytestmark = pytest.mark.django_db
MINUTE = dt.timedelta(minutes=1)
POINTS = 2000
GAP = 1200          # the minute missing from the fixture's series, for a late insert


@pytest.fixture
def account():
    """A paper account with minute points (one missing): a sine wave around 10,000 USDT with exact cents."""
    account = AccountFactory()
    EquityPoint.objects.bulk_create([point(account, n) for n in range(POINTS) if n != GAP])
    return account


@pytest.fixture
def reads(monkeypatch):
    """Record the (start, end) of every float read of the equity points."""
    calls = []
    real = equity._floats

    def spy(account, start, end):
        calls.append((start, end))
        return real(account, start, end)

    monkeypatch.setattr(equity, "_floats", spy)
    return calls


def point(account, n, value=None):
    equity_usdt = value if value is not None else Decimal(f"{10000 + 500 * math.sin(n / 150) + n * 0.01:.2f}")
    return EquityPoint(account=account, ts=T0 + n * MINUTE, balance_usdt=Decimal("10000"), unrealized_pnl_usdt=0,
                       equity_usdt=equity_usdt)


def cold(viewer_api, params) -> bytes:
    equity.cache_clear()
    return viewer_api.get("/api/equity/", params).content


RANGES = [
    # the whole series
    {"max_points": 200},
    # a start inside the series: the peak before it counts in the drawdown
    {"start": (T0 + 300 * MINUTE).isoformat(), "max_points": 150},
    # an end after the newest point, so new points fall inside
    {"end": (T0 + 5000 * MINUTE).isoformat(), "max_points": 100},
]


@pytest.mark.parametrize("params", RANGES)
def test_equity_new_points_and_revised_last_point_read_only_the_tail_and_equal_a_cold_computation(
        account, viewer_api, reads, params):
    viewer_api.get("/api/equity/", params)
    EquityPoint.objects.filter(account=account, ts=T0 + (POINTS - 1) * MINUTE).update(equity_usdt=Decimal("9876.54"))
    EquityPoint.objects.bulk_create([point(account, n) for n in range(POINTS, POINTS + 3)])
    reads.clear()

    extended = viewer_api.get("/api/equity/", params)

    assert reads == [(T0 + (POINTS - 1) * MINUTE, params.get("end") and T0 + 5000 * MINUTE)]
    assert extended.json()["points"][-1]["ts"] == "2024-03-02T21:22:00Z"
    assert extended.content == cold(viewer_api, params)


@pytest.mark.parametrize("params", RANGES)
def test_equity_successive_new_points_each_read_only_the_tail(account, viewer_api, reads, params):
    viewer_api.get("/api/equity/", params)
    reads.clear()

    for n in range(POINTS, POINTS + 4):
        point(account, n).save()
        body = viewer_api.get("/api/equity/", params)

    end = params.get("end") and T0 + 5000 * MINUTE
    assert reads == [(T0 + n * MINUTE, end) for n in range(POINTS - 1, POINTS + 3)]
    assert body.content == cold(viewer_api, params)


def test_equity_revision_of_the_newest_point_alone_is_spliced_in(account, viewer_api, reads):
    viewer_api.get("/api/equity/", {"max_points": 2500})
    EquityPoint.objects.filter(account=account, ts=T0 + (POINTS - 1) * MINUTE).update(equity_usdt=Decimal("20000.5"))
    reads.clear()

    body = viewer_api.get("/api/equity/", {"max_points": 2500})

    assert reads == [(T0 + (POINTS - 1) * MINUTE, None)]
    assert body.json()["points"][-1] == {"ts": "2024-03-02T21:19:00Z", "equity_usdt": "20000.5", "drawdown_pct": 0.0}
    assert body.content == cold(viewer_api, {"max_points": 2500})


def rewrite_value(account):
    EquityPoint.objects.filter(account=account, ts=T0 + 700 * MINUTE).update(equity_usdt=Decimal("9500.01"))


def insert_missing(account):
    point(account, GAP, Decimal("12000")).save()


def delete_older(account):
    EquityPoint.objects.filter(account=account, ts=T0 + 900 * MINUTE).delete()


def raise_before_start(account):
    EquityPoint.objects.filter(account=account, ts=T0 + 10 * MINUTE).update(equity_usdt=Decimal("30000"))


@pytest.mark.parametrize("rewrite", [rewrite_value, insert_missing, delete_older, raise_before_start])
def test_equity_rewritten_older_point_reads_the_range_in_full_and_equals_a_cold_computation(
        account, viewer_api, reads, rewrite):
    params = {"start": (T0 + 300 * MINUTE).isoformat(), "max_points": 150}
    viewer_api.get("/api/equity/", params)
    rewrite(account)
    point(account, POINTS).save()
    reads.clear()

    body = viewer_api.get("/api/equity/", params)

    assert reads == [(T0 + 300 * MINUTE, None)]
    assert body.content == cold(viewer_api, params)


def test_equity_rewrite_with_the_newest_point_unchanged_is_seen_after_cache_seconds(
        account, viewer_api, reads, monkeypatch):
    params = {"max_points": 100}
    before = viewer_api.get("/api/equity/", params).content
    rewrite_value(account)

    within = viewer_api.get("/api/equity/", params).content
    now = equity._clock()
    monkeypatch.setattr(equity, "_clock", lambda: now + equity.CACHE_SECONDS + 1)
    reads.clear()
    after = viewer_api.get("/api/equity/", params).content

    assert within == before
    assert reads == [(None, None)]
    assert after != before and after == cold(viewer_api, params)


def test_equity_unchanged_range_after_cache_seconds_is_checked_not_read_again(account, reads, monkeypatch):
    first = equity.equity_curve(account, None, None, 100)
    now = equity._clock()
    monkeypatch.setattr(equity, "_clock", lambda: now + equity.CACHE_SECONDS + 1)
    reads.clear()

    again = equity.equity_curve(account, None, None, 100)

    assert reads == [(T0 + (POINTS - 1) * MINUTE, None)]
    assert again is first


def test_equity_kept_row_deleted_under_an_unchanged_newest_point_reads_the_range_again(account, viewer_api, reads):
    viewer_api.get("/api/equity/", {"max_points": 100})
    delete_older(account)
    reads.clear()

    # Every point is kept at 5,000, so the readback misses the deleted row.
    body = viewer_api.get("/api/equity/", {"max_points": 5000})

    assert reads == [(None, None)]
    assert len(body.json()["points"]) == POINTS - 2
    assert body.content == cold(viewer_api, {"max_points": 5000})


def test_equity_ranges_beyond_the_point_budget_evict_the_least_recent(account, reads, monkeypatch):
    monkeypatch.setattr(equity, "CACHE_POINTS", 2500)
    early, late = T0 + 1500 * MINUTE, T0 + 1800 * MINUTE
    equity.equity_curve(account, None, early, 50)
    equity.equity_curve(account, None, late, 50)
    reads.clear()

    equity.equity_curve(account, None, late, 50)
    kept_after_late = equity._points_kept()
    equity.equity_curve(account, None, early, 50)

    assert kept_after_late == 1800
    assert reads == [(None, early)]


def test_equity_single_range_larger_than_the_budget_is_still_kept(account, reads, monkeypatch):
    monkeypatch.setattr(equity, "CACHE_POINTS", 10)
    first = equity.equity_curve(account, None, None, 50)
    reads.clear()

    again = equity.equity_curve(account, None, None, 50)

    assert reads == []
    assert again is first and equity._points_kept() == POINTS - 1
