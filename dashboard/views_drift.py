"""Drift page: the stored drift reports (live or paper trading against its backtest) and one report in full.

Any logged-in user reads. An operator may ask for a report now: the request is queued as the
nightly job's task (execution.tasks.drift_report_all for one account), since a week's replay takes
about a minute; the report appears in the list once built. The report's numbers are read as
execution.drift stored them (Decimal text); nothing is recomputed here.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_q.tasks import async_task

from dashboard import roles
from dashboard import selectors as dashboard_selectors
from execution.models import Account, DriftReport

PAGE_SIZE = 25
MAX_DAYS = 90
# The buckets in the order the split reads, with what each holds (execution.backtest.drift defines them).
BUCKETS = (
    ("signal", "Signal", "trades only one side took, or took the other way"),
    ("size", "Size", "the same trade with another quantity"),
    ("fill_price", "Fill price", "slippage: live fills against the backtest's on the same orders"),
    ("latency", "Latency", "the market's move between the bar close and the live entry's fill"),
    ("exit_path", "Exit path", "exits only one side took"),
    ("fees", "Fees", "fees paid beyond the backtest's"),
    ("funding", "Funding", "funding paid (-) or received (+) beyond the backtest's"),
)
ROW_VIEWS = {"trades": "trades and differences", "all": "every decision"}

operator_required = roles.role_required(roles.OPERATOR, "build drift reports")


class ReportFilterForm(forms.Form):
    account = forms.ModelChoiceField(queryset=Account.objects.order_by("name"), required=False,
                                     empty_label="all accounts")
    page = forms.IntegerField(min_value=1, required=False)


class BuildForm(forms.Form):
    account = forms.ModelChoiceField(queryset=Account.objects.order_by("name"), empty_label=None)
    days = forms.IntegerField(min_value=1, max_value=MAX_DAYS, help_text=f"1 to {MAX_DAYS}")


def _decimal(value) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def split_rows(summary: dict) -> list[dict]:
    """Return the split as table rows with each bar's side and width (% of half the chart, largest = 100)."""
    split = summary.get("split", {})
    values = {key: _decimal(split.get(key)) or Decimal(0) for key, _, _ in BUCKETS}
    values["residual"] = _decimal(summary.get("residual_usdt")) or Decimal(0)
    largest = max((abs(v) for v in values.values()), default=Decimal(0))
    labels = [*BUCKETS, ("residual", "Residual", "booked PnL the fills do not explain (0 when the books agree)")]
    return [{"key": key, "label": label, "help": help_text, "usdt": values[key],
             "side": "neg" if values[key] < 0 else "pos" if values[key] > 0 else "zero",
             "width": float(abs(values[key]) / largest * 100) if largest else 0.0}
            for key, label, help_text in labels]


def report_rows(report: DriftReport, show: str) -> list[dict]:
    """Return the report's rows to show: every one, or those with a trade or a different decision."""
    rows = report.rows if show == "all" else [r for r in report.rows if r.get("trade") or not r.get("same")]
    return [{**row, "as_of_time": datetime.fromisoformat(row["as_of"])} for row in rows]


@login_required
@require_GET
def drift_reports(request):
    """Render the reports, newest first, and the build-now form for operators."""
    form = ReportFilterForm(request.GET)
    data = form.cleaned_data if form.is_valid() else {}
    reports = DriftReport.objects.select_related("account").order_by("-created_at", "-pk")
    if data.get("account"):
        reports = reports.filter(account=data["account"])
    page = Paginator(reports, PAGE_SIZE).get_page(data.get("page") or 1)
    from execution.drift import drift_days   # here: the backtester (pandas) loads with the page, not the URLconf
    context = {
        "header": dashboard_selectors.header_state(),
        "form": form,
        "reports": page,
        "can_build": roles.has_role(request.user, roles.OPERATOR),
        "build_form": BuildForm(initial={"days": drift_days()}),
    }
    return render(request, "dashboard/drift_list.html", context, status=200 if form.is_valid() else 400)


@login_required
@require_GET
def drift_report(request, pk: int):
    """Render one report: the alert, the PnL gap's split, the caveats and the rows live vs backtest."""
    report = get_object_or_404(DriftReport.objects.select_related("account"), pk=pk)
    show = request.GET.get("show", "trades")
    show = show if show in ROW_VIEWS else "trades"
    context = {
        "header": dashboard_selectors.header_state(),
        "report": report,
        "summary": report.summary,
        "split": split_rows(report.summary),
        "rows": report_rows(report, show),
        "show": show,
        "row_views": ROW_VIEWS,
    }
    return render(request, "dashboard/drift.html", context)


@login_required
@require_POST
@operator_required
def drift_build(request):
    """Queue one account's report over the last N days; the list shows it once built."""
    form = BuildForm(request.POST)
    if not form.is_valid():
        problems = "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items())
        messages.error(request, f"No report queued: {problems}")
        return redirect("dashboard:drift")
    account, days = form.cleaned_data["account"], form.cleaned_data["days"]
    async_task("execution.tasks.drift_report_all", account.name, days, task_name=f"drift report {account.name}")
    messages.success(request, f"Drift report of {account.name} over the last {days} day(s) queued; it appears "
                              f"below once the replay is done (about a minute a week).")
    return redirect("dashboard:drift")
