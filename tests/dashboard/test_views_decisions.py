import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.urls import reverse

from dashboard.views_decisions import plain, score_view, take_profit_ladder
from decisions.models import AuditRecord, Decision, GateOverride
from execution.models import Order
from tests.dashboard.factories import (AccountFactory, CandleFactory, DecisionFactory, InstrumentFactory,
                                      TradingConfigFactory)

# Until dashboard/urls.py carries the Decisions patterns, this urlconf adds them under the same names.
pytestmark = pytest.mark.django_db

# A Wednesday afternoon: 15:10 in Warsaw, inside the default trading hours (07:00-23:00 local).
NOW = dt.datetime(2026, 11, 25, 14, 10, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)
LADDER = [{"price": "65300.5", "share": "0.4"}, {"price": "65550.5", "share": "0.4"},
          {"price": "65800.5", "share": "0.2"}]
def epoch_ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


ACTIONS = ["dashboard:decision-approve", "dashboard:decision-reject", "dashboard:decision-snooze"]


@pytest.fixture(autouse=True)
def frozen_now():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def config():
    return TradingConfigFactory(mode="HYBRID")


@pytest.fixture
def btc():
    return InstrumentFactory(data_source="exchange")


def pending(instrument, **overrides) -> Decision:
    base = dict(instrument=instrument, timeframe="15m", as_of=NOW - 10 * MINUTE, action="LONG", mode="HYBRID",
                outcome="pending", approval="pending", entry_price=Decimal("65050"), stop_price=Decimal("64800.5"),
                target_price=Decimal("65800.5"), quantity=Decimal("0.015"), take_profits=LADDER,
                entry_zone_low=Decimal("64990"), entry_zone_high=Decimal("65110"), risk_level="medium",
                confidence=0.71, success_probability=0.56, probability_source="calibrated on 40 trades",
                expires_at=NOW + dt.timedelta(hours=4), reason="trend up; waiting for approval (confidence 71%)")
    return DecisionFactory(**(base | overrides))


def journal_row(instrument, as_of, **overrides) -> Decision:
    base = dict(instrument=instrument, timeframe="15m", as_of=as_of, action="FLAT", outcome="flat",
                reason="no signal", entry_price=None, stop_price=None, target_price=None, quantity=None)
    return DecisionFactory(**(base | overrides))


def page(client, **params) -> str:
    response = client.get(reverse("dashboard:decisions"), params)
    assert response.status_code == 200
    return response.content.decode()


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def section(html: str, element_id: str) -> str:
    start = html.index(f'id="{element_id}"')
    return html[start:html.index("</section>", start)]


# --- access ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["dashboard:decisions", "dashboard:decision"])
def test_decisions_pages_anonymous_redirects_to_login(client, btc, name):
    args = [pending(btc).pk] if name == "dashboard:decision" else []

    response = client.get(reverse(name, args=args))

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


@pytest.mark.parametrize("name", [*ACTIONS, "dashboard:override-revoke", "dashboard:override-create"])
def test_decisions_post_by_viewer_is_forbidden(viewer_client, config, btc, name):
    decision = pending(btc)
    override = GateOverride.objects.create(gate="cooldown", until=NOW + dt.timedelta(hours=1), reason="test",
                                           created_by="alice", created_at=NOW - MINUTE)
    args = [] if name == "dashboard:override-create" else [override.pk if "override" in name else decision.pk]

    response = viewer_client.post(reverse(name, args=args), {"gate": "cooldown", "until": "2026-11-25T16:00",
                                                             "reason": "x", "note": "no"})

    assert response.status_code == 403
    decision.refresh_from_db()
    override.refresh_from_db()
    assert (decision.outcome, decision.snoozed_until, override.revoked_at) == ("pending", None, None)
    assert not AuditRecord.objects.exists()


# --- the approval queue ------------------------------------------------------------------------

def test_decisions_page_viewer_sees_queue_without_buttons(viewer_client, config, btc):
    decision = pending(btc)

    html = page(viewer_client)

    queue = section(html, "queue")
    assert reverse("dashboard:decision", args=[decision.pk]) in queue
    assert "64990 – 65110" in queue and "64800.5" in queue and "0.015" in queue
    assert "TP1 65300.5" in queue and "TP3 65800.5" in queue and "40%" in queue
    assert "0.71" in queue and "0.56" in queue and "calibrated on 40 trades" in queue and "medium" in queue
    assert "4\xa0hours" in queue and "waiting for approval" in queue
    assert "Approve" not in queue and "only operators" in queue
    assert reverse("dashboard:decision-approve", args=[decision.pk]) not in html


def test_decisions_page_staff_sees_action_forms_with_snooze_default(operator_client, config, btc):
    decision = pending(btc)

    queue = section(page(operator_client), "queue")

    for name in ACTIONS:
        assert f'action="{reverse(name, args=[decision.pk])}"' in queue
    assert queue.count("csrfmiddlewaretoken") == 3
    assert 'name="minutes" min="1" max="1440" value="30"' in queue
    assert 'name="note"' in queue


def test_decisions_page_snoozed_decisions_listed_apart(viewer_client, config, btc):
    asleep = pending(btc, as_of=NOW - 25 * MINUTE, snoozed_until=NOW + 20 * MINUTE, approval_by="operator")
    awake = pending(btc, as_of=NOW - 40 * MINUTE, snoozed_until=NOW - MINUTE)
    newest = pending(btc, as_of=NOW - 10 * MINUTE)

    html = page(viewer_client)

    queue, snoozed = section(html, "queue"), section(html, "snoozed")
    detail = {d.pk: reverse("dashboard:decision", args=[d.pk]) for d in (asleep, awake, newest)}
    assert detail[asleep.pk] not in queue and detail[asleep.pk] in snoozed
    assert "2026-11-25 14:30" in snoozed and "20\xa0minutes" in snoozed and "operator" in snoozed
    assert queue.index(detail[newest.pk]) < queue.index(detail[awake.pk])  # newest bar first


def test_decisions_page_expired_pending_decision_is_marked_expired(viewer_client, config, btc):
    decision = pending(btc, as_of=NOW - dt.timedelta(hours=5), expires_at=NOW - MINUTE)

    queue = section(page(viewer_client), "queue")

    assert reverse("dashboard:decision", args=[decision.pk]) in queue
    assert '<strong class="neg">expired</strong>' in queue


def test_decision_reject_by_operator_records_note_and_audit(operator_client, config, btc):
    decision = pending(btc)

    response = operator_client.post(reverse("dashboard:decision-reject", args=[decision.pk]), {"note": " too late "})

    assert response.status_code == 302 and response.url == reverse("dashboard:decisions")
    assert messages_of(response) == [f"Decision {decision.pk} rejected."]
    decision.refresh_from_db()
    assert (decision.outcome, decision.approval, decision.approval_by, decision.approval_at,
            decision.approval_note) == ("rejected", "rejected", "operator", NOW, "too late")
    record = AuditRecord.objects.get(kind="approval")
    assert (record.actor, record.subject, record.body["action"]) == ("operator", f"decision:{decision.pk}",
                                                                     "rejected")


@pytest.mark.parametrize(("minutes", "expires_in", "until"), [
    ("", dt.timedelta(hours=4), NOW + 30 * MINUTE),          # empty: TradingConfig.snooze_minutes
    ("10", dt.timedelta(hours=4), NOW + 10 * MINUTE),
    ("60", 15 * MINUTE, NOW + 15 * MINUTE),                   # never past the decision's expiry
])
def test_decision_snooze_by_operator_sets_until_and_audits(operator_client, config, btc, minutes, expires_in, until):
    decision = pending(btc, expires_at=NOW + expires_in)

    response = operator_client.post(reverse("dashboard:decision-snooze", args=[decision.pk]), {"minutes": minutes})

    assert response.status_code == 302
    assert messages_of(response) == [f"Decision {decision.pk} snoozed until {until:%Y-%m-%d %H:%M} UTC."]
    decision.refresh_from_db()
    assert (decision.outcome, decision.snoozed_until, decision.approval_by) == ("pending", until, "operator")
    assert AuditRecord.objects.get(kind="approval").body["action"] == "snoozed"


@pytest.mark.parametrize(("minutes", "message"), [
    ("0", "greater than or equal to 1"),
    ("soon", "Enter a whole number"),
])
def test_decision_snooze_bad_minutes_shows_error_unchanged(operator_client, config, btc, minutes, message):
    decision = pending(btc)

    response = operator_client.post(reverse("dashboard:decision-snooze", args=[decision.pk]), {"minutes": minutes})

    assert response.status_code == 302
    assert message in messages_of(response)[0]
    decision.refresh_from_db()
    assert decision.snoozed_until is None and not AuditRecord.objects.exists()


def test_decision_reject_twice_second_is_refused_with_reason(operator_client, config, btc):
    decision = pending(btc)
    url = reverse("dashboard:decision-reject", args=[decision.pk])
    operator_client.post(url)

    response = operator_client.post(url, follow=True)

    assert f"Decision {decision.pk}: decision {decision.pk} is rejected by an operator, not pending" in \
        response.content.decode()
    assert AuditRecord.objects.filter(kind="approval").count() == 1


def test_decision_approve_expired_names_expired(operator_client, config, btc):
    decision = pending(btc, as_of=NOW - dt.timedelta(hours=5), expires_at=NOW - MINUTE)

    response = operator_client.post(reverse("dashboard:decision-approve", args=[decision.pk]))

    assert response.status_code == 302
    assert messages_of(response) == [f"Decision {decision.pk}: decision {decision.pk} expired at "
                                     f"2026-11-25 14:09 UTC"]
    decision.refresh_from_db()
    assert decision.outcome != "executed" and not decision.orders.exists()


def test_decision_approve_by_operator_executes_and_audits(operator_client, config, btc):
    from execution.selectors import account_name_for
    from execution.services import account_ensure

    account_ensure(name=account_name_for(btc.data_source))
    for minutes in (3, 2):  # closed 1m bars; the last closes at 14:09, inside the entry zone
        CandleFactory(instrument=btc, timeframe="1m", open_time=NOW - minutes * MINUTE, close=Decimal("65050"))
    decision = pending(btc)

    response = operator_client.post(reverse("dashboard:decision-approve", args=[decision.pk]))

    assert response.status_code == 302
    assert messages_of(response) == [f"Decision {decision.pk} approved and executed: 1 order(s) placed."]
    decision.refresh_from_db()
    assert (decision.outcome, decision.approval, decision.approval_by, decision.approval_at) == \
        ("executed", "approved", "operator", NOW)
    assert list(decision.orders.values_list("leg", "status", "type")) == [("entry", "filled", "market")]
    record = AuditRecord.objects.get(kind="approval")
    assert (record.actor, record.body["action"]) == ("operator", "approved")


@pytest.mark.parametrize("name", ACTIONS)
def test_decision_action_unknown_decision_is_404(operator_client, config, name):
    assert operator_client.post(reverse(name, args=[999])).status_code == 404


@pytest.mark.parametrize(("next_url", "lands_on"), [
    ("detail", "detail"),
    ("https://evil.example/", "decisions"),
    ("", "decisions"),
])
def test_decision_action_redirects_only_to_this_site(operator_client, config, btc, next_url, lands_on):
    decision = pending(btc)
    urls = {"detail": reverse("dashboard:decision", args=[decision.pk]), "decisions": reverse("dashboard:decisions")}

    response = operator_client.post(reverse("dashboard:decision-snooze", args=[decision.pk]),
                                 {"next": urls.get(next_url, next_url)})

    assert response.url == urls[lands_on]


def test_decision_reject_note_too_long_is_refused(operator_client, config, btc):
    decision = pending(btc)

    response = operator_client.post(reverse("dashboard:decision-reject", args=[decision.pk]), {"note": "x" * 256})

    assert "at most 255 characters" in messages_of(response)[0]
    decision.refresh_from_db()
    assert decision.outcome == "pending"


# --- the journal and "why at" --------------------------------------------------------------------

@pytest.fixture
def journal(btc):
    """Four bars of 15m decisions: 13:30 flat, 13:45 blocked short, 14:00 executed long, 14:15 rejected long."""
    t = dt.datetime(2026, 11, 25, 13, 30, tzinfo=dt.UTC)
    blocked = [{"name": "daily_loss", "verdict": "allow", "reason": "day -0.2%"},
               {"name": "trading_hours", "verdict": "block", "reason": "outside 07:00-23:00",
                "until_ms": epoch_ms(dt.datetime(2026, 11, 26, 6, tzinfo=dt.UTC))},
               {"name": "spread", "verdict": "block", "reason": "spread 9 bps"}]
    return {
        "flat": journal_row(btc, t),
        "blocked": journal_row(btc, t + 15 * MINUTE, action="SHORT", outcome="blocked", gates=blocked,
                               reason="blocked by trading_hours: outside 07:00-23:00", confidence=0.4),
        "executed": journal_row(btc, t + 30 * MINUTE, action="LONG", outcome="executed", approval="auto",
                                reason="trend up; auto-approved", confidence=0.83),
        "rejected": journal_row(btc, t + 45 * MINUTE, action="LONG", outcome="rejected", approval="rejected",
                                approval_by="alice", reason="trend up; waiting"),
    }


@pytest.mark.parametrize(("params", "shown"), [
    ({}, {"flat", "blocked", "executed", "rejected"}),
    ({"outcome": "blocked"}, {"blocked"}),
    ({"action": "LONG"}, {"executed", "rejected"}),
    ({"action": "LONG", "outcome": "rejected"}, {"rejected"}),
    ({"action": "SHORT", "outcome": "executed"}, set()),
])
def test_journal_filters_by_outcome_and_action(viewer_client, config, journal, params, shown):
    rows = section(page(viewer_client, **params), "journal")

    assert {name for name, d in journal.items() if f'data-decision="{d.pk}"' in rows} == shown


def test_journal_row_shows_first_blocking_gate_approval_and_confidence(viewer_client, config, journal):
    rows = section(page(viewer_client), "journal")

    assert '<span class="verdict-block">trading_hours</span>: outside 07:00-23:00' in rows
    assert "spread 9 bps" not in rows  # only the first (deepest) block
    assert "auto-approved (confidence)" in rows and "by alice" in rows and "0.83" in rows


@pytest.mark.parametrize(("params", "message"), [
    ({"outcome": "won"}, "Select a valid choice. won is not one of the available choices."),
    ({"action": "BUY"}, "Select a valid choice. BUY is not one of the available choices."),
    ({"at": "yesterday"}, "Enter a valid date/time."),
    ({"page": "0"}, "greater than or equal to 1"),
])
def test_journal_bad_parameter_is_400_with_message(viewer_client, config, params, message):
    response = viewer_client.get(reverse("dashboard:decisions"), params)

    assert response.status_code == 400
    assert message in response.content.decode()


def test_journal_pages_by_fifty_newest_first(viewer_client, config, btc):
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    rows = [journal_row(btc, start + i * 15 * MINUTE) for i in range(51)]

    first, second = page(viewer_client), page(viewer_client, page="2")

    assert section(first, "journal").count("data-decision=") == 50
    assert "page 1 of 2" in first and "?page=2" in first
    assert section(second, "journal").count("data-decision=") == 1
    assert f'data-decision="{rows[0].pk}"' in second


@pytest.mark.parametrize(("at", "expected"), [
    ("2026-11-25T14:00", "executed"),        # exactly at a bar close
    ("2026-11-25T14:05", "executed"),        # between closes: the last bar closed by then
    ("2026-11-25T13:44:59Z", "flat"),
    ("2026-11-25T14:15+00:00", "rejected"),
])
def test_why_at_shows_last_decision_made_by_then(viewer_client, config, journal, at, expected):
    why = section(page(viewer_client, at=at), "why")

    decision = journal[expected]
    answer = why[why.index("data-why-answer"):why.index("</p>", why.index("data-why-answer"))]
    assert f'<a href="{reverse("dashboard:decision", args=[decision.pk])}">{decision.as_of:%Y-%m-%d %H:%M}</a>' \
        in answer
    assert decision.get_outcome_display() in answer


def test_why_at_between_bars_says_it_was_the_last_closed_bar(viewer_client, config, journal):
    between, exact = section(page(viewer_client, at="2026-11-25T14:05"), "why"), \
        section(page(viewer_client, at="2026-11-25T14:00"), "why")

    assert "(the last bar that had closed)" in between and "(the last bar that had closed)" not in exact


def test_why_at_before_any_decision_says_none(viewer_client, config, journal):
    why = section(page(viewer_client, at="2026-11-25T13:29"), "why")

    assert "No decision had been made by 2026-11-25 13:29 UTC." in why


# --- gate overrides ----------------------------------------------------------------------------

def test_override_create_by_admin_is_audited_and_listed(admin_role_client, config):
    response = admin_role_client.post(reverse("dashboard:override-create"),
                                      {"gate": "cooldown", "until": "2026-11-25T16:00", "reason": "manual re-entry",
                                       "confirm": "on"}, follow=True)

    override = GateOverride.objects.get()
    assert (override.gate, override.until, override.created_by, override.created_at) == \
        ("cooldown", dt.datetime(2026, 11, 25, 16, tzinfo=dt.UTC), "chief", NOW)
    record = AuditRecord.objects.get(kind="override")
    assert (record.actor, record.subject, record.body["action"]) == ("chief", "gate:cooldown", "created")
    html = response.content.decode()
    assert "Gate cooldown overridden until 2026-11-25 16:00 UTC." in html
    assert reverse("dashboard:override-revoke", args=[override.pk]) in section(html, "overrides")


def test_override_create_by_operator_is_forbidden_and_form_hidden(operator_client, config):
    response = operator_client.post(reverse("dashboard:override-create"),
                                    {"gate": "cooldown", "until": "2026-11-25T16:00", "reason": "x", "confirm": "on"})

    assert response.status_code == 403 and b"Only admins may override risk gates." in response.content
    assert not GateOverride.objects.exists() and not AuditRecord.objects.exists()
    html = section(page(operator_client), "overrides")
    assert "Only admins may override a risk gate." in html and reverse("dashboard:override-create") not in html


@pytest.mark.parametrize(("data", "message"), [
    ({"gate": "cooldown", "until": "2026-11-25T14:00", "reason": "late"}, "is not in the future"),
    ({"gate": "daily_loss", "until": "2026-11-26T15:00", "reason": "long"}, "at most 24 hours"),
    ({"gate": "moon_phase", "until": "2026-11-25T16:00", "reason": "x"}, "moon_phase is not one of the"),
    ({"gate": "cooldown", "until": "2026-11-25T16:00", "reason": "  "}, "This field is required."),
    ({"gate": "cooldown", "until": "2026-11-25T16:00", "reason": "ok", "confirm": ""}, "tick the confirmation"),
])
def test_override_create_refused_shows_message_and_keeps_form(admin_role_client, config, data, message):
    response = admin_role_client.post(reverse("dashboard:override-create"), {"confirm": "on"} | data)

    assert response.status_code == 400
    html = section(response.content.decode(), "overrides")
    assert message in html
    assert f'value="{data["until"]}"' in html  # the operator's input is kept
    assert not GateOverride.objects.exists() and not AuditRecord.objects.exists()


def test_override_revoke_by_operator_is_audited(operator_client, config):
    override = GateOverride.objects.create(gate="cooldown", until=NOW + dt.timedelta(hours=1), reason="test",
                                           created_by="alice", created_at=NOW - MINUTE)

    response = operator_client.post(reverse("dashboard:override-revoke", args=[override.pk]))

    assert messages_of(response) == ["Override of cooldown revoked."]
    override.refresh_from_db()
    assert (override.revoked_at, override.revoked_by) == (NOW, "operator")
    record = AuditRecord.objects.get(kind="override")
    assert (record.actor, record.body["action"]) == ("operator", "revoked")
    assert "No active overrides." in section(page(operator_client), "overrides")


def test_override_revoke_finished_override_changes_nothing(operator_client, config):
    override = GateOverride.objects.create(gate="cooldown", until=NOW - MINUTE, reason="test",
                                           created_by="alice", created_at=NOW - dt.timedelta(hours=1))

    response = operator_client.post(reverse("dashboard:override-revoke", args=[override.pk]))

    assert messages_of(response) == ["Override of cooldown had already ended; nothing changed."]
    assert not AuditRecord.objects.exists()


def test_overrides_card_shows_gates_blocking_latest_decision(viewer_client, config, btc):
    gates = [{"name": "daily_loss", "verdict": "block", "reason": "day -2.1% (limit 2%)",
              "until_ms": epoch_ms(dt.datetime(2026, 11, 26, 23, tzinfo=dt.UTC))},
             {"name": "cooldown", "verdict": "allow", "reason": "no trade yet"}]
    journal_row(btc, NOW - 15 * MINUTE, action="SHORT", outcome="blocked",
                gates=[{"name": "spread", "verdict": "block", "reason": "spread 9 bps"}])
    latest = journal_row(btc, NOW, action="LONG", outcome="blocked", gates=gates)

    card = section(page(viewer_client), "overrides")

    assert reverse("dashboard:decision", args=[latest.pk]) in card
    assert "<strong>daily_loss</strong>: day -2.1% (limit 2%)" in card
    assert "paused until 2026-11-26 23:00 UTC" in card
    assert "cooldown" not in card.split("<table")[0] and "spread" not in card  # allowed, or an older bar
    assert "Revoke" not in card and "Override a gate" not in card  # a viewer gets no forms


# --- the decision detail -------------------------------------------------------------------------

def test_decision_detail_lists_packet_gates_rationale_score_and_orders(viewer_client, config, btc):
    gates = [{"name": "daily_loss", "verdict": "allow", "reason": "day +0.1%"},
             {"name": "volatility", "verdict": "shrink", "reason": "ATR percentile 95", "size_factor": 0.5},
             {"name": "cooldown", "verdict": "block", "reason": "last trade 5 min ago",
              "until_ms": epoch_ms(NOW + 5 * MINUTE)}]
    parts = {"votes": [{"strategy": "rules", "side": 1, "strength": 0.8, "reason": "trend up, BOS"},
                       {"strategy": "rsi", "side": 0, "strength": 0.0, "reason": "RSI 52"}],
             "aggregate": {"method": "first", "side": "LONG", "strength": 0.8, "reason": "rules first"},
             "edge": {"long": 0.66, "short": 0.31, "mtf_adjustment_long": 0.05, "mtf_adjustment_short": -0.1,
                      "parts": [{"name": "fvg", "weight": 0.15, "long": 0.7, "short": 0.2, "available": True,
                                 "note": "fresh FVG below"},
                                {"name": "whale", "weight": 0.0, "long": None, "short": None, "available": False,
                                 "note": "no reading"}]},
             "fusion": {"confidence": 0.71, "technical": 0.52, "model": 0.19, "reason": "0.65 x 0.8 + 0.35 x 0.66"},
             "calibration": {"trades": 40}}
    decision = pending(btc, gates=gates, score_parts=parts, approval_note="", edge_long=0.66, edge_short=0.31,
                       rationale=["trend: up on 15m", {"name": "momentum", "value": "strong"}])
    Order.objects.create(account=AccountFactory(), instrument=btc, decision=decision,
                         client_order_id="paper-1-15m-entry", intent_id="abc", leg="entry", side="buy",
                         type="market", quantity=Decimal("0.015"), status="filled", filled_quantity=Decimal("0.015"),
                         average_price=Decimal("65052.5"), created_at=NOW, updated_at=NOW)

    response = viewer_client.get(reverse("dashboard:decision", args=[decision.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert "64990 – 65110" in html and "TP2 65550.5" in html and "closes 20%" in html
    assert "calibrated on 40 trades" in html and "Pending" in html and "0.660 / 0.310" in html
    assert "<li>trend: up on 15m</li>" in html and "<li>momentum: strong</li>" in html
    assert '<td class="verdict-block">block</td><td class="wrap">last trade 5 min ago</td>' in html
    assert "2026-11-25 14:15" in html and "0.5" in html  # cooldown until; volatility size factor
    assert "First blocking gate" in html and "trend up, BOS" in html and "fresh FVG below" in html
    assert "not available; no reading" in html and "0.65 x 0.8 + 0.35 x 0.66" in html
    assert "&quot;trades&quot;: 40" in html  # a part the page has no table for stays as JSON
    orders = html[html.index("data-orders"):]
    assert "paper-1-15m-entry" in orders and "Filled" in orders and "65052.5" in orders and "Market" in orders
    assert "Approve, reject or snooze" not in html  # a viewer gets no link to act


def test_decision_detail_staff_pending_links_to_queue_and_audit(operator_client, config, btc):
    decision = pending(btc)
    operator_client.post(reverse("dashboard:decision-snooze", args=[decision.pk]), {"minutes": "5"})

    html = operator_client.get(reverse("dashboard:decision", args=[decision.pk])).content.decode()

    assert f'{reverse("dashboard:decisions")}#decision-{decision.pk}' in html
    assert "action=snoozed" in html and "No orders" in html


def test_decision_detail_unknown_is_404(viewer_client):
    assert viewer_client.get(reverse("dashboard:decision", args=[999])).status_code == 404


# --- helpers ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "text"), [
    (Decimal("65000.0000000000"), "65000"),   # not 6.5E+4
    (Decimal("64800.5000000000"), "64800.5"),
    (Decimal("0.0150000000"), "0.015"),
    (None, None),
])
def test_plain_prints_fixed_point_without_trailing_zeros(value, text):
    assert plain(value) == text


def test_take_profit_ladder_numbers_targets_and_shares():
    decision = DecisionFactory.build(take_profits=LADDER[:2] + [{"price": "65800.5", "share": "n/a"}])

    assert [(t["label"], t["price"], t["share_pct"]) for t in take_profit_ladder(decision)] == [
        ("TP1", "65300.5", Decimal("40.0")), ("TP2", "65550.5", Decimal("40.0")), ("TP3", "65800.5", None)]


@pytest.mark.parametrize("parts", [{}, None, [], {"votes": "garbled", "edge": 3}])
def test_score_view_tolerates_missing_or_odd_parts(parts):
    view = score_view(parts)

    assert (view["votes"], view["edge_parts"], view["aggregate"], view["fusion"]) == ([], [], None, None)
