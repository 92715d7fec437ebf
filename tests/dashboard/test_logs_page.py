"""Logs and audit page: login, search, filters and paging of each tab, and the audit chain's status."""
import datetime as dt
import re
from decimal import Decimal

import pytest
import time_machine
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from dashboard.logs_selectors import CHAIN_CHECK_MAX_AGE
from decisions.audit_services import audit_append
from decisions.models import AuditRecord
from decisions.services import decision_audit
from execution.models import Order
from tests.dashboard.factories import AccountFactory, DecisionFactory, InstrumentFactory

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2025, 3, 3, 9, 0, tzinfo=dt.UTC)
NOW = dt.datetime(2025, 3, 4, 12, 0, tzinfo=dt.UTC)
LOGS = reverse("dashboard:logs")
CHAIN = reverse("dashboard:logs-audit-chain")
ALLOW = {"verdict": "allow", "reason": "within limits"}


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def btc():
    return InstrumentFactory()


@pytest.fixture
def eth():
    return InstrumentFactory(symbol="ETH/USDT:USDT", exchange_symbol="ETHUSDT", base="ETH")


def decided(instrument, hours: float, **fields):
    """Store a decision `hours` after T0 and audit it as the decision cycle does."""
    decision = DecisionFactory(instrument=instrument, as_of=T0 + dt.timedelta(hours=hours), **fields)
    decision_audit(decision, now=decision.as_of)
    return decision


@pytest.fixture
def journal(btc, eth):
    """Five decisions: executed, blocked by daily_loss, FLAT with a volatility shrink, blocked by spread, ETH."""
    return {
        "executed": decided(btc, 0, reason="trend up with momentum",
                            gates=[{"name": "daily_loss", **ALLOW}, {"name": "spread", **ALLOW}]),
        "daily_loss": decided(btc, 1, action="SHORT", outcome="blocked",
                              reason="blocked by daily_loss: lost 2.1% today, limit 2%",
                              gates=[{"name": "daily_loss", "verdict": "block", "reason": "lost 2.1% today, limit 2%",
                                      "until_ms": 1741046400000}, {"name": "spread", **ALLOW}]),
        "flat": decided(btc, 2, action="FLAT", outcome="flat", reason="no structure break",
                        gates=[{"name": "daily_loss", **ALLOW},
                               {"name": "volatility", "verdict": "shrink", "reason": "ATR p95 > p90", "size_factor": 0.5}]),
        "spread": decided(btc, 3, outcome="blocked", reason="blocked by spread: 7.1 bps > 5 bps",
                          gates=[{"name": "daily_loss", **ALLOW},
                                 {"name": "spread", "verdict": "block", "reason": "7.1 bps > 5 bps"}]),
        "eth": decided(eth, 4, outcome="logged", mode="SAFE", reason="ETH trend up, SAFE mode"),
    }


def rows(response) -> list[str]:
    """Return the data-row ids of the page's table in order."""
    return re.findall(r'<tr data-row="(\d+)"', response.content.decode())


def get(client, **params):
    return client.get(LOGS, params)


# --- login and roles -----------------------------------------------------------------------
@pytest.mark.parametrize("url", [LOGS, CHAIN])
def test_logs_anonymous_redirects_to_login(client, url):
    response = client.get(url)

    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_logs_viewer_reads_decisions_newest_first(viewer_client, journal):
    response = get(viewer_client)

    html = response.content.decode()
    assert response.status_code == 200
    assert rows(response) == [str(journal[k].pk) for k in ("eth", "spread", "flat", "daily_loss", "executed")]
    assert "5 decisions" in html
    assert '<span class="verdict-block">daily_loss</span>: lost 2.1% today, limit 2%' in html
    assert '<td class="num">65050</td><td class="num stop">64800.5</td>' in html


# --- decisions -----------------------------------------------------------------------------
@pytest.mark.parametrize("params, shown", [
    ({"outcome": "blocked"}, ["spread", "daily_loss"]),
    ({"action": "SHORT"}, ["daily_loss"]),
    ({"q": "BLOCKED BY"}, ["spread", "daily_loss"]),
    ({"q": "structure"}, ["flat"]),
    ({"start": "2025-03-03T10:00", "end": "2025-03-03T12:00"}, ["flat", "daily_loss"]),   # end exclusive
    ({"start": "2025-03-03T12:00:00+00:00"}, ["eth", "spread"]),
    ({"outcome": "blocked", "q": "spread"}, ["spread"]),
])
def test_logs_decisions_filters(viewer_client, journal, params, shown):
    response = get(viewer_client, tab="decisions", **params)

    assert rows(response) == [str(journal[k].pk) for k in shown]


def test_logs_decisions_instrument_filter(viewer_client, journal, eth):
    response = get(viewer_client, instrument=eth.pk)

    assert rows(response) == [str(journal["eth"].pk)]


def test_logs_decisions_page_through_newest_first_keeping_filters(viewer_client, btc):
    made = [DecisionFactory(instrument=btc, as_of=T0 + dt.timedelta(minutes=15 * n), outcome="flat", action="FLAT")
            for n in range(60)]
    DecisionFactory(instrument=btc, as_of=T0 - dt.timedelta(days=1), outcome="executed")

    first = get(viewer_client, outcome="flat")
    second = get(viewer_client, outcome="flat", page=2)

    newest_first = [str(d.pk) for d in reversed(made)]
    assert rows(first) == newest_first[:50] and rows(second) == newest_first[50:]
    assert "page 1 of 2" in first.content.decode()
    assert 'href="/logs/?outcome=flat&amp;page=2"' in first.content.decode()


def test_logs_page_queries_do_not_grow_with_rows(viewer_client, btc):
    def queries(tab: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert get(viewer_client, tab=tab).status_code == 200
        return len(captured)

    decided(btc, 0)
    account = AccountFactory()
    order(account, btc, 0)
    few = {tab: queries(tab) for tab in ("decisions", "gates", "orders", "audit")}
    for n in range(1, 30):
        decided(btc, n)
        order(account, btc, n)
    many = {tab: queries(tab) for tab in ("decisions", "gates", "orders", "audit")}

    assert many == few


# --- gate verdicts -------------------------------------------------------------------------
def test_logs_gates_lists_verdicts_other_than_allow(viewer_client, journal):
    response = get(viewer_client, tab="gates")

    html = response.content.decode()
    assert rows(response) == [str(journal[k].pk) for k in ("eth", "spread", "flat", "daily_loss", "executed")]
    assert '<span class="verdict-shrink">volatility shrink</span>: ATR p95 &gt; p90' in html
    assert '<span class="verdict-block">spread block</span>: 7.1 bps &gt; 5 bps' in html
    assert "every gate allowed" in html


@pytest.fixture
def stopped(journal, btc):
    """The journal plus a data-gap block and a FLAT bar outside trading hours (a block that stopped nothing)."""
    gap = decided(btc, 5, action="FLAT", outcome="blocked", reason="data gap: 15m candles missing from 13:00",
                  gates=[{"name": "data_complete", "verdict": "block", "reason": "15m candles missing from 13:00"}])
    night = decided(btc, 6, action="FLAT", outcome="flat", reason="no structure break",
                    gates=[{"name": "trading_hours", "verdict": "block", "reason": "outside 07:00-23:00"}])
    return journal | {"gap": gap, "night": night}


@pytest.mark.parametrize("params, shown", [
    ({}, ["night", "gap", "eth", "spread", "flat", "daily_loss", "executed"]),
    ({"gate": "daily_loss"}, ["daily_loss"]),
    ({"gate": "spread"}, ["spread"]),
    ({"gate": "data_complete"}, ["gap"]),
    ({"gate": "volatility"}, []),                    # a shrink does not block
    ({"gate": "trading_hours"}, []),                 # it blocked a FLAT bar: nothing was stopped
    ({"blocked": "on"}, ["gap", "spread", "daily_loss"]),
    ({"blocked": "on", "q": "daily"}, ["daily_loss"]),
])
def test_logs_gates_filters_by_the_gate_that_stopped_the_trade(viewer_client, stopped, params, shown):
    response = get(viewer_client, tab="gates", **params)

    assert rows(response) == [str(stopped[k].pk) for k in shown]


# --- orders --------------------------------------------------------------------------------
def order(account, instrument, n: int, **fields) -> Order:
    at = T0 + dt.timedelta(hours=n)
    values = dict(account=account, instrument=instrument, client_order_id=f"tb-{instrument.base.lower()}-{n}",
                  intent_id=f"i{instrument.pk}-{n}", leg="entry", side="buy", type="market",
                  quantity=Decimal("0.015"), status="filled", filled_quantity=Decimal("0.015"),
                  average_price=Decimal("65010.5"), created_at=at, updated_at=at)
    return Order.objects.create(**(values | fields))


@pytest.fixture
def orders(btc, eth):
    account = AccountFactory()
    return {
        "entry": order(account, btc, 0),
        "sl": order(account, btc, 1, leg="sl", side="sell", type="stop_market", status="accepted",
                    trigger_price=Decimal("64800.5"), filled_quantity=0, average_price=None, reduce_only=True),
        "rejected": order(account, btc, 2, status="rejected", reject_reason="-2019 Margin is insufficient",
                          filled_quantity=0, average_price=None),
        "eth": order(account, eth, 3, quantity=Decimal("0.500"), filled_quantity=Decimal("0.5")),
    }


@pytest.mark.parametrize("params, shown", [
    ({}, ["eth", "rejected", "sl", "entry"]),
    ({"status": "rejected"}, ["rejected"]),
    ({"status": "filled"}, ["eth", "entry"]),
    ({"q": "margin"}, ["rejected"]),
    ({"q": "TB-BTC-1"}, ["sl"]),
    ({"q": "sl"}, ["sl"]),
    ({"end": "2025-03-03T10:00"}, ["entry"]),
])
def test_logs_orders_filters(viewer_client, orders, params, shown):
    response = get(viewer_client, tab="orders", **params)

    assert rows(response) == [str(orders[k].pk) for k in shown]


def test_logs_orders_show_exact_amounts_and_state(viewer_client, orders, eth):
    response = get(viewer_client, tab="orders", instrument=eth.pk)

    html = response.content.decode()
    assert rows(response) == [str(orders["eth"].pk)]
    assert '<td class="num">0.5</td>' in html and '<td class="num">65010.5</td>' in html
    assert '<td class="state-filled">Filled</td><td class="num">0.5</td><td class="num">65010.5</td>' in html


# --- audit log -----------------------------------------------------------------------------
@pytest.fixture
def audited(journal):
    """The journal's ten records (decision + gate each) and two by people."""
    audit_append(kind="mode_change", actor="alice", subject="config:1", now=T0 + dt.timedelta(hours=5),
                 body={"mode": {"from": "SAFE", "to": "HYBRID"}, "reason": "after review"})
    audit_append(kind="approval", actor="bob", subject=f"decision:{journal['flat'].pk}",
                 now=T0 + dt.timedelta(hours=6), body={"approval": "rejected", "note": "too close to CPI"})
    return journal


@pytest.mark.parametrize("params, shown", [
    ({}, list(range(12, 0, -1))),
    ({"kind": "mode_change"}, [11]),
    ({"kind": "gate"}, [10, 8, 6, 4, 2]),
    ({"q": "ALICE"}, [11]),
    ({"q": "too close to cpi"}, []),                         # the body is not searched
    ({"q": "decision:", "kind": "approval"}, [12]),
    ({"start": "2025-03-03T14:00", "end": "2025-03-03T15:00:01"}, [12, 11]),
])
def test_logs_audit_filters(viewer_client, audited, params, shown):
    response = get(viewer_client, tab="audit", **params)

    assert rows(response) == [str(seq) for seq in shown]


def test_logs_audit_body_shown_as_json(viewer_client, audited):
    response = get(viewer_client, tab="audit", kind="mode_change")

    html = response.content.decode()
    assert "<td>alice</td><td>config:1</td>" in html
    assert "&quot;to&quot;: &quot;HYBRID&quot;" in html


# --- bad parameters ------------------------------------------------------------------------
@pytest.mark.parametrize("params, message", [
    ({"start": "2025-03-04T00:00", "end": "2025-03-03T00:00"}, "end: must be after From"),
    ({"start": "yesterday"}, "start: not an ISO 8601 date and time"),
    ({"outcome": "won"}, "outcome: Select a valid choice. won is not one of the available choices."),
    ({"tab": "orders", "status": "done"}, "status: Select a valid choice."),
    ({"tab": "trades"}, "tab: Select a valid choice."),
    ({"page": "0"}, "page: Ensure this value is greater than or equal to 1."),
    ({"instrument": "999999"}, "instrument: Select a valid choice."),
    ({"q": "x" * 101}, "q: Ensure this value has at most 100 characters (it has 101)."),
])
def test_logs_bad_parameter_is_400_with_message(viewer_client, journal, params, message):
    response = get(viewer_client, **params)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert rows(response) == []


def test_logs_page_past_the_end_shows_the_last(viewer_client, journal):
    response = get(viewer_client, page=9)

    assert response.status_code == 200 and len(rows(response)) == 5


# --- the audit chain -----------------------------------------------------------------------
def test_audit_chain_json_reports_intact_chain(viewer_client, audited, frozen):
    body = viewer_client.get(CHAIN).json()

    assert body["ok"] is True and body["count"] == 12 and body["last_seq"] == 12
    assert body["summary"] == "chain intact up to seq 12"
    assert body["checked_at"] == NOW.isoformat()


def test_audit_chain_page_without_a_check_offers_one(viewer_client, audited, frozen):
    unchecked = get(viewer_client).content.decode()
    checked = get(viewer_client, verify="1").content.decode()

    assert "chain not verified yet" in unchecked and "data-chain-verify" in unchecked
    assert "chain intact up to seq 12" in checked and 'class="chain chain-ok"' in checked
    assert "12 records, checked 2025-03-04 12:00:00 UTC" in checked


def test_audit_chain_empty_says_so(viewer_client, frozen):
    body = viewer_client.get(CHAIN).json()

    assert body["ok"] is True and body["summary"] == "chain empty: nothing audited yet"


def test_audit_chain_tampered_record_shows_broken_after_the_cache_expires(viewer_client, audited, frozen):
    assert viewer_client.get(CHAIN).json()["ok"] is True
    AuditRecord.objects.filter(seq=5).update(actor="mallory")     # a direct UPDATE, past audit_append

    frozen.shift(CHAIN_CHECK_MAX_AGE - dt.timedelta(seconds=1))
    cached = viewer_client.get(CHAIN).json()
    frozen.shift(dt.timedelta(seconds=2))
    fresh = viewer_client.get(CHAIN).json()
    page = get(viewer_client, tab="audit").content.decode()

    assert cached["ok"] is True                                    # still the check of a minute ago
    assert fresh["ok"] is False and fresh["problem_seq"] == 5 and fresh["intact_up_to"] == 4
    assert fresh["summary"] == "chain broken at seq 5 (edited): its fields no longer match its hash; intact up to seq 4"
    assert 'class="chain chain-broken"' in page and "chain broken at seq 5 (edited)" in page
    assert '<tr data-row="5" class="tampered"' in page


def test_audit_chain_deleted_record_names_the_gap(viewer_client, audited, frozen):
    AuditRecord.objects.filter(seq=7).delete()

    body = viewer_client.get(CHAIN).json()

    assert body["ok"] is False and body["problem_seq"] == 7 and body["problem_kind"] == "removed"
    assert body["summary"].startswith("chain broken at seq 7 (removed): seq 7 missing before seq 8")
