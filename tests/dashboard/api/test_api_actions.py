"""Approve, reject and snooze over the API: the same services as the Decisions page, audited, 409 when refused."""
import datetime as dt
from decimal import Decimal

import pytest
import time_machine

from decisions.models import AuditRecord
from tests.dashboard.factories import CandleFactory, DecisionFactory, InstrumentFactory, TradingConfigFactory

pytestmark = pytest.mark.django_db

# A Wednesday afternoon, inside the default trading hours (07:00-23:00 Warsaw).
NOW = dt.datetime(2026, 11, 25, 14, 10, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture(autouse=True)
def frozen_now():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def btc():
    TradingConfigFactory(mode="HYBRID")
    return InstrumentFactory(data_source="exchange")


def pending(instrument, **overrides):
    base = dict(instrument=instrument, timeframe="15m", as_of=NOW - 10 * MINUTE, action="LONG", mode="HYBRID",
                outcome="pending", approval="pending", entry_price=Decimal("65050"), stop_price=Decimal("64800.5"),
                target_price=Decimal("65800.5"), quantity=Decimal("0.015"),
                take_profits=[{"price": "65300.5", "share": "0.4"}, {"price": "65550.5", "share": "0.4"},
                              {"price": "65800.5", "share": "0.2"}],
                entry_zone_low=Decimal("64990"), entry_zone_high=Decimal("65110"), confidence=0.71,
                expires_at=NOW + dt.timedelta(hours=4), reason="trend up; waiting for approval")
    return DecisionFactory(**(base | overrides))


def test_approve_executes_opens_the_position_and_audits_the_operator(btc, operator_api):
    from execution.selectors import account_name_for
    from execution.services import account_ensure

    account_ensure(name=account_name_for(btc.data_source))
    for minutes in (3, 2):  # closed 1m bars; the last closes at 14:09, inside the entry zone
        CandleFactory(instrument=btc, timeframe="1m", open_time=NOW - minutes * MINUTE, close=Decimal("65050"))
    decision = pending(btc)

    response = operator_api.post(f"/api/decisions/{decision.pk}/approve/")

    assert response.status_code == 200
    body = response.json()
    assert (body["outcome"], body["approval"], body["approval_by"], body["approval_at"]) == (
        "executed", "approved", "api-operator", "2026-11-25T14:10:00Z")
    assert list(decision.orders.values_list("leg", "status")) == [("entry", "filled")]
    assert AuditRecord.objects.get(kind="approval").actor == "api-operator"


def test_approve_outside_entry_zone_is_409_and_changes_nothing(btc, operator_api):
    CandleFactory(instrument=btc, timeframe="1m", open_time=NOW - 2 * MINUTE, close=Decimal("66000"))
    decision = pending(btc)

    response = operator_api.post(f"/api/decisions/{decision.pk}/approve/")

    assert response.status_code == 409
    assert "left the entry zone" in response.json()["detail"]
    decision.refresh_from_db()
    assert (decision.outcome, decision.approval) == ("pending", "pending")


def test_reject_keeps_the_note(btc, operator_api):
    decision = pending(btc)

    response = operator_api.post(f"/api/decisions/{decision.pk}/reject/", {"note": "news at 15:00"}, format="json")

    assert response.status_code == 200
    assert (response.json()["outcome"], response.json()["approval_note"]) == ("rejected", "news at 15:00")


def test_reject_twice_second_is_409_naming_the_state(btc, operator_api):
    decision = pending(btc)
    operator_api.post(f"/api/decisions/{decision.pk}/reject/")

    response = operator_api.post(f"/api/decisions/{decision.pk}/reject/")

    assert response.status_code == 409
    assert response.json() == {"detail": f"decision {decision.pk}: decision {decision.pk} is rejected by an "
                                         "operator, not pending"}


def test_snooze_sets_until(btc, operator_api):
    decision = pending(btc)

    response = operator_api.post(f"/api/decisions/{decision.pk}/snooze/", {"minutes": 20}, format="json")

    assert response.status_code == 200
    assert response.json()["snoozed_until"] == "2026-11-25T14:30:00Z"


@pytest.mark.parametrize("minutes", [0, -5, 100000, "soon"])
def test_snooze_bad_minutes_is_400_naming_minutes(btc, operator_api, minutes):
    decision = pending(btc)

    response = operator_api.post(f"/api/decisions/{decision.pk}/snooze/", {"minutes": minutes}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["minutes"]


def test_reject_note_too_long_is_400(btc, operator_api):
    decision = pending(btc)

    response = operator_api.post(f"/api/decisions/{decision.pk}/reject/", {"note": "x" * 300}, format="json")

    assert response.status_code == 400
    assert response.json() == {"note": ["Ensure this field has no more than 255 characters."]}


def test_approve_unknown_decision_is_404(btc, operator_api):
    assert operator_api.post("/api/decisions/999999/approve/").status_code == 404


def test_viewer_cannot_approve_and_nothing_changes(btc, viewer_api):
    decision = pending(btc)

    response = viewer_api.post(f"/api/decisions/{decision.pk}/approve/")

    assert response.status_code == 403
    decision.refresh_from_db()
    assert decision.outcome == "pending" and not AuditRecord.objects.filter(kind="approval").exists()
