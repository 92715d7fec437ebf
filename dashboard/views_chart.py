"""Chart page: candles of any stored timeframe with FVGs, sessions, liquidation zones and trades.

The page is a shell; static/dashboard/chart.js draws what chart_data returns and follows the
websocket's price and position events. Every logged-in user (viewer and up) may read both.
"""
from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dashboard import chart_data
from dashboard import selectors as dashboard_selectors
from market.models import DataSource


class ChartForm(forms.Form):
    """Parse the query string of a chart request; chart_data.chart_query judges the values."""

    symbol = forms.CharField(required=False, max_length=64)
    source = forms.ChoiceField(choices=[("", "any"), *DataSource.choices], required=False,
                               error_messages={"invalid_choice": "unknown data source %(value)s; use "
                                                                 + ", ".join(DataSource.values)})
    timeframe = forms.CharField(required=False, max_length=8)
    # ISO 8601; a time without an offset is read as UTC (the project's TIME_ZONE).
    start = forms.DateTimeField(required=False, error_messages={"invalid": "not an ISO 8601 date and time"})
    end = forms.DateTimeField(required=False, error_messages={"invalid": "not an ISO 8601 date and time"})
    bars = forms.IntegerField(required=False, error_messages={"invalid": "must be a whole number"})


def _bad_request(message: str, errors: dict | None = None) -> JsonResponse:
    return JsonResponse({"error": message, "errors": errors or {}}, status=400)


def _form_error(form: ChartForm) -> JsonResponse:
    errors = {name: [str(m) for m in messages] for name, messages in form.errors.items()}
    first = next(iter(errors.items()))
    return _bad_request(f"{first[0]}: {first[1][0]}", errors)


@login_required
@require_GET
def chart(request):
    """Render the chart page: instrument, timeframe and range selectors around an empty chart."""
    config = dashboard_selectors.trading_config()
    instruments = chart_data.instruments_chartable()
    context = {
        "header": dashboard_selectors.header_state(config),
        "instruments": instruments,
        "default_timeframe": config.decision_timeframe,
        "default_bars": chart_data.DEFAULT_BARS,
        "max_bars": chart_data.MAX_BARS,
    }
    return render(request, "dashboard/chart.html", context)


@login_required
@require_GET
def chart_json(request):
    """Return the candles and overlays of ?symbol=&source=&timeframe=&start=&end=&bars= as JSON."""
    form = ChartForm(request.GET)
    if not form.is_valid():
        return _form_error(form)
    data = form.cleaned_data
    config = dashboard_selectors.trading_config()
    try:
        query = chart_data.chart_query(symbol=data["symbol"].strip(), source=data["source"],
                                       timeframe=data["timeframe"].strip(), start=data["start"], end=data["end"],
                                       bars=data["bars"], default_timeframe=config.decision_timeframe)
        body = chart_data.chart_data(query, atr_period=config.atr_period)
    except chart_data.ChartRequestError as exc:
        field, _, message = str(exc).partition(": ")
        return _bad_request(str(exc), {field: [message]})
    return JsonResponse(body)
