"""Logs and audit page: decisions, gate verdicts, orders and the audit log, searchable and paged.

Any logged-in user reads. One GET form carries the tab, the shared filters (text, instrument,
UTC range) and the tab's own filter; a bad value re-renders the page (400) with the reason and
no rows. The audit chain's status comes from dashboard.logs_selectors, which caches it: the page
shows the last check and asks audit-chain.json for a fresh one when it is stale.
"""
from __future__ import annotations

import json

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from dashboard import logs_selectors as logs
from dashboard.chart_data import plain
from dashboard import selectors as dashboard_selectors
from decisions.models import Action, AuditRecord, Decision
from decisions.selectors import gate_first_block
from execution.models import Order
from market.models import Instrument

PAGE_SIZE = 50
TABS = {"decisions": "Decisions", "gates": "Gate verdicts", "orders": "Orders", "audit": "Audit log"}
COUNT_NOUNS = {"decisions": "decision", "gates": "decision", "orders": "order", "audit": "audit record"}
# datetime-local inputs send "2026-11-25T14:05"; a time without an offset is UTC (TIME_ZONE).
MINUTE_INPUT = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
DECISION_PRICES = ("entry_price", "stop_price", "target_price")
ORDER_PRICES = ("quantity", "price", "trigger_price", "filled_quantity", "average_price")
DATE_ERRORS = {"invalid": "not an ISO 8601 date and time, e.g. 2026-11-25T14:05"}


def _any(label: str, choices) -> list:
    return [("", label), *choices]


class LogsForm(forms.Form):
    """Validate the tab, the shared filters, each tab's own filter and the page number."""

    tab = forms.ChoiceField(choices=list(TABS.items()), required=False)
    q = forms.CharField(required=False, max_length=100, strip=True, label="Search")
    instrument = forms.ModelChoiceField(queryset=Instrument.objects.order_by("exchange_symbol", "data_source"),
                                        required=False, empty_label="any instrument")
    start = forms.DateTimeField(required=False, label="From (UTC)", widget=MINUTE_INPUT, error_messages=DATE_ERRORS)
    end = forms.DateTimeField(required=False, label="To (UTC)", widget=MINUTE_INPUT, error_messages=DATE_ERRORS)
    outcome = forms.ChoiceField(choices=_any("any outcome", Decision.Outcome.choices), required=False)
    action = forms.ChoiceField(choices=_any("any action", Action.choices), required=False)
    gate = forms.ChoiceField(choices=_any("any gate", [(g, g) for g in logs.GATE_NAMES]), required=False,
                             label="Blocked by")
    blocked = forms.BooleanField(required=False, label="Blocked only")
    status = forms.ChoiceField(choices=_any("any state", Order.Status.choices), required=False, label="State")
    kind = forms.ChoiceField(choices=_any("any kind", AuditRecord.Kind.choices), required=False)
    page = forms.IntegerField(min_value=1, required=False)

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["start"] >= data["end"]:
            self.add_error("end", "must be after From")
        return data


def _filters(data: dict) -> logs.LogFilters:
    return logs.LogFilters(q=data.get("q", ""), instrument=data.get("instrument"), start=data.get("start"),
                           end=data.get("end"))


def _rows(tab: str, data: dict):
    """Return the tab's queryset for valid filters."""
    filters = _filters(data)
    if tab == "gates":
        return logs.gate_verdicts_log(filters, gate=data["gate"], blocked_only=data["blocked"])
    if tab == "orders":
        return logs.orders_log(filters, status=data["status"])
    if tab == "audit":
        return logs.audit_log(filters, kind=data["kind"])
    return logs.decisions_log(filters, outcome=data["outcome"], action=data["action"])


def _decorate(tab: str, page) -> list[dict]:
    """Return the page's rows with what the template shows beside each, without further queries."""
    if tab == "gates":
        return [{"row": d, **logs.verdicts_of(d)} for d in page]
    if tab == "orders":
        return [{"row": o, "n": {f: plain(getattr(o, f)) for f in ORDER_PRICES}} for o in page]
    if tab == "audit":
        return [{"row": r, "body": json.dumps(r.body, indent=2, sort_keys=True, ensure_ascii=False),
                 "brief": json.dumps(r.body, sort_keys=True, ensure_ascii=False)[:140]} for r in page]
    return [{"row": d, "block": gate_first_block(d.gates), "n": {f: plain(getattr(d, f)) for f in DECISION_PRICES}}
            for d in page]


@login_required
@require_GET
def logs_page(request):
    """Render one tab of the logs: filters, the page of rows, the pager and the chain's status."""
    form = LogsForm(request.GET)
    valid = form.is_valid()
    tab = (form.cleaned_data.get("tab") if valid else request.GET.get("tab")) or "decisions"
    tab = tab if tab in TABS else "decisions"
    page = rows = None
    if valid:
        page = logs.log_page(_rows(tab, form.cleaned_data), form.cleaned_data["page"] or 1, PAGE_SIZE)
        rows = _decorate(tab, page)
    now = timezone.now()
    # ?verify=1 checks a stale chain in this request (the path without JavaScript).
    chain = logs.audit_chain_status(now=now) if request.GET.get("verify") == "1" else logs.audit_chain_cached()
    context = {
        "header": dashboard_selectors.header_state(),
        "form": form,
        "tab": tab,
        "tabs": TABS,
        "count_noun": COUNT_NOUNS[tab],
        "page": page,
        "rows": rows,
        "chain": chain,
        "chain_stale": chain is None or now - chain.checked_at > logs.CHAIN_CHECK_MAX_AGE,
    }
    return render(request, "dashboard/logs.html", context, status=200 if valid else 400)


@login_required
@require_GET
def audit_chain_json(request):
    """Return the audit chain's status, checked at most a minute ago (checking now when older)."""
    chain = logs.audit_chain_status(now=timezone.now())
    if chain is None:
        return JsonResponse({"checking": True, "summary": "another request is verifying the chain"}, status=202)
    return JsonResponse({"checking": False, **chain.as_dict()})
