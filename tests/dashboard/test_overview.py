"""Overview: today's PnL and risk budget, pending approvals with their buttons, positions with their ladder."""
import asyncio
import datetime as dt
import re
from decimal import Decimal

import pytest
import time_machine
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from dashboard import selectors
from dashboard.events import LIVE_GROUP
from decisions.models import AuditRecord
from execution.models import Position
from execution.selectors import account_name_for
from execution.services import account_ensure
from tests.dashboard.conftest import user_with_role
from tests.dashboard.factories import (AccountFactory, CandleFactory, DecisionFactory, EquityPointFactory,
                                      InstrumentFactory, PositionFactory, TradingConfigFactory)

pytestmark = pytest.mark.django_db

# 15:10 in Warsaw (the default risk timezone): the local day began at 2026-11-24 23:00 UTC.
NOW = dt.datetime(2026, 11, 25, 14, 10, tzinfo=dt.UTC)
LOCAL_MIDNIGHT = dt.datetime(2026, 11, 24, 23, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)
OVERVIEW = reverse("dashboard:overview")


@pytest.fixture(autouse=True)
def frozen_now():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def btc():
    return InstrumentFactory(data_source="exchange")


def pending(instrument, **overrides):
    base = dict(instrument=instrument, timeframe="15m", as_of=NOW - 10 * MINUTE, action="LONG", mode="HYBRID",
                outcome="pending", approval="pending", entry_price=Decimal("65050"), stop_price=Decimal("64800.5"),
                target_price=Decimal("65800.5"), quantity=Decimal("0.015"),
                take_profits=[{"price": "65300.5", "share": "0.5"}, {"price": "65800.5", "share": "0.5"}],
                entry_zone_low=Decimal("64990"), entry_zone_high=Decimal("65110"), confidence=0.71,
                expires_at=NOW + dt.timedelta(hours=4), reason="trend up; waiting for approval")
    return DecisionFactory(**(base | overrides))


def _day(account, *, start: str, low: str, balance: str) -> None:
    account.balance_usdt = Decimal(balance)
    account.save()
    EquityPointFactory(account=account, ts=LOCAL_MIDNIGHT - MINUTE, balance_usdt=Decimal(start))
    EquityPointFactory(account=account, ts=NOW - 60 * MINUTE, balance_usdt=Decimal(low))


# -- today's PnL and the risk budget -------------------------------------------------------------------

def test_risk_today_counts_from_the_local_day_start_to_the_day_low(btc):
    TradingConfigFactory(mode="HYBRID")   # daily loss limit 2 %
    account = AccountFactory(name="paper")
    _day(account, start="10000", low="9900", balance="9950")

    risk = selectors.overview_state(now=NOW)["risk"]

    assert risk["day_start"] == LOCAL_MIDNIGHT and risk["timezone"] == "Europe/Warsaw"
    assert (risk["day_start_equity_usdt"], risk["pnl_today_usdt"], risk["pnl_today_pct"]) == (
        Decimal("10000.00"), Decimal("-50.00"), -0.5)
    # 2 % of 10 000 = 200; the low of 9 900 used 100 of it, although equity has since recovered to 9 950.
    assert (risk["loss_limit_usdt"], risk["loss_used_usdt"], risk["budget_left_usdt"], risk["budget_left_pct"]) == (
        Decimal("200.00"), Decimal("100.00"), Decimal("100.00"), 50.0)
    assert not risk["blocked"]


def test_risk_today_limit_hit_leaves_nothing_and_says_blocked(btc, client, django_user_model):
    TradingConfigFactory(mode="HYBRID")
    account = AccountFactory(name="paper")
    _day(account, start="10000", low="9790", balance="9800")
    client.force_login(user_with_role(django_user_model, "v", None))

    risk = selectors.overview_state(now=NOW)["risk"]
    html = client.get(OVERVIEW).content.decode()

    assert (risk["budget_left_usdt"], risk["blocked"]) == (Decimal("0.00"), True)
    assert "daily loss limit hit: today -2.10% vs limit -2.00%" in risk["gate_reason"]
    assert re.search(r'<p class="notice notice-error" data-show="risk.blocked">', html)


def test_risk_today_counts_open_positions_at_the_last_close(btc):
    TradingConfigFactory(mode="HYBRID")
    account = AccountFactory(name="paper", balance_usdt=Decimal("10000"))
    EquityPointFactory(account=account, ts=LOCAL_MIDNIGHT - MINUTE, balance_usdt=Decimal("10000"))
    CandleFactory(instrument=btc, timeframe="1m", open_time=NOW - 2 * MINUTE, close=Decimal("64000"))
    PositionFactory(account=account, instrument=btc, quantity=Decimal("0.1"), entry_price=Decimal("65000"))

    risk = selectors.overview_state(now=NOW)["risk"]

    assert (risk["pnl_today_usdt"], risk["loss_used_usdt"], risk["budget_left_usdt"]) == (
        Decimal("-100.00"), Decimal("100.00"), Decimal("100.00"))


def test_overview_page_shows_pnl_today_and_budget_left(btc, viewer_client):
    TradingConfigFactory(mode="HYBRID")
    _day(AccountFactory(name="paper"), start="10000", low="9900", balance="9950")

    html = viewer_client.get(OVERVIEW).content.decode()

    assert 'data-bind="risk.pnl_today_usdt" data-format="pnl">-50.00<' in html
    assert 'data-bind="risk.budget_left_usdt" data-format="money">100.00<' in html
    assert 'value="50.0" data-meter="risk.budget_left_pct"' in html
    assert re.search(r'data-show="risk.blocked" hidden', html)


def test_overview_without_account_has_no_risk_panel_values(viewer_client):
    html = viewer_client.get(OVERVIEW).content.decode()

    assert selectors.overview_state(now=NOW)["risk"] is None
    assert 'data-bind="risk.budget_left_usdt" data-format="money">—<' in html


# -- pending approvals ---------------------------------------------------------------------------------

def test_overview_lists_pending_approvals_but_not_snoozed_or_decided(btc, viewer_client):
    TradingConfigFactory(mode="HYBRID")
    waiting = pending(btc)
    pending(btc, as_of=NOW - 25 * MINUTE, snoozed_until=NOW + 20 * MINUTE)
    pending(btc, as_of=NOW - 40 * MINUTE, outcome="executed", approval="approved")

    state = selectors.overview_state(now=NOW)

    assert [a["id"] for a in state["approvals"]] == [waiting.pk]
    assert (state["approvals"][0]["entry_zone_low"], state["approvals"][0]["stop_price"]) == (
        Decimal("64990.0"), Decimal("64800.5"))
    html = viewer_client.get(OVERVIEW).content.decode()
    assert f'data-approval-id="{waiting.pk}"' in html and html.count("data-approval-id=") == 1


def test_overview_approvals_viewer_sees_no_buttons(btc, viewer_client):
    TradingConfigFactory(mode="HYBRID")
    decision = pending(btc)

    html = viewer_client.get(OVERVIEW).content.decode()

    assert "only operators may approve, reject or snooze" in html and 'data-can-act="0"' in html
    assert reverse("dashboard:decision-approve", args=[decision.pk]) not in html
    assert "csrfmiddlewaretoken" not in html.split("data-approvals-card")[1].split("</section>")[0]


def test_overview_approvals_operator_gets_the_three_forms_returning_here(btc, operator_client):
    TradingConfigFactory(mode="HYBRID", snooze_minutes=45)
    decision = pending(btc)

    html = operator_client.get(OVERVIEW).content.decode()

    row = html.split(f'data-approval-id="{decision.pk}"')[1].split("</tr>")[0]
    for name in ("dashboard:decision-approve", "dashboard:decision-reject", "dashboard:decision-snooze"):
        assert f'action="{reverse(name, args=[decision.pk])}"' in row
    assert row.count('name="next" value="/"') == 3 and row.count("csrfmiddlewaretoken") == 3
    assert 'name="minutes" min="1" max="1440" value="45"' in row
    assert 'data-can-act="1"' in html


def test_overview_approvals_viewer_post_is_forbidden(btc, viewer_client):
    TradingConfigFactory(mode="HYBRID")
    decision = pending(btc)

    response = viewer_client.post(reverse("dashboard:decision-approve", args=[decision.pk]), {"next": "/"})

    assert response.status_code == 403
    decision.refresh_from_db()
    assert decision.outcome == "pending" and not AuditRecord.objects.exists()


def test_overview_approve_opens_the_position_the_overview_then_shows(btc, operator_client,
                                                                     django_capture_on_commit_callbacks):
    TradingConfigFactory(mode="HYBRID")
    account_ensure(name=account_name_for(btc.data_source))
    for minutes in (3, 2):  # closed 1m bars; the last closes at 14:09, inside the entry zone
        CandleFactory(instrument=btc, timeframe="1m", open_time=NOW - minutes * MINUTE, close=Decimal("65050"))
    decision = pending(btc)
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(LIVE_GROUP, channel)

    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(reverse("dashboard:decision-approve", args=[decision.pk]), {"next": "/"})

    assert response.status_code == 302 and response["Location"] == "/"
    position = Position.objects.get(decision=decision)
    events = async_to_sync(_drain)(layer, channel)
    assert ("position", position.pk) in [(e["event"], e["data"].get("id")) for e in events]
    # The page re-renders its positions from the state it asks for after such an event.
    state = selectors.overview_state(now=NOW)
    assert [p["id"] for p in state["positions"]] == [position.pk] and state["approvals"] == []
    html = operator_client.get(OVERVIEW).content.decode()
    assert f'data-position-id="{position.pk}"' in html
    assert "TP1 65300.5 <small>50%" in html and "TP2 65800.5" in html


async def _drain(layer, channel) -> list[dict]:
    out = []
    while True:
        try:
            out.append(await asyncio.wait_for(layer.receive(channel), timeout=0.05))
        except TimeoutError:
            return out


def test_overview_approve_refused_comes_back_as_a_message_on_the_overview(btc, operator_client):
    TradingConfigFactory(mode="HYBRID")
    decision = pending(btc, expires_at=NOW - MINUTE)

    response = operator_client.post(reverse("dashboard:decision-approve", args=[decision.pk]), {"next": "/"},
                                    follow=True)

    assert response.redirect_chain == [("/", 302)]
    assert any("expired" in str(m) for m in response.context["messages"])
    assert "expired" in response.content.decode().split("data-messages")[1].split("</div>")[0]


def test_overview_approve_needs_csrf(btc, django_user_model):
    TradingConfigFactory(mode="HYBRID")
    decision = pending(btc)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user_with_role(django_user_model, "op", "operator"))

    refused = client.post(reverse("dashboard:decision-snooze", args=[decision.pk]), {"next": "/"})
    html = client.get(OVERVIEW).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    done = client.post(reverse("dashboard:decision-snooze", args=[decision.pk]),
                       {"next": "/", "csrfmiddlewaretoken": token})

    assert refused.status_code == 403 and done.status_code == 302
    assert [str(m) for m in get_messages(done.wsgi_request)][0].startswith(f"Decision {decision.pk} snoozed until")


# -- positions ------------------------------------------------------------------------------------------

def test_overview_positions_show_mark_pnl_stop_and_ladder_with_filled_targets(btc, viewer_client):
    TradingConfigFactory(mode="HYBRID")
    account = AccountFactory(name="paper")
    CandleFactory(instrument=btc, timeframe="1m", open_time=NOW - 2 * MINUTE, close=Decimal("65100"))
    position = PositionFactory(account=account, instrument=btc, take_profits=[
        {"price": "65300.5", "share": "0.4", "filled": True}, {"price": "65600", "share": "0.6", "filled": False}])

    [row] = selectors.overview_state(now=NOW)["positions"]
    html = viewer_client.get(OVERVIEW).content.decode()

    assert row["take_profits"] == [
        {"label": "TP1", "price": Decimal("65300.5"), "share_pct": Decimal("40"), "filled": True},
        {"label": "TP2", "price": Decimal("65600.0"), "share_pct": Decimal("60"), "filled": False}]
    tr = html.split(f'data-position-id="{position.pk}"')[1].split("</tr>")[0]
    assert 'data-cell="stop">64800.5<' in tr and 'class="tp tp-filled">TP1 65300.5' in tr
    assert 'data-cell="mark">65100.0<' in tr and "+1.50" in tr
