"""Control page: roles, the confirmation step of ON and the kill switch, audit rows and CSRF."""
import re
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from decisions.models import AuditRecord, TradingConfig
from decisions.selectors import trading_config_get
from tests.dashboard.conftest import user_with_role
from tests.paper_fixtures import paper_book

CONTROL = reverse("dashboard:control")
POSTS = ["dashboard:control-mode", "dashboard:control-pause", "dashboard:control-resume", "dashboard:control-stop",
         "dashboard:control-kill"]


def _config(**fields) -> TradingConfig:
    config = trading_config_get()
    TradingConfig.objects.filter(pk=config.pk).update(**fields)
    return trading_config_get()


def _control_records() -> int:
    """Count the audit records of people (order placement in the fixtures is audited as the engine)."""
    return AuditRecord.objects.exclude(actor="engine").count()


def _token(response) -> str:
    match = re.search(r'name="token" value="([^"]+)"', response.content.decode())
    assert match, "the confirmation page carries a token"
    return match.group(1)


def _messages(response) -> str:
    return " ".join(str(m) for m in response.context["messages"])


@pytest.fixture
def paper(db):
    """A paper account with an open position and a resting entry limit, priced by closed 1 m bars."""
    _, _, position, entry = paper_book(now=timezone.now(), tag="page-test")
    return position, entry


# -- reading ----------------------------------------------------------------------------------------

def test_control_page_viewer_reads_status_and_brokers_without_forms(viewer_client, paper):
    _config(mode="HYBRID", paused=True)

    response = viewer_client.get(CONTROL)

    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-control="mode">HYBRID<' in html and "Paused" in html
    assert 'data-account="paper"' in html and "broker-paper" in html
    assert "Only operators may pause, resume or stop the bot." in html
    assert 'data-form="kill"' not in html and 'data-form="mode"' not in html


def test_control_page_operator_sees_hybrid_and_on_disabled(operator_client, db):
    html = operator_client.get(CONTROL).content.decode()

    assert "Only admins may switch to HYBRID or ON." in html
    assert re.search(r'value="ON" disabled', html) and re.search(r'value="HYBRID" disabled', html)
    assert not re.search(r'value="SAFE" disabled', html)
    assert 'data-form="kill"' in html and 'data-form="stop"' in html


def test_control_page_admin_may_choose_every_mode(admin_role_client, db):
    html = admin_role_client.get(CONTROL).content.decode()

    assert "Only admins may" not in html and " disabled>" not in html.split('data-form="mode"')[1].split("</form>")[0]


def test_control_page_shows_stopped_once_paused_without_working_entries(operator_client, db):
    _config(paused=True)

    html = operator_client.get(CONTROL).content.decode()

    assert "Stopped" in html


# -- roles --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", POSTS)
def test_control_posts_viewer_is_forbidden_and_nothing_changes(viewer_client, name, db):
    before = _config(mode="HYBRID")

    response = viewer_client.post(reverse(name), {"mode": "SAFE", "reason": "try"})

    assert response.status_code == 403
    assert (trading_config_get().mode, trading_config_get().paused) == (before.mode, before.paused)
    assert _control_records() == 0


@pytest.mark.parametrize("name", POSTS)
def test_control_posts_anonymous_is_sent_to_log_in(client, name, db):
    response = client.post(reverse(name), {"reason": "x"})

    assert response.status_code == 302 and "login" in response["Location"]


@pytest.mark.parametrize("mode", ["HYBRID", "ON"])
def test_mode_switch_operator_may_not_raise_the_mode(operator_client, mode, db):
    _config(mode="SAFE")

    response = operator_client.post(reverse("dashboard:control-mode"), {"mode": mode, "reason": "go"})

    assert response.status_code == 403
    assert f"Only admins may switch the mode to {mode}." in response.content.decode()
    assert trading_config_get().mode == "SAFE" and _control_records() == 0


def test_mode_switch_operator_goes_safe_audited(operator_client, db):
    _config(mode="ON")

    response = operator_client.post(reverse("dashboard:control-mode"), {"mode": "SAFE", "reason": "odd fills"},
                                    follow=True)

    assert "Mode switched from ON to SAFE" in _messages(response)
    record = AuditRecord.objects.get(kind="mode_change")
    assert (record.actor, record.body["mode"], record.body["reason"]) == ("operator", {"from": "ON", "to": "SAFE"},
                                                                          "odd fills")


def test_mode_switch_admin_hybrid_needs_no_confirmation(admin_role_client, db):
    response = admin_role_client.post(reverse("dashboard:control-mode"), {"mode": "HYBRID", "reason": "approve"},
                                      follow=True)

    assert trading_config_get().mode == "HYBRID"
    assert "Mode switched from SAFE to HYBRID" in _messages(response)


def test_mode_switch_without_reason_changes_nothing(admin_role_client, db):
    response = admin_role_client.post(reverse("dashboard:control-mode"), {"mode": "HYBRID"}, follow=True)

    assert "reason: say why: the reason is audited" in _messages(response)
    assert trading_config_get().mode == "SAFE" and _control_records() == 0


# -- going ON: the confirmation step ------------------------------------------------------------------

def test_mode_on_first_post_only_asks_then_the_token_switches(admin_role_client, paper):
    first = admin_role_client.post(reverse("dashboard:control-mode"), {"mode": "ON", "reason": "reviewed"})

    assert first.status_code == 200 and "Confirm: Switch to ON" in first.content.decode()
    assert "Orders will be sent without approval to paper (PAPER)" in first.content.decode()
    assert trading_config_get().mode == "SAFE" and _control_records() == 0

    second = admin_role_client.post(reverse("dashboard:control-mode"), {"token": _token(first)}, follow=True)

    assert trading_config_get().mode == "ON"
    assert "Mode switched from SAFE to ON" in _messages(second)
    record = AuditRecord.objects.get(kind="mode_change")
    assert (record.actor, record.body["reason"]) == ("chief", "reviewed")


def test_mode_on_token_is_used_up(admin_role_client, db):
    token = _token(admin_role_client.post(reverse("dashboard:control-mode"), {"mode": "ON", "reason": "r"}))
    admin_role_client.post(reverse("dashboard:control-mode"), {"token": token})
    _config(mode="SAFE")

    again = admin_role_client.post(reverse("dashboard:control-mode"), {"token": token}, follow=True)

    assert "unknown or was already used" in _messages(again)
    assert trading_config_get().mode == "SAFE"


def test_mode_on_wrong_token_is_refused(admin_role_client, db):
    admin_role_client.post(reverse("dashboard:control-mode"), {"mode": "ON", "reason": "r"})

    response = admin_role_client.post(reverse("dashboard:control-mode"), {"token": "made-up"}, follow=True)

    assert "Mode not changed: this confirmation is unknown or was already used" in _messages(response)
    assert trading_config_get().mode == "SAFE" and _control_records() == 0


def test_mode_on_expired_token_is_refused(admin_role_client, db):
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        token = _token(admin_role_client.post(reverse("dashboard:control-mode"), {"mode": "ON", "reason": "r"}))
        traveller.shift(timedelta(minutes=5, seconds=1))

        response = admin_role_client.post(reverse("dashboard:control-mode"), {"token": token}, follow=True)

    assert "expired after 5 minutes" in _messages(response)
    assert trading_config_get().mode == "SAFE"


def test_mode_on_token_from_another_session_is_refused(admin_role_client, django_user_model, db):
    token = _token(admin_role_client.post(reverse("dashboard:control-mode"), {"mode": "ON", "reason": "r"}))
    other = Client()  # the same admin, signed in a second time: another session
    other.force_login(django_user_model.objects.get(username="chief"))

    response = other.post(reverse("dashboard:control-mode"), {"token": token}, follow=True)

    assert "unknown or was already used" in _messages(response)
    assert trading_config_get().mode == "SAFE"


def test_mode_on_token_of_the_kill_switch_is_refused(admin_role_client, db):
    token = _token(admin_role_client.post(reverse("dashboard:control-kill"), {"reason": "drill"}))

    response = admin_role_client.post(reverse("dashboard:control-mode"), {"token": token}, follow=True)

    assert "this confirmation is for kill, not mode" in _messages(response)
    assert trading_config_get().mode == "SAFE" and _control_records() == 0


def test_mode_on_confirmation_refused_when_the_role_was_taken_away(admin_role_client, django_user_model, db):
    token = _token(admin_role_client.post(reverse("dashboard:control-mode"), {"mode": "ON", "reason": "r"}))
    user = django_user_model.objects.get(username="chief")
    user.groups.clear()
    user.groups.add(user_with_role(django_user_model, "x", "operator").groups.get())

    response = admin_role_client.post(reverse("dashboard:control-mode"), {"token": token})

    assert response.status_code == 403
    assert trading_config_get().mode == "SAFE"


# -- pause, resume, stop ---------------------------------------------------------------------------

def test_pause_and_resume_audited_with_the_operator(operator_client, db):
    paused = operator_client.post(reverse("dashboard:control-pause"), {"reason": "CPI at 14:30"}, follow=True)
    assert trading_config_get().paused and "Paused" in _messages(paused)

    resumed = operator_client.post(reverse("dashboard:control-resume"), {}, follow=True)

    assert not trading_config_get().paused
    assert "Resumed" in _messages(resumed) and "The mode is SAFE" in _messages(resumed)
    records = list(AuditRecord.objects.filter(kind="mode_change").order_by("seq"))
    assert [(r.actor, r.body["reason"]) for r in records] == [("operator", "CPI at 14:30"), ("operator", "resumed")]


def test_pause_twice_says_nothing_changed(operator_client, db):
    operator_client.post(reverse("dashboard:control-pause"), {})

    response = operator_client.post(reverse("dashboard:control-pause"), {}, follow=True)

    assert "Already paused; nothing changed." in _messages(response)
    assert AuditRecord.objects.filter(kind="mode_change").count() == 1


def test_stop_cancels_the_working_entry_and_keeps_the_position(operator_client, paper):
    position, entry = paper

    response = operator_client.post(reverse("dashboard:control-stop"), {"reason": "maintenance"}, follow=True)

    entry.refresh_from_db()
    position.refresh_from_db()
    assert (entry.status, position.status) == ("canceled", "open")
    assert "Stopped: paused, 1 working entry order(s) cancelled" in _messages(response)
    assert "Stopped" in response.content.decode()
    assert AuditRecord.objects.get(kind="order", subject="account:paper").body["cancelled"] == [entry.client_order_id]


# -- the kill switch ---------------------------------------------------------------------------------

def test_kill_first_post_lists_what_will_go_and_changes_nothing(operator_client, paper):
    position, entry = paper
    _config(mode="ON")

    response = operator_client.post(reverse("dashboard:control-kill"), {"reason": "exchange incident"})

    html = response.content.decode()
    assert response.status_code == 200 and "Confirm: Kill switch" in html
    assert entry.client_order_id in html and "BTC/USDT:USDT" in html and "0.01" in html and "59000" in html
    assert "exchange incident" in html
    position.refresh_from_db()
    assert position.status == "open" and trading_config_get().mode == "ON"
    assert _control_records() == 0


def test_kill_confirmed_cancels_closes_goes_safe_and_audits(operator_client, paper):
    position, entry = paper
    _config(mode="ON")
    token = _token(operator_client.post(reverse("dashboard:control-kill"), {"reason": "exchange incident"}))

    response = operator_client.post(reverse("dashboard:control-kill"), {"token": token}, follow=True)

    position.refresh_from_db()
    entry.refresh_from_db()
    config = trading_config_get()
    assert (position.status, entry.status, config.mode, config.paused) == ("closed", "canceled", "SAFE", True)
    assert "Kill switch used (paper: 1 order(s) cancelled, 1 position(s) closed). Mode SAFE, paused." in \
        _messages(response)
    record = AuditRecord.objects.get(kind="order", subject="account:paper", actor="operator")
    assert (record.body["action"], record.body["reason"]) == ("kill_switch", "exchange incident")


def test_kill_without_token_or_reason_does_nothing(operator_client, paper):
    position, _ = paper

    response = operator_client.post(reverse("dashboard:control-kill"), {}, follow=True)

    assert "Kill switch not used: reason: say why" in _messages(response)
    position.refresh_from_db()
    assert position.status == "open" and _control_records() == 0


def test_kill_reused_token_is_refused(operator_client, paper):
    token = _token(operator_client.post(reverse("dashboard:control-kill"), {"reason": "drill"}))
    operator_client.post(reverse("dashboard:control-kill"), {"token": token})
    count = _control_records()

    response = operator_client.post(reverse("dashboard:control-kill"), {"token": token}, follow=True)

    assert "Kill switch not used: this confirmation is unknown or was already used" in _messages(response)
    assert _control_records() == count


# -- CSRF ---------------------------------------------------------------------------------------------

def _csrf_client(django_user_model, role: str) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user_with_role(django_user_model, f"csrf-{role}", role))
    return client


def _csrf(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


@pytest.mark.parametrize("name", POSTS)
def test_control_posts_without_csrf_token_are_refused(django_user_model, name, db):
    client = _csrf_client(django_user_model, "admin")

    response = client.post(reverse(name), {"mode": "SAFE", "reason": "x"})

    assert response.status_code == 403
    assert _control_records() == 0


def test_control_csrf_token_of_the_page_lets_the_two_steps_through(django_user_model, db):
    client = _csrf_client(django_user_model, "admin")
    csrf = _csrf(client.get(CONTROL).content.decode())

    first = client.post(reverse("dashboard:control-mode"), {"mode": "ON", "reason": "r", "csrfmiddlewaretoken": csrf})
    assert first.status_code == 200
    second = client.post(reverse("dashboard:control-mode"),
                         {"token": _token(first), "csrfmiddlewaretoken": _csrf(first.content.decode())})

    assert second.status_code == 302 and trading_config_get().mode == "ON"
