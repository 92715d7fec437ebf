"""Reads for the logs and audit page: decisions, gate verdicts, orders, audit records, chain status.

Every list is one filtered, ordered queryset. `log_page` pages it in two steps: the page's ids
first (the sort and the OFFSET then handle ids, not rows carrying kilobytes of JSON), then those
rows with their instrument. A page therefore costs a COUNT, an id query and a row query whatever
the history's length. Free text is a case-insensitive substring match.

Verifying the audit chain re-hashes every record (about half a millisecond each, so a year of
decisions takes tens of seconds): the status is kept in the cache with the moment it was checked
and re-checked at most once a minute, one check at a time.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.core.cache import cache
from django.core.paginator import Page, Paginator
from django.db.models import Q, QuerySet
from django.utils import timezone

from decisions.audit_services import audit_verify
from decisions.models import AuditRecord, Decision
from decisions.risk.wall import GATE_ORDER
from execution.models import Order
from market.models import Instrument

# data_complete blocks a decision whose candles have a gap (decisions.services); rr_min and costs
# judge a LONG or SHORT signal after the risk wall (decisions.pipeline.gates_for).
GATE_NAMES = ("data_complete", *GATE_ORDER, "rr_min", "costs")
CHAIN_CHECK_MAX_AGE = timedelta(seconds=60)
CHAIN_CACHE_KEY = "dashboard:audit-chain-status"
CHAIN_LOCK_KEY = "dashboard:audit-chain-check"
CHAIN_LOCK_SECONDS = 600


@dataclass(frozen=True, slots=True)
class LogFilters:
    """The filters every tab shares; empty values filter nothing."""

    q: str = ""
    instrument: Instrument | None = None
    start: datetime | None = None     # inclusive
    end: datetime | None = None       # exclusive


def _span(rows: QuerySet, field: str, filters: LogFilters) -> QuerySet:
    if filters.start is not None:
        rows = rows.filter(**{f"{field}__gte": filters.start})
    if filters.end is not None:
        rows = rows.filter(**{f"{field}__lt": filters.end})
    return rows


def _text(rows: QuerySet, fields: tuple[str, ...], q: str) -> QuerySet:
    if not q:
        return rows
    match = Q()
    for field in fields:
        match |= Q(**{f"{field}__icontains": q})
    return rows.filter(match)


def _shown(model) -> QuerySet:
    """Return how a page loads its rows: the columns and joins the template shows."""
    if model is Decision:
        return Decision.objects.select_related("instrument").defer(
            "rationale", "score_parts", "take_profits", "snapshot", "approval_note")
    if model is Order:
        return Order.objects.select_related("instrument", "account")
    return model.objects.all()


def log_page(rows: QuerySet, number: int, size: int) -> Page:
    """Return page `number` (the last one when past the end) of `rows`, its objects in `rows`' order."""
    page = Paginator(rows.values_list("pk", flat=True), size).get_page(number)
    ids = list(page.object_list)
    # By primary key alone: the filters already chose these ids and need not run a third time.
    by_id = _shown(rows.model).in_bulk(ids)
    page.object_list = [by_id[pk] for pk in ids if pk in by_id]
    return page


# --- decisions and gate verdicts -----------------------------------------------------------
def decisions_log(filters: LogFilters, *, outcome: str = "", action: str = "") -> QuerySet[Decision]:
    """Return the decisions matching the filters, newest bar first, free text over the reason."""
    rows = Decision.objects.order_by("-as_of", "-pk")
    if filters.instrument is not None:
        rows = rows.filter(instrument=filters.instrument)
    if outcome:
        rows = rows.filter(outcome=outcome)
    if action:
        rows = rows.filter(action=action)
    return _text(_span(rows, "as_of", filters), ("reason",), filters.q)


def _blocked_by(gate: str) -> Q:
    """Return "the decision was blocked, first by `gate`", read from the reason the router wrote."""
    # decisions.router: "blocked by <gate>: <why>"; decisions.services: "data gap: <where>" for data_complete.
    # Plain columns, not the gate JSON: the outcome index narrows the rows and no JSON is parsed.
    prefix = "data gap:" if gate == "data_complete" else f"blocked by {gate}:"
    return Q(outcome=Decision.Outcome.BLOCKED, reason__startswith=prefix)


def gate_verdicts_log(filters: LogFilters, *, gate: str = "", blocked_only: bool = False) -> QuerySet[Decision]:
    """Return the decisions with their gate verdicts, newest first.

    `blocked_only` keeps the decisions a gate stopped (outcome blocked); `gate` those it stopped
    first (the deepest cause in GATE_ORDER). A FLAT decision's block only informs (its gates are
    judged as for a long, to show pauses): it stays listed but no filter selects it.
    """
    rows = decisions_log(filters)
    if gate:
        rows = rows.filter(_blocked_by(gate))
    elif blocked_only:
        rows = rows.filter(outcome=Decision.Outcome.BLOCKED)
    return rows


def verdicts_of(decision: Decision) -> dict:
    """Return a decision's stored verdicts split into those that did not allow and a count of those that did."""
    gates = [g for g in decision.gates or [] if isinstance(g, dict)]
    return {"raised": [g for g in gates if g.get("verdict") != "allow"],
            "allowed": sum(1 for g in gates if g.get("verdict") == "allow")}


# --- orders and the audit log ----------------------------------------------------------------
def orders_log(filters: LogFilters, *, status: str = "") -> QuerySet[Order]:
    """Return the orders matching the filters, newest first, free text over ids, leg and reject reason."""
    rows = Order.objects.order_by("-created_at", "-pk")
    if filters.instrument is not None:
        rows = rows.filter(instrument=filters.instrument)
    if status:
        rows = rows.filter(status=status)
    return _text(_span(rows, "created_at", filters),
                 ("client_order_id", "exchange_order_id", "leg", "reject_reason"), filters.q)


def audit_log(filters: LogFilters, *, kind: str = "") -> QuerySet[AuditRecord]:
    """Return the audit records matching the filters, newest first, free text over actor and subject."""
    # Not the body: matching text inside every record's JSON took seconds on a year of MariaDB rows.
    rows = AuditRecord.objects.order_by("-seq")
    if kind:
        rows = rows.filter(kind=kind)
    return _text(_span(rows, "ts", filters), ("actor", "subject"), filters.q)


# --- the chain's status ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ChainStatus:
    ok: bool
    count: int
    last_seq: int
    checked_at: datetime
    problems: int = 0
    problem_seq: int | None = None
    problem_kind: str = ""
    problem_detail: str = ""

    @property
    def intact_up_to(self) -> int:
        """Return the last seq before the first problem (the last seq when there is none)."""
        return self.last_seq if self.ok else max(0, self.problem_seq - 1)

    @property
    def summary(self) -> str:
        """Return the one line the page shows."""
        if self.ok:
            return f"chain intact up to seq {self.last_seq}" if self.count else "chain empty: nothing audited yet"
        return (f"chain broken at seq {self.problem_seq} ({self.problem_kind}): {self.problem_detail}; "
                f"intact up to seq {self.intact_up_to}")

    def as_dict(self) -> dict:
        """Return the JSON form, with the summary and the moment of the check."""
        return {**asdict(self), "checked_at": self.checked_at.isoformat(), "summary": self.summary,
                "intact_up_to": self.intact_up_to}


def audit_chain_check(*, now: datetime) -> ChainStatus:
    """Verify the whole chain now (decisions.audit_services.audit_verify) and cache the status."""
    report = audit_verify()
    first = report.problems[0] if report.problems else None
    status = ChainStatus(ok=report.ok, count=report.count, last_seq=report.last_seq, checked_at=now,
                         problems=len(report.problems), problem_seq=first.seq if first else None,
                         problem_kind=str(first.kind) if first else "", problem_detail=first.detail if first else "")
    cache.set(CHAIN_CACHE_KEY, status, timeout=None)
    return status


def audit_chain_cached() -> ChainStatus | None:
    """Return the last status checked by this process's cache, however old, or None."""
    return cache.get(CHAIN_CACHE_KEY)


def audit_chain_status(*, now: datetime | None = None, max_age: timedelta = CHAIN_CHECK_MAX_AGE) -> ChainStatus | None:
    """Return a status checked within `max_age`, checking now if needed.

    While another request is checking, return the previous status (None before the first check).
    """
    now = now or timezone.now()
    cached = audit_chain_cached()
    if cached is not None and now - cached.checked_at <= max_age:
        return cached
    if not cache.add(CHAIN_LOCK_KEY, True, timeout=CHAIN_LOCK_SECONDS):
        return cached
    try:
        return audit_chain_check(now=now)
    finally:
        cache.delete(CHAIN_LOCK_KEY)
