"""Drift page: the report list, one report (split, bars, alert banner, rows side by side) and build-now for operators.

The reports shown are made by the drift core (execution.backtest.drift.drift_compare) from trades
written out here, stored as execution.drift stores them; tests/execution/test_drift.py proves the
numbers against a real replay.
"""
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest
from django.urls import reverse

from execution.backtest.drift import Moment, Side, Trade, drift_compare, leg_of
from execution.drift import drift_json
from execution.models import Account, DriftReport

pytestmark = pytest.mark.django_db

AS_OF = datetime(2025, 7, 8, 10, tzinfo=timezone.utc)


def _trade(entry: D, exit_: D, fee: D = D("1")) -> Trade:
    quantity = D("0.1")
    pnl = (exit_ - entry) * quantity - 2 * fee
    return Trade("LONG", leg_of("entry", [(entry, quantity, fee)]), (leg_of("tp1", [(exit_, quantity, fee)]),),
                 2 * fee, D(0), pnl, AS_OF, AS_OF, D("100"))     # the same market price at both fills: no latency


def _report(account: Account, *, live_entry: D, limit: D = D("5"), skip_second: bool = False) -> DriftReport:
    """Store a report of two moments: a long both sides took (live entry at `live_entry`) and a FLAT bar."""
    first = Moment("BTCUSDT", AS_OF, Side("LONG", "executed", "LONG: up", _trade(live_entry, D("101"))),
                   Side("LONG", "executed", "LONG: up", _trade(D("100"), D("101"))))
    second_live = (Side("LONG", "skipped", "not executed: venue refused") if skip_second
                   else Side("FLAT", "flat", "no signal"))
    second = Moment("BTCUSDT", AS_OF + timedelta(minutes=15), second_live, Side("FLAT", "flat", "no signal"))
    comparison = drift_compare([first, second])
    alert = comparison.slippage_bps is not None and comparison.slippage_bps > limit
    return DriftReport.objects.create(
        account=account, start=AS_OF, end=AS_OF + timedelta(minutes=15), created_at=AS_OF + timedelta(hours=1),
        code_version="abc123", summary=drift_json({**comparison.summary, "timeframe": "15m", "config_version": 3,
                                                   "instruments": ["BTCUSDT"], "caveats": ["backtest starts flat"]}),
        rows=drift_json(comparison.rows), slippage_bps=comparison.slippage_bps, slippage_limit_bps=limit, alert=alert)


@pytest.fixture
def account():
    return Account.objects.create(name="paper", starting_balance_usdt=D("10000"), balance_usdt=D("10000"))


def test_drift_list_requires_login(client):
    response = client.get(reverse("dashboard:drift"))

    assert response.status_code == 302 and "/login/" in response["Location"] and "/admin/" not in response["Location"]


def test_drift_list_shows_reports_to_a_viewer_without_the_build_form(viewer_client, account):
    calm = _report(account, live_entry=D("100"))
    slipped = _report(account, live_entry=D("100.5"), limit=D("5"))     # 50 bps on one of two legs: 25 average

    response = viewer_client.get(reverse("dashboard:drift"))

    body = response.content.decode()
    assert response.status_code == 200
    assert f'data-report="{calm.pk}"' in body and f'data-report="{slipped.pk}"' in body
    assert body.count('class="drift-badge-alert"') == 1
    assert "data-drift-build" not in body


def test_drift_list_filters_by_account(viewer_client, account):
    other = Account.objects.create(name="testnet", broker="testnet", starting_balance_usdt=1, balance_usdt=1)
    mine, theirs = _report(account, live_entry=D("100")), _report(other, live_entry=D("100"))

    body = viewer_client.get(reverse("dashboard:drift"), {"account": other.pk}).content.decode()

    assert f'data-report="{theirs.pk}"' in body and f'data-report="{mine.pk}"' not in body


def test_drift_report_page_shows_split_bars_alert_and_rows_side_by_side(viewer_client, account):
    report = _report(account, live_entry=D("100.5"), skip_second=True)

    response = viewer_client.get(reverse("dashboard:drift-report", args=[report.pk]))

    body = response.content.decode()
    assert response.status_code == 200
    assert "data-drift-alert" in body and "live fills were 25.00 bps away from the backtest" in body
    # The entry 0.5 higher on 0.1 units: -0.05 USDT of fill price, the whole gap; the residual is 0.
    fill_row = body[body.index('data-bucket="fill_price"'):body.index('data-bucket="latency"')]
    assert "-0.05" in fill_row and "drift-bar-neg" in fill_row and "--w: 100.0%" in fill_row
    residual_row = body[body.index('data-bucket="residual"'):]
    assert "0.00" in residual_row and "--w: 0.0%" in residual_row
    assert "Note: backtest starts flat" in body
    # Default view: the trade and the decision that differs (live skipped, backtest FLAT), side by side.
    rows = body[body.index("data-drift-rows"):]
    assert rows.count("<tr data-row=") == 2
    assert "2025-07-08 10:00" in rows and "100.50" in rows and "100.00" in rows and "entry 50.00" in rows
    assert "skipped" in rows and "drift-differs" in rows


def test_drift_report_page_all_view_lists_every_decision(viewer_client, account):
    report = _report(account, live_entry=D("100"))

    default = viewer_client.get(reverse("dashboard:drift-report", args=[report.pk])).content.decode()
    every = viewer_client.get(reverse("dashboard:drift-report", args=[report.pk]), {"show": "all"}).content.decode()

    assert default.count("<tr data-row=") == 1       # the FLAT bar both sides agreed on is hidden
    assert every.count("<tr data-row=") == 2
    assert "data-drift-alert" not in default


def test_drift_report_page_of_a_missing_report_is_404(viewer_client):
    assert viewer_client.get(reverse("dashboard:drift-report", args=[999])).status_code == 404


def test_drift_build_refused_to_a_viewer(viewer_client, account):
    response = viewer_client.post(reverse("dashboard:drift-build"), {"account": account.pk, "days": 1})

    assert response.status_code == 403
    assert not DriftReport.objects.exists()


def test_drift_build_by_an_operator_queues_and_stores_the_report(operator_client, account):
    page = operator_client.get(reverse("dashboard:drift")).content.decode()
    assert "data-drift-build" in page and "csrfmiddlewaretoken" in page

    response = operator_client.post(reverse("dashboard:drift-build"), {"account": account.pk, "days": 2},
                                    follow=True)

    report = DriftReport.objects.get()      # the test cluster runs the queued task inline
    assert response.status_code == 200
    assert "Drift report of paper over the last 2 day(s) queued" in response.content.decode()
    assert report.account == account and report.end - report.start == timedelta(days=2, minutes=-15)
    assert f'data-report="{report.pk}"' in response.content.decode()


def test_drift_build_with_bad_days_queues_nothing_and_says_why(operator_client, account):
    response = operator_client.post(reverse("dashboard:drift-build"), {"account": account.pk, "days": 0},
                                    follow=True)

    assert "No report queued: days:" in response.content.decode()
    assert not DriftReport.objects.exists()


def test_drift_build_needs_the_csrf_token(django_user_model, account):
    from django.test import Client

    from tests.dashboard.conftest import user_with_role

    client = Client(enforce_csrf_checks=True)
    client.force_login(user_with_role(django_user_model, "op", "operator"))

    response = client.post(reverse("dashboard:drift-build"), {"account": account.pk, "days": 1})

    assert response.status_code == 403
    assert not DriftReport.objects.exists()
