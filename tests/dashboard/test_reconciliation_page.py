import datetime as dt
import re
from decimal import Decimal

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from dashboard.views_reconciliation import PAGE_SIZE, action_rows, redact
from decisions.models import AuditRecord
from execution.models import ReconciliationRun
from execution.reconciliation import trading_enabled
from tests.dashboard.factories import AccountFactory
from tests.dashboard.conftest import user_with_role

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 26, 9, 30, tzinfo=dt.UTC)
SECOND = dt.timedelta(seconds=1)
KEY_CIPHERTEXT = "gAAAA-ciphertext-of-the-api-key"
# What reconciliation stores (execution.reconciliation.runs): differences as the core's Difference,
# actions as its Action with the outcome the shell recorded.
DIFFERENCES = [
    {"kind": "missing_fill", "subject": "991", "ours": "", "venue": "0.010@60000", "detail": "tb-abc-entry"},
    {"kind": "external_order", "subject": "web_manual_1", "ours": "", "venue": "limit buy 0.010",
     "detail": "placed by manual"},
    {"kind": "missing_stop", "subject": "BTCUSDT", "ours": "59000", "venue": "none", "detail": "sell 0.010"},
]
ACTIONS = [
    {"kind": "book_fill", "symbol": "BTCUSDT", "client_order_id": "tb-abc-entry",
     "fill": {"client_order_id": "tb-abc-entry", "trade_id": "991", "ts_ms": 1795000000000, "price": "60000",
              "quantity": "0.010", "fee_usdt": "0.24"}, "outcome": "applied", "note": "booked trade 991"},
    {"kind": "adopt_external_order", "symbol": "BTCUSDT", "client_order_id": "web_manual_1", "side": "buy",
     "venue_order": {"client_order_id": "web_manual_1", "type": "limit", "side": "buy", "quantity": "0.010",
                     "status": "accepted"}, "outcome": "applied", "note": "adopted as external"},
    {"kind": "restore_stop", "symbol": "BTCUSDT", "side": "sell", "leg": "sl", "quantity": "0.010",
     "trigger_price": "59000", "outcome": "failed", "note": "ExchangeUnavailable: venue timed out"},
]


@pytest.fixture(autouse=True)
def frozen_now():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def demo():
    return AccountFactory(name="demo", broker="testnet", api_key_encrypted=KEY_CIPHERTEXT,
                          api_secret_encrypted="gAAAA-ciphertext-of-the-secret")


def run_of(account, *, minutes_ago=10, trigger="startup", clean=False, **fields) -> ReconciliationRun:
    started = NOW - dt.timedelta(minutes=minutes_ago)
    base = dict(differences=[] if clean else DIFFERENCES, actions=[] if clean else ACTIONS,
                finished_at=started + 2 * SECOND)
    return ReconciliationRun.objects.create(account=account, started_at=started, trigger=trigger, clean=clean,
                                            **(base | fields))


def get(client, name, *args, **params) -> str:
    response = client.get(reverse(name, args=args), params)
    assert response.status_code == 200
    return response.content.decode()


def section(html: str, element_id: str) -> str:
    start = html.index(f'id="{element_id}"')
    return html[start:html.index("</section>", start)]


def listed_runs(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'data-run="(\d+)"', html)]


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def acknowledge(client, run, confirm=True, note="stray order checked on the venue by hand"):
    data = ({"confirm": "on"} if confirm else {}) | ({"note": note} if note else {})
    return client.post(reverse("dashboard:reconciliation-acknowledge", args=[run.pk]), data)


# --- access ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["dashboard:reconciliations", "dashboard:reconciliation"])
def test_reconciliation_pages_anonymous_redirects_to_login(client, demo, name):
    args = [run_of(demo).pk] if name == "dashboard:reconciliation" else []

    response = client.get(reverse(name, args=args))

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_reconciliation_acknowledge_anonymous_redirects_and_changes_nothing(client, demo):
    run = run_of(demo)

    response = acknowledge(client, run)

    run.refresh_from_db()
    assert response.status_code == 302 and response.url.startswith(reverse("login"))
    assert run.acknowledged_by == "" and not AuditRecord.objects.exists()


def test_reconciliation_acknowledge_by_viewer_is_forbidden_and_changes_nothing(viewer_client, demo):
    run = run_of(demo)

    response = acknowledge(viewer_client, run)

    run.refresh_from_db()
    assert response.status_code == 403
    assert (run.acknowledged_by, run.acknowledged_at) == ("", None)
    assert not AuditRecord.objects.exists()
    assert trading_enabled(demo)[0] is False


def test_reconciliation_acknowledge_without_csrf_token_is_forbidden(demo, django_user_model):
    run = run_of(demo)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user_with_role(django_user_model, "operator", "operator"))

    response = acknowledge(client, run)

    run.refresh_from_db()
    assert response.status_code == 403 and run.acknowledged_by == ""


def test_reconciliation_acknowledge_get_is_not_allowed(operator_client, demo):
    run = run_of(demo)

    response = operator_client.get(reverse("dashboard:reconciliation-acknowledge", args=[run.pk]))

    run.refresh_from_db()
    assert response.status_code == 405 and run.acknowledged_by == ""


def test_reconciliation_detail_unknown_run_is_404(viewer_client):
    assert viewer_client.get(reverse("dashboard:reconciliation", args=[999])).status_code == 404


# --- the list ----------------------------------------------------------------------------------

def test_reconciliation_list_shows_each_run_newest_first_with_its_counts(viewer_client, demo):
    dirty = run_of(demo, minutes_ago=30)
    failed = run_of(demo, minutes_ago=20, trigger="periodic", differences=[], actions=[],
                    error="venue not read: ExchangeUnavailable: binanceusdm GET /fapi/v1/openOrders timed out")
    clean = run_of(demo, minutes_ago=10, trigger="periodic", clean=True, acknowledged_by="alice",
                   acknowledged_at=NOW - 5 * SECOND)

    runs = section(get(viewer_client, "dashboard:reconciliations"), "runs")

    assert listed_runs(runs) == [clean.pk, failed.pk, dirty.pk]
    dirty_row = runs[runs.index(f'data-run="{dirty.pk}"'):]
    assert "2026-11-26 09:00:00" in dirty_row and "2026-11-26 09:00:02" in dirty_row
    assert "3 differences" in dirty_row and '<td class="num">3</td>' in dirty_row and "startup" in dirty_row
    failed_row = runs[runs.index(f'data-run="{failed.pk}"'):runs.index(f'data-run="{dirty.pk}"')]
    assert "failed" in failed_row and "/fapi/v1/openOrders timed out" in failed_row
    clean_row = runs[runs.index(f'data-run="{clean.pk}"'):runs.index(f'data-run="{failed.pk}"')]
    assert "clean" in clean_row and "alice" in clean_row and "2026-11-26 09:29:55" in clean_row
    assert "3 runs" in runs


def test_reconciliation_list_dirty_filter_leaves_out_clean_runs(viewer_client, demo):
    dirty = run_of(demo, minutes_ago=30)
    run_of(demo, minutes_ago=20, trigger="periodic", clean=True)
    failed = run_of(demo, minutes_ago=10, trigger="periodic", differences=[], actions=[], error="venue not read")

    runs = section(get(viewer_client, "dashboard:reconciliations", dirty="on"), "runs")

    assert listed_runs(runs) == [failed.pk, dirty.pk]
    assert 'name="dirty" id="id_dirty" checked' in runs


def test_reconciliation_list_account_filter_shows_only_that_account(viewer_client, demo):
    other = AccountFactory(name="live-main", broker="live")
    ours = run_of(demo)
    run_of(other)

    runs = section(get(viewer_client, "dashboard:reconciliations", account=demo.pk), "runs")

    assert listed_runs(runs) == [ours.pk]


def test_reconciliation_list_bad_filter_is_400_with_the_reason(viewer_client, demo):
    response = viewer_client.get(reverse("dashboard:reconciliations"), {"account": "999"})

    assert response.status_code == 400
    assert "data-form-errors" in response.content.decode()


def test_reconciliation_list_pages_by_25(viewer_client, demo):
    runs = [run_of(demo, minutes_ago=100 - i, trigger="periodic") for i in range(PAGE_SIZE + 5)]

    first = section(get(viewer_client, "dashboard:reconciliations"), "runs")
    second = section(get(viewer_client, "dashboard:reconciliations", page=2), "runs")

    assert listed_runs(first) == [r.pk for r in reversed(runs)][:PAGE_SIZE]
    assert listed_runs(second) == [r.pk for r in reversed(runs)][PAGE_SIZE:]
    assert "page 1 of 2" in first and "?page=2" in first
    assert "page 2 of 2" in second and "?page=1" in second


def test_reconciliation_list_banner_names_each_account_whose_trading_is_disabled(viewer_client, demo):
    blocked = run_of(demo)
    opened = AccountFactory(name="live-main", broker="live")
    run_of(opened, clean=True)
    AccountFactory(name="paper")

    html = get(viewer_client, "dashboard:reconciliations")

    banners = re.findall(r'data-gate-blocked="([^"]+)"', html)
    assert banners == ["demo"]
    banner = html[html.index('data-gate-blocked="demo"'):]
    assert f"reconciliation #{blocked.pk}" in banner and "trading disabled until a clean run" in banner
    assert reverse("dashboard:reconciliation", args=[blocked.pk]) in banner
    gates = section(html, "gates")
    assert re.findall(r'data-gate="([^"]+)"', gates) == ["demo", "live-main"]   # paper accounts are not gated


def test_reconciliation_list_banner_for_account_never_reconciled(viewer_client, demo):
    html = get(viewer_client, "dashboard:reconciliations")

    assert 'data-gate-blocked="demo"' in html and "no start-up reconciliation of demo yet" in html


# --- the detail page ---------------------------------------------------------------------------

def test_reconciliation_detail_lists_each_difference_and_action(viewer_client, demo):
    run = run_of(demo)

    html = get(viewer_client, "dashboard:reconciliation", run.pk)

    differences = section(html, "differences")
    assert re.findall(r'data-difference="([^"]+)"', differences) == ["missing_fill", "external_order", "missing_stop"]
    assert "web_manual_1" in differences and "0.010@60000" in differences and "sell 0.010" in differences
    actions = section(html, "actions")
    assert re.findall(r'data-action="([^"]+)"', actions) == ["book_fill", "adopt_external_order", "restore_stop"]
    assert "tb-abc-entry" in actions and "trade 991 0.010@60000" in actions
    assert "venue limit buy 0.010 accepted" in actions and "trigger_price=59000" in actions
    assert '<td class="outcome-failed">failed</td>' in actions and "venue timed out" in actions


def test_reconciliation_detail_shows_error_without_credentials(viewer_client, demo):
    run = run_of(demo, differences=[], actions=[],
                 error='venue not read: AuthenticationError: binanceusdm GET https://fapi.binance.com/fapi/v1/'
                       'openOrders?timestamp=1&signature=5f2b9c0d1e {"code":-2015,"msg":"Invalid API-key"}')

    html = get(viewer_client, "dashboard:reconciliation", run.pk)

    assert "signature=***" in html and "5f2b9c0d1e" not in html
    assert "Invalid API-key" in html and "The venue could not be read" in html
    assert KEY_CIPHERTEXT not in html and "ciphertext-of-the-secret" not in html


def test_reconciliation_detail_action_not_yet_carried_out_says_so(viewer_client, demo):
    run = run_of(demo, actions=[{"kind": "mark_lost", "symbol": "BTCUSDT", "client_order_id": "tb-x-sl"}],
                 finished_at=None)

    html = get(viewer_client, "dashboard:reconciliation", run.pk)

    assert "not carried out" in section(html, "actions") and "not finished" in html


def test_reconciliation_detail_staff_sees_confirm_form(operator_client, demo):
    run = run_of(demo)

    form = section(get(operator_client, "dashboard:reconciliation", run.pk), "acknowledge")

    assert f'action="{reverse("dashboard:reconciliation-acknowledge", args=[run.pk])}"' in form
    assert "csrfmiddlewaretoken" in form
    assert 'type="checkbox" name="confirm" required' in form


def test_reconciliation_detail_viewer_sees_no_form(viewer_client, demo):
    run = run_of(demo)

    form = section(get(viewer_client, "dashboard:reconciliation", run.pk), "acknowledge")

    assert "<form" not in form and "Only operators may acknowledge" in form


# --- acknowledging -----------------------------------------------------------------------------

def test_reconciliation_acknowledge_by_operator_opens_trading_and_is_audited(operator_client, demo):
    run = run_of(demo)
    blocked = trading_enabled(demo)[0]

    response = acknowledge(operator_client, run)

    run.refresh_from_db()
    assert blocked is False and trading_enabled(demo)[0] is True
    assert (run.acknowledged_by, run.acknowledged_at) == ("operator", NOW)
    assert response.status_code == 302 and response.url == reverse("dashboard:reconciliation", args=[run.pk])
    assert messages_of(response) == [f"Run #{run.pk} acknowledged by operator. Trading on demo is enabled: "
                                     f"{trading_enabled(demo)[1]}."]
    record = AuditRecord.objects.get(kind=AuditRecord.Kind.OVERRIDE, subject=f"reconcile:{run.pk}")
    assert (record.actor, record.body["action"], record.body["differences"]) == ("operator", "acknowledged", 3)
    assert record.body["note"] == "stray order checked on the venue by hand"


def test_reconciliation_acknowledge_without_note_is_refused(operator_client, demo):
    run = run_of(demo)

    response = acknowledge(operator_client, run, note="")

    run.refresh_from_db()
    assert run.acknowledged_by == "" and trading_enabled(demo)[0] is False
    assert messages_of(response) == [f"Run #{run.pk} not acknowledged: say why trading may go on."]
    assert not AuditRecord.objects.exists()


def test_reconciliation_acknowledge_without_confirmation_is_refused(operator_client, demo):
    run = run_of(demo)

    response = acknowledge(operator_client, run, confirm=False)

    run.refresh_from_db()
    assert run.acknowledged_by == "" and trading_enabled(demo)[0] is False
    assert messages_of(response) == [f"Run #{run.pk} not acknowledged: tick the box to confirm you have read "
                                     f"its differences."]
    assert not AuditRecord.objects.exists()


def test_reconciliation_acknowledge_clean_run_is_refused(operator_client, demo):
    run = run_of(demo, clean=True)

    response = acknowledge(operator_client, run)

    run.refresh_from_db()
    assert (run.acknowledged_by, run.acknowledged_at) == ("", None)
    assert messages_of(response) == [f"Run #{run.pk} was clean: there is nothing to acknowledge; nothing changed."]
    assert not AuditRecord.objects.exists()


def test_reconciliation_acknowledge_twice_keeps_the_first_and_says_so(operator_client, demo):
    first_at = NOW - 60 * SECOND
    run = run_of(demo, acknowledged_by="alice", acknowledged_at=first_at)

    response = acknowledge(operator_client, run)

    run.refresh_from_db()
    assert (run.acknowledged_by, run.acknowledged_at) == ("alice", first_at)
    assert messages_of(response) == [f"Run #{run.pk} was already acknowledged by alice at 2026-11-26 09:29:00 UTC; "
                                     f"nothing changed."]
    assert not AuditRecord.objects.exists()


def test_reconciliation_acknowledge_run_before_a_restart_warns_trading_stays_disabled(operator_client, demo):
    old = run_of(demo, minutes_ago=30)
    latest = run_of(demo, minutes_ago=10)

    response = acknowledge(operator_client, old)

    old.refresh_from_db()
    assert old.acknowledged_by == "operator" and trading_enabled(demo)[0] is False
    [message] = get_messages(response.wsgi_request)
    assert message.level_tag == "warning" and "still disabled" in str(message) and f"#{latest.pk}" in str(message)


# --- helpers -----------------------------------------------------------------------------------

# Credentials as ccxt and Binance spell them in error text, and text that only looks like them.
REDACT_CASES = [
    ("GET /fapi/v1/order?symbol=BTCUSDT&signature=ab12cd", "GET /fapi/v1/order?symbol=BTCUSDT&signature=***"),
    ('{"apiKey": "k3y", "secret": "s3cr3t"}', '{"apiKey": "***", "secret": "***"}'),
    ("X-MBX-APIKEY: k3y", "X-MBX-APIKEY: ***"),
    ("listenKey=abc123 expired", "listenKey=*** expired"),
    ("Invalid API-key, IP, or permissions for action.", "Invalid API-key, IP, or permissions for action."),
    ("", ""),
]


@pytest.mark.parametrize(("text", "shown"), REDACT_CASES)
def test_redact_hides_credential_values_only(text, shown):
    assert redact(text) == shown


def test_action_rows_number_actions_and_keep_other_fields_as_parameters():
    run = ReconciliationRun(actions=[{"kind": "resize_stop", "symbol": "ETHUSDT", "client_order_id": "tb-q-sl",
                                      "quantity": Decimal("0.5"), "detail": "partial close"}, "legacy text"])

    rows = action_rows(run)

    assert [(r["number"], r["kind"], r["parameters"], r["detail"], r["outcome"]) for r in rows] == [
        (1, "resize_stop", "quantity=0.5", "partial close", ""), (2, "", "", "legacy text", "")]
