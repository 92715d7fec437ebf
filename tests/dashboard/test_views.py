import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from dashboard import selectors
from tests.dashboard.factories import (
    T0,
    AccountFactory,
    CandleFactory,
    DecisionFactory,
    EquityPointFactory,
    InstrumentFactory,
    PositionFactory,
    SnapshotFactory,
    TradingConfigFactory,
)

pytestmark = pytest.mark.django_db

PAGES = ["dashboard:overview", "dashboard:equity", "dashboard:equity-data", "dashboard:equity-export"]


@pytest.fixture
def user_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("trader", password="pw"))
    return client


@pytest.fixture
def market():
    """Create an active replayed BTC market with a snapshot, a decision and an open long."""
    instrument = InstrumentFactory()
    TradingConfigFactory(mode="HYBRID")
    CandleFactory(instrument=instrument, open_time=T0, close=Decimal("65100"))
    SnapshotFactory(instrument=instrument)
    DecisionFactory(instrument=instrument)
    account = AccountFactory()
    PositionFactory(account=account, instrument=instrument)
    return instrument, account


@pytest.mark.parametrize("name", PAGES)
def test_page_anonymous_redirects_to_login(client, name):
    response = client.get(reverse(name))

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_overview_logged_in_shows_mode_broker_decision_and_position(user_client, market):
    with time_machine.travel(T0 + dt.timedelta(minutes=5), tick=False):
        response = user_client.get(reverse("dashboard:overview"))

    html = response.content.decode()
    assert response.status_code == 200
    assert "MODE <b>HYBRID</b>" in html
    assert "BROKER <b>PAPER</b>" in html
    assert "REPLAY of real candles" in html
    assert "65100.0" in html  # last price, rounded to the 0.1 tick
    assert "trend up with momentum" in html and "momentum: strong" in html
    assert "64800.5" in html and "65550.5" in html  # stop and target
    assert "last_break: BOS up" in html
    assert "+1.50" in html  # (65100 - 65000) * 0.015 unrealised on the open long


def test_overview_empty_database_renders_placeholders(user_client):
    response = user_client.get(reverse("dashboard:overview"))

    assert response.status_code == 200
    assert "No open positions" in response.content.decode()


def test_overview_state_simulated_source_is_labelled_not_real():
    InstrumentFactory(data_source="simulated")

    state = selectors.overview_state(now=T0)

    assert state["data_source"] == {"kind": "simulated", "label": "SIMULATED market - not real prices", "real": False}


def test_overview_state_short_position_loses_when_price_rises(market):
    instrument, account = market
    account.positions.update(side="SHORT")

    state = selectors.overview_state(now=T0 + dt.timedelta(minutes=5))

    assert state["positions"][0]["unrealized_pnl_usdt"] == Decimal("-1.50")
    assert state["account"]["equity_usdt"] == Decimal("10249.25")


def test_overview_state_realised_today_counts_only_positions_closed_today(market):
    instrument, account = market
    other = InstrumentFactory(symbol="ETH/USDT:USDT", exchange_symbol="ETHUSDT", is_active=False)
    closed = dict(account=account, instrument=other, status="closed", open_key=None)
    PositionFactory(**closed, closed_at=T0 - dt.timedelta(hours=1), realized_pnl_usdt=Decimal("12.5"))
    PositionFactory(**closed, closed_at=T0 - dt.timedelta(days=1), realized_pnl_usdt=Decimal("99"))

    state = selectors.overview_state(now=T0)

    assert state["account"]["realized_today_usdt"] == Decimal("12.50")


def test_rationale_lines_mixed_entries_become_strings():
    lines = selectors.rationale_lines(["plain", {"name": "atr", "value": 1.23456789}, {"a": 1, "b": "x"}])

    assert lines == ["plain", "atr: 1.23457", "a=1, b=x"]


def make_curve(account, n):
    for i in range(n):
        # A sawtooth: every tenth point dips 3 % below the running level.
        equity = Decimal(10_000 + i) * (Decimal("0.97") if i % 10 == 9 else 1)
        EquityPointFactory(account=account, ts=T0 + dt.timedelta(minutes=i), balance_usdt=equity)


def test_equity_data_more_points_than_asked_downsamples_to_n(user_client):
    account = AccountFactory()
    make_curve(account, 500)

    response = user_client.get(reverse("dashboard:equity-data"), {"points": 50})

    body = response.json()
    assert response.status_code == 200
    assert body["downsampled"] is True
    assert len(body["points"]) == 50
    assert body["points"][0] == {"t": int(T0.timestamp()), "equity": "10000.00", "drawdown_pct": 0.0}
    assert body["points"][-1]["t"] == int((T0 + dt.timedelta(minutes=499)).timestamp())
    assert body["account"] == {"id": account.pk, "name": "paper", "broker": "paper"}


def test_equity_data_dip_reports_drawdown_from_running_peak(user_client):
    account = AccountFactory()
    make_curve(account, 10)

    body = user_client.get(reverse("dashboard:equity-data"), {"points": 100}).json()

    assert body["downsampled"] is False
    assert body["points"][9]["drawdown_pct"] == pytest.approx((10009 * 0.97 - 10008) / 10008 * 100, abs=1e-3)


def test_equity_data_period_counts_back_from_last_point(user_client):
    account = AccountFactory()
    EquityPointFactory(account=account, ts=T0 - dt.timedelta(days=3))
    EquityPointFactory(account=account, ts=T0, equity_usdt=Decimal("9000"))

    body = user_client.get(reverse("dashboard:equity-data"), {"period": "1D"}).json()

    assert [p["t"] for p in body["points"]] == [int(T0.timestamp())]
    assert body["points"][0]["drawdown_pct"] == -10.0  # the earlier 10 000 peak still counts


def test_equity_data_week_and_month_periods_start_on_the_hour_so_new_points_extend_the_kept_curve(
        user_client, monkeypatch):
    from dashboard import equity_curve

    account = AccountFactory()
    last = T0 + dt.timedelta(minutes=37)
    for minutes in (-7 * 24 * 60 - 30, -7 * 24 * 60 + 20, 0, 37):     # 7 days + 30 min back is outside
        EquityPointFactory(account=account, ts=T0 + dt.timedelta(minutes=minutes))
    reads = []
    real = equity_curve._floats
    monkeypatch.setattr(equity_curve, "_floats", lambda *args: reads.append(args[1:]) or real(*args))
    equity_curve.cache_clear()

    body = user_client.get(reverse("dashboard:equity-data"), {"period": "1W"}).json()

    # last - 7 days is 12:37 a week earlier; the period starts at 12:00, taking in the 12:20 point.
    week_start = T0 - dt.timedelta(days=7)
    assert dt.datetime.fromisoformat(body["start"]) == week_start
    assert [p["t"] for p in body["points"]] == [int((week_start + dt.timedelta(minutes=20)).timestamp()),
                                               int(T0.timestamp()), int(last.timestamp())]
    EquityPointFactory(account=account, ts=last + dt.timedelta(minutes=1))
    reads.clear()

    later = user_client.get(reverse("dashboard:equity-data"), {"period": "1W"}).json()

    assert later["start"] == body["start"] and len(later["points"]) == 4
    assert reads == [(last, None)]      # only the tail was read: the range (and its curve) was kept
    month = user_client.get(reverse("dashboard:equity-data"), {"period": "1M"}).json()
    assert dt.datetime.fromisoformat(month["start"]).minute == 0


def test_equity_data_day_period_keeps_its_exact_start(user_client):
    account = AccountFactory()
    EquityPointFactory(account=account, ts=T0 + dt.timedelta(minutes=37))

    body = user_client.get(reverse("dashboard:equity-data"), {"period": "1D"}).json()

    assert dt.datetime.fromisoformat(body["start"]) == T0 + dt.timedelta(minutes=37) - dt.timedelta(days=1)


def test_equity_data_start_after_end_returns_400(user_client):
    AccountFactory()

    response = user_client.get(reverse("dashboard:equity-data"), {"start": "2024-03-02T00:00Z", "end": "2024-03-01"})

    assert response.status_code == 400


def test_equity_export_range_returns_decimal_strings(user_client):
    account = AccountFactory()
    make_curve(account, 5)
    start, end = T0 + dt.timedelta(minutes=1), T0 + dt.timedelta(minutes=3)

    response = user_client.get(reverse("dashboard:equity-export"), {"start": start.isoformat(), "end": end.isoformat()})

    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert response["Content-Type"] == "text/csv"
    assert rows[0] == ["ts", "balance_usdt", "unrealized_pnl_usdt", "equity_usdt"]
    assert [r[0] for r in rows[1:]] == [(T0 + dt.timedelta(minutes=m)).isoformat() for m in (1, 2, 3)]
    assert rows[1][1:] == ["10001.0000000000", "0.0000000000", "10001.0000000000"]


def test_equity_page_logged_in_shows_chart_and_header(user_client):
    AccountFactory()

    html = user_client.get(reverse("dashboard:equity")).content.decode()

    assert "data-chart" in html and "lightweight-charts.standalone.production.js" in html
    assert "BROKER <b>PAPER</b>" in html


@pytest.mark.django_db
def test_header_shows_circuit_breaker_safe_on_the_engine_clock():
    from datetime import UTC, datetime

    from dashboard.selectors import header_state
    from decisions.models import Decision, TradingConfig
    from tests.dashboard.factories import InstrumentFactory

    config = TradingConfig.objects.create(mode="ON", safe_until=datetime(2025, 7, 6, 22, 0, tzinfo=UTC))
    Decision.objects.create(instrument=InstrumentFactory(), timeframe="15m", as_of=datetime(2025, 7, 6, 12, 0, tzinfo=UTC),
                            action="FLAT", mode="SAFE", outcome="flat", reason="x")

    header = header_state(config)

    assert header["mode"] == "SAFE" and header["configured_mode"] == "ON"
    assert header["mode_label"] == "SAFE: circuit breaker until 2025-07-06 22:00 UTC"
