"""/metrics: a bearer token, django-prometheus's request metrics, and trading metrics read from the database."""
import datetime as dt
from decimal import Decimal as D

import pytest
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families

from dashboard import health
from decisions.models import Decision
from execution.models import Order, ReconciliationRun
from tests.dashboard.factories import (AccountFactory, DecisionFactory, EquityPointFactory, InstrumentFactory,
                                       PositionFactory)

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-for-tests"
T0 = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)


def _scrape(client) -> dict:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def _samples(family, suffix="") -> dict:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples if s.name == family.name + suffix}


def _decision_after(instrument, as_of, seconds):
    decision = DecisionFactory(instrument=instrument, as_of=as_of)
    Decision.objects.filter(pk=decision.pk).update(created_at=as_of + dt.timedelta(seconds=seconds))


def _order(account, instrument, n, status, reject_reason=""):
    Order.objects.create(account=account, instrument=instrument, client_order_id=f"tb-{n}", intent_id=f"i{n}",
                         leg="entry", side="buy", type="market", quantity=D("0.01"), status=status,
                         reject_reason=reject_reason, created_at=T0, updated_at=T0)


@override_settings(METRICS_TOKEN="")
def test_metrics_without_a_configured_token_are_off(client):
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 403
    assert b"set METRICS_TOKEN" in response.content


@override_settings(METRICS_TOKEN=TOKEN)
@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", TOKEN])
def test_metrics_without_the_bearer_token_is_401(client, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}

    response = client.get("/metrics", **extra)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"tradingbot_" not in response.content


@override_settings(METRICS_TOKEN=TOKEN)
def test_metrics_include_django_prometheus_request_metrics(client):
    client.get("/health")

    families = _scrape(client)

    by_view = _samples(families["django_http_responses_total_by_status_view_method"], "_total")
    assert by_view[(("method", "GET"), ("status", "200"), ("view", "probe-health"))] >= 1
    assert "django_http_requests_latency_seconds_by_view_method" in families


@override_settings(METRICS_TOKEN=TOKEN)
def test_metrics_decision_latency_counts_exchange_decisions_from_bar_close(client):
    live = InstrumentFactory(data_source="exchange")
    for minute, seconds in ((0, 10), (5, 45), (10, 200)):
        _decision_after(live, T0 + dt.timedelta(minutes=minute), seconds)
    # A replay decides on a simulated clock: its stored-at minus bar close means nothing, so it is left out.
    _decision_after(InstrumentFactory(data_source="replay"), T0, 10 ** 6)

    family = _scrape(client)["tradingbot_decision_latency_seconds"]

    buckets = {labels[0][1]: value for labels, value in _samples(family, "_bucket").items()}
    assert family.type == "histogram"
    assert buckets == {"1.0": 0, "5.0": 0, "15.0": 1, "30.0": 1, "60.0": 2, "90.0": 2, "120.0": 2, "300.0": 3,
                       "600.0": 3, "1800.0": 3, "+Inf": 3}
    assert _samples(family, "_count")[()] == 3
    assert _samples(family, "_sum")[()] == pytest.approx(255.0)


@override_settings(METRICS_TOKEN=TOKEN)
def test_metrics_orders_by_state_and_exchange_errors(client):
    paper, demo = AccountFactory(name="paper"), AccountFactory(name="demo", broker="testnet")
    instrument = InstrumentFactory()
    _order(paper, instrument, 1, "filled")
    _order(paper, instrument, 2, "filled")
    _order(demo, instrument, 3, "accepted")
    _order(demo, instrument, 4, "rejected", "-2019 Margin is insufficient.")
    _order(demo, instrument, 5, "rejected", "-2019 Margin is insufficient.")
    _order(paper, instrument, 6, "rejected", "paper broker cannot place trailing order")
    ReconciliationRun.objects.create(account=demo, started_at=T0, finished_at=T0, trigger="periodic",
                                     error="venue not read: NetworkError: refused")
    ReconciliationRun.objects.create(account=demo, started_at=T0, finished_at=T0, trigger="periodic", clean=True)

    families = _scrape(client)

    orders = _samples(families["tradingbot_orders"])
    assert orders[(("account", "paper"), ("state", "filled"))] == 2
    assert orders[(("account", "demo"), ("state", "accepted"))] == 1
    assert orders[(("account", "demo"), ("state", "rejected"))] == 2
    assert orders[(("account", "demo"), ("state", "lost"))] == 0
    assert len(orders) == 2 * len(Order.Status.values)
    rejections = _samples(families["tradingbot_order_rejections"], "_total")
    assert rejections == {(("account", "demo"), ("code", "-2019")): 2, (("account", "paper"), ("code", "none")): 1}
    assert _samples(families["tradingbot_reconciliation_errors"], "_total") == {(("account", "demo"),): 1}


@override_settings(METRICS_TOKEN=TOKEN)
def test_metrics_equity_and_open_risk_per_account(client):
    paper = AccountFactory(name="paper", balance_usdt=D("10000"))
    AccountFactory(name="demo", broker="testnet", balance_usdt=D("500.25"))
    EquityPointFactory(account=paper, ts=T0, equity_usdt=D("9990"))
    EquityPointFactory(account=paper, ts=T0 + dt.timedelta(minutes=1), balance_usdt=D("10000"),
                       unrealized_pnl_usdt=D("100.5"))
    btc = InstrumentFactory()
    eth = InstrumentFactory(symbol="ETH/USDT:USDT", exchange_symbol="ETHUSDT", base="ETH")
    # At the stops: 0.015 * (65000 - 64800.5) = 2.9925 and 0.5 * (2550 - 2500) = 25.
    PositionFactory(account=paper, instrument=btc, side="LONG", quantity=D("0.015"), entry_price=D("65000"),
                    stop_price=D("64800.5"))
    PositionFactory(account=paper, instrument=eth, side="SHORT", quantity=D("0.5"), entry_price=D("2500"),
                    stop_price=D("2550"))
    PositionFactory(account=paper, instrument=btc, status="closed", quantity=D("9"), entry_price=D("1"),
                    stop_price=D("1000"))

    families = _scrape(client)

    assert _samples(families["tradingbot_equity_usdt"]) == {
        (("account", "demo"), ("broker", "testnet")): 500.25, (("account", "paper"), ("broker", "paper")): 10100.5}
    assert _samples(families["tradingbot_balance_usdt"])[(("account", "paper"), ("broker", "paper"))] == 10000
    assert _samples(families["tradingbot_open_risk_usdt"]) == {(("account", "demo"),): 0,
                                                               (("account", "paper"),): pytest.approx(27.9925)}
    assert _samples(families["tradingbot_positions_open"]) == {(("account", "demo"),): 0, (("account", "paper"),): 2}


@override_settings(METRICS_TOKEN=TOKEN)
def test_metrics_last_self_test_and_heartbeat_age(client):
    now = dt.datetime.now(dt.UTC)
    health.heartbeat_record(now=now - dt.timedelta(minutes=2))
    health.health_record(health.report_of([health.Check("database", "database", True, "ok", now),
                                           health.Check("exchange: demo", "exchange", False, "not configured", now)],
                                          now))

    families = _scrape(client)

    assert _samples(families["tradingbot_health_check_ok"]) == {
        (("check", "database"), ("group", "database")): 1, (("check", "exchange: demo"), ("group", "exchange")): 0}
    assert _samples(families["tradingbot_health_checked_timestamp_seconds"])[()] == pytest.approx(now.timestamp())
    assert 120 <= _samples(families["tradingbot_worker_heartbeat_age_seconds"])[()] < 180
