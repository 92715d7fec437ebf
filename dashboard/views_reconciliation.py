"""Reconciliation page: the stored runs, their differences and actions, and the start-up gate per account.

Any logged-in user reads; acknowledging a run needs a staff user and goes through
execution.reconciliation.reconciliation_acknowledge, which locks the row, audits and broadcasts.
A clean or already acknowledged run is refused here, before the service, and nothing changes.
"""
from __future__ import annotations

import re

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from dashboard import roles
from dashboard import selectors as dashboard_selectors
from execution.models import Account, ReconciliationRun
from execution.reconciliation import gate as reconciliation_gate

PAGE_SIZE = 25
# ccxt error text carries the request URL (with its signature) and the venue's reply: keep credentials off the page.
SECRET = re.compile(r"(?i)\b(signature|api[-_]?key|api[-_]?secret|secret|listen[-_]?key|x-mbx-apikey)"
                    r"(\"?\s*[=:]\s*[\"']?)([^&\s\"',;}]+)")
DIFFERENCE_FIELDS = ("kind", "subject", "ours", "venue", "detail")
# Action keys with a column of their own; the rest (side, leg, quantity, state ...) go to "parameters".
ACTION_COLUMNS = frozenset({"kind", "symbol", "client_order_id", "detail", "outcome", "note", "fill", "venue_order"})

operator_required = roles.role_required(roles.OPERATOR, "acknowledge reconciliation runs")


class RunFilterForm(forms.Form):
    """Validate the run list's filters and page."""

    account = forms.ModelChoiceField(queryset=Account.objects.order_by("name"), required=False,
                                     empty_label="all accounts")
    dirty = forms.BooleanField(required=False, label="Dirty only")
    page = forms.IntegerField(min_value=1, required=False)


class AcknowledgeForm(forms.Form):
    confirm = forms.BooleanField(label="I have read these differences and accept trading with them")
    note = forms.CharField(max_length=500, label="Why trading may go on (kept in the audit chain)",
                           widget=forms.Textarea(attrs={"rows": 2}))


def redact(text: str) -> str:
    """Return `text` with the values of signatures, API keys, secrets and listen keys replaced by ***."""
    return SECRET.sub(r"\1\2***", text or "")


def _text(value) -> str:
    return redact("" if value is None else str(value))


def difference_rows(run: ReconciliationRun) -> list[dict]:
    """Return the run's differences as table rows: kind, subject, ours, venue, detail."""
    rows = [row if isinstance(row, dict) else {"detail": row} for row in run.differences or []]
    return [{key: _text(row.get(key)) for key in DIFFERENCE_FIELDS} for row in rows]


def _parameters(row: dict) -> str:
    parts = [f"{key}={value}" for key, value in row.items() if key not in ACTION_COLUMNS]
    fill = row.get("fill")
    if isinstance(fill, dict):
        parts.append(f"trade {fill.get('trade_id')} {fill.get('quantity')}@{fill.get('price')}")
    venue = row.get("venue_order")
    if isinstance(venue, dict):
        parts.append(f"venue {venue.get('type')} {venue.get('side')} {venue.get('quantity')} {venue.get('status')}")
    return redact(", ".join(parts))


def action_rows(run: ReconciliationRun) -> list[dict]:
    """Return the run's actions in the order carried out; outcome is empty for one not carried out yet."""
    rows = [row if isinstance(row, dict) else {"detail": row} for row in run.actions or []]
    return [{"number": number, "kind": _text(row.get("kind")), "symbol": _text(row.get("symbol")),
             "client_order_id": _text(row.get("client_order_id")), "parameters": _parameters(row),
             "detail": _text(row.get("detail")), "outcome": _text(row.get("outcome")), "note": _text(row.get("note"))}
            for number, row in enumerate(rows, start=1)]


def gate_state(account: Account) -> dict:
    """Return whether `account` may trade, why (redacted), and the start-up run the gate judges from."""
    enabled, reason = reconciliation_gate.trading_enabled(account)
    # execution.reconciliation.gate reads the runs since the latest start-up run; acknowledging that one opens it.
    startup = account.reconciliations.filter(trigger="startup").order_by("-pk").first()
    return {"account": account, "enabled": enabled, "reason": redact(reason), "startup": startup}


def gate_states() -> list[dict]:
    """Return the gate of every venue account by name; paper accounts are never reconciled."""
    return [gate_state(account) for account in Account.objects.exclude(broker=Account.Broker.PAPER).order_by("name")]


def acknowledge_refusal(run: ReconciliationRun) -> str:
    """Return why `run` cannot be acknowledged, or "" when it can."""
    if run.acknowledged_by:
        at = f" at {run.acknowledged_at:%Y-%m-%d %H:%M:%S} UTC" if run.acknowledged_at else ""
        return f"Run #{run.pk} was already acknowledged by {run.acknowledged_by}{at}; nothing changed."
    if run.clean:
        return f"Run #{run.pk} was clean: there is nothing to acknowledge; nothing changed."
    return ""


def _runs(data: dict):
    rows = ReconciliationRun.objects.select_related("account").order_by("-started_at", "-pk")
    if data.get("account"):
        rows = rows.filter(account=data["account"])
    if data.get("dirty"):
        rows = rows.filter(clean=False)
    return rows


@login_required
@require_GET
def reconciliations(request):
    """Render the runs (newest first, filtered, paged) under a banner per account whose trading is disabled."""
    form = RunFilterForm(request.GET)
    data = form.cleaned_data if form.is_valid() else {}
    runs = Paginator(_runs(data), PAGE_SIZE).get_page(data.get("page") or 1)
    gates = gate_states()
    context = {
        "header": dashboard_selectors.header_state(),
        "form": form,
        "runs": runs,
        "rows": [{"run": run, "error": redact(run.error)} for run in runs],
        "gates": gates,
        "blocked": [gate for gate in gates if not gate["enabled"]],
    }
    return render(request, "dashboard/reconciliations.html", context, status=200 if form.is_valid() else 400)


@login_required
@require_GET
def reconciliation(request, pk: int):
    """Render one run: its differences, actions and outcomes, error, the account's gate and the acknowledge form."""
    run = get_object_or_404(ReconciliationRun.objects.select_related("account"), pk=pk)
    refusal = acknowledge_refusal(run)
    context = {
        "header": dashboard_selectors.header_state(),
        "run": run,
        "error": redact(run.error),
        "differences": difference_rows(run),
        "actions": action_rows(run),
        "gate": gate_state(run.account),
        "refusal": refusal,
        "can_acknowledge": roles.has_role(request.user, roles.OPERATOR) and not refusal,
        "form": AcknowledgeForm(),
    }
    return render(request, "dashboard/reconciliation.html", context)


@login_required
@require_POST
@operator_required
def reconciliation_acknowledge(request, pk: int):
    """Acknowledge a dirty run once confirmed: its account may trade despite the differences; audited."""
    run = get_object_or_404(ReconciliationRun.objects.select_related("account"), pk=pk)
    back = redirect("dashboard:reconciliation", pk=pk)
    if refusal := acknowledge_refusal(run):
        messages.error(request, refusal)
        return back
    form = AcknowledgeForm(request.POST)
    if not form.is_valid():
        missing = " and ".join(("tick the box to confirm you have read its differences" if f == "confirm"
                                else "say why trading may go on") for f in form.errors)
        messages.error(request, f"Run #{pk} not acknowledged: {missing}.")
        return back
    now, actor = timezone.now(), request.user.get_username()
    run = reconciliation_gate.reconciliation_acknowledge(run=run, actor=actor, now=now, note=form.cleaned_data["note"])
    if run.acknowledged_at != now:  # another operator acknowledged it between the check and the service's lock
        messages.error(request, acknowledge_refusal(run))
        return back
    gate = gate_state(run.account)
    if gate["enabled"]:
        messages.success(request, f"Run #{pk} acknowledged by {actor}. Trading on {run.account.name} is enabled: "
                                  f"{gate['reason']}.")
    else:
        messages.warning(request, f"Run #{pk} acknowledged by {actor}, but trading on {run.account.name} is still "
                                  f"disabled: {gate['reason']}")
    return back
