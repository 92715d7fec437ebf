"""Dashboard pages: thin views over dashboard.selectors; every page needs a logged-in user."""
from __future__ import annotations

import csv

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseBadRequest, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dashboard import roles, selectors
from dashboard.equity_curve import equity_curve
from execution.models import Account


class EquityRangeForm(forms.Form):
    """Validate the account, period or start/end range and point budget of an equity request."""

    account = forms.ModelChoiceField(queryset=Account.objects.all(), required=False)
    period = forms.ChoiceField(choices=[(p, p) for p in selectors.PERIODS], required=False)
    # ISO 8601; a time without an offset is read as UTC (the project's TIME_ZONE).
    start = forms.DateTimeField(required=False)
    end = forms.DateTimeField(required=False)
    points = forms.IntegerField(min_value=2, max_value=10_000, required=False)

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            raise forms.ValidationError("start is after end")
        return data


@login_required
@require_GET
def overview(request):
    """Render the overview: mode, market, last decision, today's risk, approvals, positions and account."""
    state = selectors.overview_state()
    context = {"state": state, "header": state, "can_act": roles.has_role(request.user, roles.OPERATOR),
               "snooze_minutes": selectors.trading_config().snooze_minutes}
    return render(request, "dashboard/overview.html", context)


@login_required
@require_GET
def equity(request):
    """Render the equity-curve page; the chart loads its data from equity_data."""
    context = {
        "header": selectors.header_state(),
        "account": selectors.account_default(),
        "accounts": Account.objects.order_by("id"),
        "periods": list(selectors.PERIODS),
    }
    return render(request, "dashboard/equity.html", context)


def _equity_request(request):
    form = EquityRangeForm(request.GET)
    if not form.is_valid():
        return None, HttpResponseBadRequest(form.errors.as_json(), content_type="application/json")
    data = form.cleaned_data
    account = data["account"] or selectors.account_default()
    if account is None:
        return None, JsonResponse({"error": "no account"}, status=404)
    start, end = selectors.equity_range(account, period=data["period"], start=data["start"], end=data["end"])
    return (account, start, end, data["points"] or 1000), None


@login_required
@require_GET
def equity_data(request):
    """Return the equity curve and drawdown of a range as JSON, downsampled to `points`."""
    args, error = _equity_request(request)
    if error:
        return error
    account, start, end, points = args
    # The fast path (floats in SQL, exact Decimals for the kept points): a year of minute points
    # answers in milliseconds once computed; selectors.equity_series is its reference.
    series = equity_curve(account, start, end, points).series
    return JsonResponse({
        "account": {"id": account.pk, "name": account.name, "broker": account.broker},
        "start": start.isoformat() if start else None,
        "end": end.isoformat() if end else None,
        "downsampled": series.downsampled,
        "peak_equity": str(series.peak_equity_usdt) if series.peak_equity_usdt is not None else None,
        "points": [
            {"t": int(t.timestamp()), "equity": str(e), "drawdown_pct": d}
            for t, e, d in zip(series.times, series.equity_usdt, series.drawdown_pct)
        ],
    })


class _Echo:
    def write(self, value):
        return value


@login_required
@require_GET
def equity_export(request):
    """Stream every equity point of the range as CSV, money as exact Decimal strings."""
    args, error = _equity_request(request)
    if error:
        return error
    account, start, end, _ = args
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(["ts", "balance_usdt", "unrealized_pnl_usdt", "equity_usdt"])
        for ts, balance, unrealized, equity_usdt in selectors.equity_rows(account, start, end):
            # Fixed-point: SQLite hands back zero as 0E-10, which spreadsheets misread.
            yield writer.writerow([ts.isoformat(), f"{balance:f}", f"{unrealized:f}", f"{equity_usdt:f}"])

    response = StreamingHttpResponse(lines(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="equity-{account.name}.csv"'
    return response
