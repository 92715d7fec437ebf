"""Backtests page: start a run, a walk-forward or a sweep, watch its progress live, read its report.

Any logged-in user reads; starting needs an operator (dashboard.roles). The forms only parse the
page's text (symbols, "name=value" lines); execution.backtest.jobs, walkforward and sweeps check
everything else and name the bad field, which is shown on the form. A run's page follows its
"backtest" live events (static/dashboard/backtest.js) and shows the report once it is done;
report.html is the same report as one self-contained file.
"""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from dashboard import roles
from dashboard import selectors as dashboard_selectors
from execution.backtest import jobs, report, sweeps, walkforward
from execution.backtest.jobs import BacktestRefused
from execution.models import BacktestRun
from market.models import Instrument, Timeframe

PAGE_SIZE = 25
# What the standalone report inlines, by the name its template uses.
EXPORT_ASSETS = {"style_css": "dashboard/style.css", "backtest_css": "dashboard/backtest.css",
                 "charts_js": "vendor/lightweight-charts/lightweight-charts.standalone.production.js",
                 "backtest_js": "dashboard/backtest.js"}
METRIC_CHOICES = [(name, label) for name, (label, _) in sweeps.METRICS.items()]

operator_required = roles.role_required(roles.OPERATOR, "start backtests")


def _lines(text: str) -> list[tuple[str, str]]:
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise forms.ValidationError(f"line {number}: write name=value, e.g. edge_threshold=0.6")
        pairs.append((name.strip(), value.strip()))
    return pairs


class StartForm(forms.Form):
    """One backtest: what and when; the trading parameters as "name=value" lines."""

    symbols = forms.CharField(max_length=200, initial="BTCUSDT", help_text="venue symbols, comma-separated")
    timeframe = forms.ChoiceField(choices=[(tf, tf) for tf in Timeframe.values], initial=Timeframe.M15)
    start = forms.DateTimeField(help_text="first bar close decided on (UTC)",
                                widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    end = forms.DateTimeField(help_text="last bar close decided on (UTC)",
                              widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    starting_equity = forms.DecimalField(initial=10000, label="Starting equity (USDT)")
    parameters = forms.CharField(
        required=False, help_text="trading parameters to change for this run, one name=value a line",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "edge_threshold=0.55\nrisk_per_trade_fraction=0.01"}))
    source = forms.ChoiceField(choices=list(jobs.SOURCES.items()), initial=jobs.DB, required=False, label="Bars from",
                               help_text="the candles stored in the database, or the recorded Binance CSV files")
    market = forms.ChoiceField(choices=[("", "USD-M where they cover it, else spot"), ("usdm", "USD-M"),
                                        ("spot", "spot")], required=False, label="CSV market",
                               help_text="with the CSV files: whose recordings to read")

    def clean_symbols(self) -> list[str]:
        return [s for s in self.cleaned_data["symbols"].replace(",", " ").split() if s]

    def clean_parameters(self) -> dict:
        return dict(_lines(self.cleaned_data["parameters"]))

    def clean_source(self) -> str:
        return self.cleaned_data["source"] or jobs.DB

    @staticmethod
    def submit_kwargs_of(data: dict) -> dict:
        """Return the arguments every submit function takes, from the cleaned data."""
        return {name: data[name] for name in ("symbols", "timeframe", "start", "end", "starting_equity",
                                              "parameters", "source", "market")}


class GridMixin(forms.Form):
    """A grid of parameters, one "name=v1|v2|v3" line each (commas separate values when no | is used)."""

    grid = forms.CharField(help_text="one parameter a line: name=value|value|value",
                           widget=forms.Textarea(attrs={"rows": 3, "placeholder": "edge_threshold=0.5|0.6|0.7"}))

    def clean_grid(self) -> dict:
        grid = {}
        for name, values in _lines(self.cleaned_data["grid"]):
            grid[name] = [v.strip() for v in values.split("|" if "|" in values else ",") if v.strip()]
        return grid


class WalkForwardForm(GridMixin, StartForm):
    train_days = forms.DecimalField(initial=7, min_value=0, help_text="in-sample window, days")
    test_days = forms.DecimalField(initial=2, min_value=0, help_text="out-of-sample window and step, days")
    objective = forms.ChoiceField(choices=METRIC_CHOICES, initial="sharpe", help_text="chooses each fold's parameters")


class SweepForm(GridMixin, StartForm):
    metric = forms.ChoiceField(choices=METRIC_CHOICES, initial="sharpe", help_text="ranks the points")


def _refusal_to_form(form: forms.Form, refused: BacktestRefused) -> None:
    for key, message in refused.errors.items():
        field, _, inner = key.partition(".")
        text = f"{inner}: {message}" if inner else message
        form.add_error(field if field in form.fields else None, text if field in form.fields else f"{key}: {text}")


def _list_row(run: BacktestRun) -> dict:
    summary = (report.summary_of(run) or {}) if run.status == BacktestRun.Status.DONE else {}
    return {"run": run, "progress": jobs.progress_payload(run),
            "net_pnl": report.fmt(summary.get("net_pnl_usdt"), "usdt"),
            "return": report.fmt(summary.get("return_fraction"), "pct"),
            "trades": report.fmt(summary.get("trade_count"), "int")}


def _list_context(request, forms_by_kind: dict | None = None, open_kind: str = "") -> dict:
    runs = (BacktestRun.objects.filter(parent__isnull=True).select_related("instrument")
            .defer("trades", "equity", "parameters"))
    page = Paginator(runs, PAGE_SIZE).get_page(request.GET.get("page") or 1)
    forms_by_kind = {"run": StartForm(), "walkforward": WalkForwardForm(), "sweep": SweepForm(),
                     **(forms_by_kind or {})}
    rows = [_list_row(run) for run in page]
    return {"header": dashboard_selectors.header_state(), "runs": page, "rows": rows, "forms": forms_by_kind,
            "open_kind": open_kind, "can_start": roles.has_role(request.user, roles.OPERATOR),
            "symbols": Instrument.objects.order_by("exchange_symbol").values_list("exchange_symbol", flat=True)
            .distinct()}


@login_required
@require_GET
def backtests(request):
    """Render the runs (top level, newest first) and, for operators, the forms that start one."""
    return render(request, "dashboard/backtests.html", _list_context(request))


def _start(request, kind: str, form_class, submit):
    form = form_class(request.POST)
    if form.is_valid():
        try:
            run = submit(form.cleaned_data, actor=request.user.get_username(), now=timezone.now())
        except BacktestRefused as refused:
            _refusal_to_form(form, refused)
        else:
            messages.success(request, f"Backtest #{run.pk} queued: {run.get_kind_display()} of "
                                      f"{', '.join(run.symbols) or run.instrument.exchange_symbol} {run.timeframe}.")
            return redirect("dashboard:backtest", pk=run.pk)
    context = _list_context(request, {kind: form}, open_kind=kind)
    return render(request, "dashboard/backtests.html", context, status=400)


@login_required
@require_POST
@operator_required
def backtest_start(request):
    """Queue one backtest."""
    return _start(request, "run", StartForm,
                  lambda data, **who: jobs.backtest_submit(**StartForm.submit_kwargs_of(data), **who))


@login_required
@require_POST
@operator_required
def walkforward_start(request):
    """Queue a walk-forward: its folds spread over the workers."""
    return _start(request, "walkforward", WalkForwardForm, lambda data, **who: walkforward.walkforward_submit(
        **StartForm.submit_kwargs_of(data), grid=data["grid"], train_days=data["train_days"],
        test_days=data["test_days"], objective=data["objective"], **who))


@login_required
@require_POST
@operator_required
def sweep_start(request):
    """Queue a parameter sweep: one task per point."""
    return _start(request, "sweep", SweepForm, lambda data, **who: sweeps.sweep_submit(
        **StartForm.submit_kwargs_of(data), grid=data["grid"], metric=data["metric"], **who))


def _detail_context(run: BacktestRun) -> dict:
    finished = run.status in jobs.FINISHED
    context = {"header": dashboard_selectors.header_state(), "run": run, "finished": finished,
               "progress": jobs.progress_payload(run), "report": report.report_data(run) if finished else None,
               "parameters": report.parameter_rows(run),
               "children": [_list_row(child) for child in run.children.defer("trades", "equity").order_by("pk")]}
    if run.kind == BacktestRun.Kind.WALK_FORWARD:
        context["walkforward"] = report.walkforward_view(run)
    elif run.kind == BacktestRun.Kind.SWEEP:
        context["sweep"] = report.sweep_view(run)
    return context


@login_required
@require_GET
def backtest(request, pk: int):
    """Render one run: its progress while it runs, its report once done."""
    run = get_object_or_404(BacktestRun.objects.select_related("instrument", "parent"), pk=pk)
    return render(request, "dashboard/backtest.html", _detail_context(run))


@login_required
@require_GET
def backtest_progress(request, pk: int):
    """Return the run's progress and its children's, for a page that (re)connects."""
    run = get_object_or_404(BacktestRun.objects.defer("trades", "equity"), pk=pk)
    return JsonResponse(report.progress_state(run))


def _asset(path: str) -> str:
    found = finders.find(path)
    if found is None:
        raise Http404(f"static file {path} is missing: run npm install")
    with open(found, encoding="utf-8") as handle:
        return handle.read()


@login_required
@require_GET
def backtest_export(request, pk: int):
    """Return the finished run's report as one HTML file with its data, styles and scripts inside."""
    run = get_object_or_404(BacktestRun.objects.select_related("instrument", "parent"), pk=pk)
    if run.status not in jobs.FINISHED:
        raise Http404(f"backtest {pk} has not finished")
    context = {**_detail_context(run), "assets": {name: _asset(path) for name, path in EXPORT_ASSETS.items()},
               "exported_at": timezone.now()}
    response = HttpResponse(render_to_string("dashboard/backtest_report_export.html", context, request=request))
    response["Content-Disposition"] = f'attachment; filename="backtest-{run.pk}.html"'
    return response
