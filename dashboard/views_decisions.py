"""Decisions page: the HYBRID approval queue, the decision journal and the gate overrides.

Any logged-in user reads; approving, rejecting, snoozing and overriding gates need a staff user.
Every write goes through decisions.approvals or decisions.overrides, which lock the row, audit and
broadcast. A refused approval leaves the decision as it was and comes back as an error message
after the redirect; a refused override re-renders the page (400) with the form and the reason.
"""
from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from dashboard import roles
from dashboard import selectors as dashboard_selectors
from decisions import approvals, selectors
from decisions.models import Action, Decision, GateOverride
from decisions.overrides import OverrideRefused, gate_override_create, gate_override_revoke
from decisions.risk.wall import GATE_ORDER
from execution.models import Order

JOURNAL_PAGE_SIZE = 50
VOTE_SIDES = {1: "LONG", -1: "SHORT", 0: "none"}
SCORE_KEYS = ("votes", "aggregate", "edge", "fusion", "sizing")
# datetime-local inputs send and expect "2026-11-25T14:05"; a time without an offset is UTC (TIME_ZONE).
MINUTE_INPUT = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


class JournalForm(forms.Form):
    """Validate the journal's filters and page, and the moment of the "why at" question."""

    outcome = forms.ChoiceField(choices=[("", "any outcome"), *Decision.Outcome.choices], required=False)
    action = forms.ChoiceField(choices=[("", "any action"), *Action.choices], required=False)
    at = forms.DateTimeField(required=False, label="Why at (UTC)", widget=MINUTE_INPUT,
                             help_text="ISO 8601, e.g. 2026-11-25T14:05")
    page = forms.IntegerField(min_value=1, required=False)


class RejectForm(forms.Form):
    note = forms.CharField(required=False, max_length=255)


class SnoozeForm(forms.Form):
    # The service caps the snooze at the decision's expiry; a day bounds typing mistakes.
    minutes = forms.IntegerField(min_value=1, max_value=24 * 60, required=False)


class OverrideForm(forms.Form):
    """Validate an override request; decisions.overrides judges the gate, the window and the reason."""

    gate = forms.ChoiceField(choices=[(name, name) for name in GATE_ORDER])
    until = forms.DateTimeField(label="Until (UTC)", widget=MINUTE_INPUT, help_text="at most 24 hours ahead")
    reason = forms.CharField(max_length=255)
    confirm = forms.BooleanField(label="I confirm this gate will not protect the account until then",
                                 error_messages={"required": "tick the confirmation: an override lifts a risk limit"})


operator_required = roles.role_required(roles.OPERATOR, "act on decisions or revoke gate overrides")
# Letting a risk gate pass lifts a limit: an admin's call.
admin_required = roles.role_required(roles.ADMIN, "override risk gates")


LEVEL_FIELDS = ("entry_price", "entry_zone_low", "entry_zone_high", "stop_price", "target_price", "quantity")
ORDER_FIELDS = ("quantity", "price", "trigger_price", "filled_quantity", "average_price")


def plain(value: Decimal | None) -> str | None:
    """Return a Decimal as fixed-point text without trailing zeros (65000, 64800.5), or None."""
    # normalize() alone prints 65000 as 6.5E+4; "f" keeps it positional.
    return None if value is None else format(value.normalize(), "f")


def levels(row) -> dict:
    """Return the price and size fields of a decision or order as plain text, keyed by field name."""
    fields = ORDER_FIELDS if isinstance(row, Order) else LEVEL_FIELDS
    return {name: plain(getattr(row, name)) for name in fields}


def take_profit_ladder(decision: Decision) -> list[dict]:
    """Return the decision's targets as TP1..n with the share each closes in percent."""
    ladder = []
    for number, target in enumerate(decision.take_profits or [], start=1):
        try:
            share_pct = Decimal(str(target.get("share"))) * 100
        except (InvalidOperation, TypeError):
            share_pct = None
        ladder.append({"label": f"TP{number}", "price": target.get("price"), "share_pct": share_pct})
    return ladder


def score_view(parts) -> dict:
    """Return the score parts the detail page tabulates; keys it does not know stay as JSON."""
    parts = parts if isinstance(parts, dict) else {}
    votes = [{**vote, "side_label": VOTE_SIDES.get(vote.get("side"), vote.get("side"))}
             for vote in parts.get("votes") or [] if isinstance(vote, dict)]
    edge = parts.get("edge") if isinstance(parts.get("edge"), dict) else {}
    other = {key: value for key, value in parts.items() if key not in SCORE_KEYS}
    return {
        "votes": votes,
        "aggregate": parts.get("aggregate") if isinstance(parts.get("aggregate"), dict) else None,
        "edge": edge,
        "edge_parts": [p for p in edge.get("parts") or [] if isinstance(p, dict)],
        "fusion": parts.get("fusion") if isinstance(parts.get("fusion"), dict) else None,
        "sizing": parts.get("sizing") if isinstance(parts.get("sizing"), dict) else None,
        "other_json": json.dumps(other, indent=2, sort_keys=True, default=str) if other else "",
    }


def _rows(decisions) -> list[dict]:
    return [{"decision": d, "n": levels(d), "ladder": take_profit_ladder(d),
             "block": selectors.gate_first_block(d.gates)} for d in decisions]


def _page(request, *, journal_form: JournalForm, status: int = 200, override_form: OverrideForm | None = None):
    now = timezone.now()
    config = dashboard_selectors.trading_config()
    data = journal_form.cleaned_data if journal_form.is_valid() else {}
    journal = Paginator(selectors.decision_journal(outcome=data.get("outcome", ""), action=data.get("action", "")),
                        JOURNAL_PAGE_SIZE).get_page(data.get("page") or 1)
    at = data.get("at")
    latest = selectors.decision_latest()
    context = {
        "header": dashboard_selectors.header_state(config),
        "now": now,
        "can_act": roles.has_role(request.user, roles.OPERATOR),
        "can_override": roles.has_role(request.user, roles.ADMIN),
        "mode": config.effective_mode(now),
        "snooze_minutes": config.snooze_minutes,
        "awaiting": _rows(selectors.decisions_awaiting(now=now)),
        "snoozed": _rows(selectors.decisions_snoozed(now=now)),
        "journal_form": journal_form,
        "journal": journal,
        "journal_rows": _rows(journal),
        "at": at,
        "at_decision": selectors.decision_at(at=at) if at else None,
        "overrides": selectors.gate_overrides_current(now=now),
        "override_form": override_form or OverrideForm(),
        "latest": latest,
        "latest_blocks": selectors.gates_blocking(latest.gates) if latest else [],
    }
    return render(request, "dashboard/decisions.html", context, status=status)


@login_required
@require_GET
def decisions(request):
    """Render the approval queue, the journal (filtered, paged), the "why at" answer and the overrides."""
    form = JournalForm(request.GET)
    return _page(request, journal_form=form, status=200 if form.is_valid() else 400)


@login_required
@require_GET
def decision(request, pk: int):
    """Render one decision's packet, rationale, gates, score parts, orders and audit trail."""
    try:
        row = selectors.decision_detail(pk)
    except Decision.DoesNotExist:
        raise Http404(f"no decision {pk}") from None
    config = dashboard_selectors.trading_config()
    context = {
        "header": dashboard_selectors.header_state(config),
        "now": timezone.now(),
        "decision": row,
        "can_act": roles.has_role(request.user, roles.OPERATOR) and row.outcome == Decision.Outcome.PENDING,
        "snooze_minutes": config.snooze_minutes,
        "n": levels(row),
        "ladder": take_profit_ladder(row),
        "rationale": dashboard_selectors.rationale_lines(row.rationale),
        "gates": selectors.gate_rows(row.gates),
        "first_block": selectors.gate_first_block(row.gates),
        "score": score_view(row.score_parts),
        "score_json": json.dumps(row.score_parts, indent=2, sort_keys=True, default=str),
        "orders": [{"order": order, "n": levels(order)} for order in row.orders.all()],
        "audit": selectors.decision_audit_trail(row),
    }
    return render(request, "dashboard/decision.html", context)


def _actor(request) -> str:
    return request.user.get_username()


def _back(request):
    # Return to the page the form was on (queue or detail), never to another site.
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return redirect(target)
    return redirect("dashboard:decisions")


def _refused(request, pk: int, exc: Exception):
    messages.error(request, f"Decision {pk}: {exc}")
    return _back(request)


def _act(request, pk: int, action, **kwargs):
    """Run one approval action on decision `pk`; return (row, None), or (None, the refusal's response)."""
    try:
        return action(decision_id=pk, actor=_actor(request), now=timezone.now(), **kwargs), None
    except Decision.DoesNotExist:
        raise Http404(f"no decision {pk}") from None
    except approvals.ApprovalRefused as exc:
        return None, _refused(request, pk, exc)


@login_required
@require_POST
@operator_required
def decision_approve(request, pk: int):
    """Approve a pending decision: it executes now if the gates and its entry zone still allow."""
    row, refused = _act(request, pk, approvals.decision_approve)
    if refused:
        return refused
    if row.outcome == Decision.Outcome.EXECUTED:
        messages.success(request, f"Decision {pk} approved and executed: {row.orders.count()} order(s) placed.")
    else:
        messages.warning(request, f"Decision {pk} approved but not executed ({row.get_outcome_display()}): "
                                  f"{row.reason}")
    return _back(request)


@login_required
@require_POST
@operator_required
def decision_reject(request, pk: int):
    """Reject a pending decision, with an optional note kept in the journal."""
    form = RejectForm(request.POST)
    if not form.is_valid():
        return _refused(request, pk, f"note: {' '.join(form.errors.get('note', []))}")
    _, refused = _act(request, pk, approvals.decision_reject, note=form.cleaned_data["note"])
    if refused:
        return refused
    messages.success(request, f"Decision {pk} rejected.")
    return _back(request)


@login_required
@require_POST
@operator_required
def decision_snooze(request, pk: int):
    """Put a pending decision aside for some minutes (the configured default when empty)."""
    form = SnoozeForm(request.POST)
    if not form.is_valid():
        return _refused(request, pk, f"minutes: {' '.join(form.errors.get('minutes', []))}")
    row, refused = _act(request, pk, approvals.decision_snooze, minutes=form.cleaned_data["minutes"])
    if refused:
        return refused
    messages.success(request, f"Decision {pk} snoozed until {row.snoozed_until:%Y-%m-%d %H:%M} UTC.")
    return _back(request)


@login_required
@require_POST
@admin_required
def override_create(request):
    """Let one gate pass until a moment, audited; a refusal re-renders the form with the reason."""
    form = OverrideForm(request.POST)
    if form.is_valid():
        try:
            fields = {k: v for k, v in form.cleaned_data.items() if k != "confirm"}
            override = gate_override_create(**fields, actor=_actor(request), now=timezone.now())
        except OverrideRefused as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Gate {override.gate} overridden until {override.until:%Y-%m-%d %H:%M} UTC.")
            return redirect("dashboard:decisions")
    return _page(request, journal_form=JournalForm({}), status=400, override_form=form)


@login_required
@require_POST
@operator_required
def override_revoke(request, pk: int):
    """End an active override now, audited."""
    now = timezone.now()
    override = gate_override_revoke(override=get_object_or_404(GateOverride, pk=pk), actor=_actor(request), now=now)
    if override.revoked_at == now:
        messages.success(request, f"Override of {override.gate} revoked.")
    else:
        messages.info(request, f"Override of {override.gate} had already ended; nothing changed.")
    return redirect("dashboard:decisions")
