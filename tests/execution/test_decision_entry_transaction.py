"""A paper decision and its entry commit together: one transaction, one audit append, in the chain's order.

On the paper venue the entry is a computation on this database, so `decision_run` takes it into the
decision's own transaction. An entry that fails is undone alone (its savepoint) and the decision kept; a
refused order is kept with its records and the decision marked skipped.
"""
from datetime import datetime, timezone
from decimal import Decimal as D

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from decisions.audit_services import audit_verify
from decisions.models import AuditRecord, Decision, Mode
from decisions.selectors import trading_config_get
from execution.engine import cycle_run
from execution.models import Account, Fill, Order, Position
from execution.oms import OrderRejected
from tests.market_fixtures import WARMUP_BARS

pytestmark = pytest.mark.django_db


def _mode_on() -> None:
    # The edge bar lowered as in tests/execution/test_pipeline.py: on this real day the default refuses every entry.
    config = trading_config_get()
    config.mode, config.edge_threshold = Mode.ON, 0.5
    config.save()


def _closes(frame):
    for open_ms in frame["open_time_ms"].iloc[WARMUP_BARS:]:
        yield datetime.fromtimestamp((int(open_ms) + 900_000) / 1000, tz=timezone.utc)


def _appends(queries: CaptureQueriesContext) -> tuple[int, int]:
    """Return (reads of the audit head, inserts of records): one of each per append (the head is locked on MariaDB)."""
    sqls = [q["sql"] for q in queries.captured_queries]
    return (sum(1 for sql in sqls if sql.startswith("SELECT") and "decisions_audithead" in sql),
            sum(1 for sql in sqls if sql.startswith("INSERT INTO") and "decisions_auditrecord" in sql))


def _until_first_executed(frame) -> tuple[datetime, CaptureQueriesContext]:
    """Run cycles up to the first bar decided "executed"; return its close and that cycle's queries."""
    for now in _closes(frame):
        with CaptureQueriesContext(connection) as queries:
            cycle_run(now=now, decide=True)
        if Decision.objects.filter(as_of=now, outcome__in=["executed", "skipped"]).exists():
            return now, queries
    raise AssertionError("no decision was executed on the day")


def _actions(decision: Decision) -> list[tuple[str, str]]:
    """Return (kind, the order record's action) of the records from the decision's first on, in chain order."""
    first = AuditRecord.objects.get(kind="decision", subject=f"decision:{decision.pk}").seq
    return [(r.kind, r.body["action"] if r.kind == "order" else "")
            for r in AuditRecord.objects.filter(seq__gte=first).order_by("seq")]


def test_executed_paper_decision_and_its_entry_go_in_with_one_head_lock_in_chain_order(btc_15m):
    _, frame = btc_15m
    _mode_on()

    now, queries = _until_first_executed(frame)

    decision = Decision.objects.get(as_of=now)
    order = Order.objects.get(decision=decision)
    assert (decision.outcome, order.status) == ("executed", "filled")
    assert Position.objects.get(decision=decision).status == "open"
    assert _appends(queries) == (1, 1)          # no position was open before: no exit's append in this cycle
    assert _actions(decision) == [("decision", ""), ("gate", ""), ("order", "created"), ("order", "report"),
                                  ("order", "position_opened")]
    assert audit_verify().ok


def test_paper_entry_failing_inside_the_decisions_transaction_keeps_the_decision_and_undoes_the_entry(
        btc_15m, monkeypatch):
    _, frame = btc_15m
    _mode_on()

    def boom(position):
        raise RuntimeError("failed after the order, fills and position were written")
    monkeypatch.setattr("execution.services.position_payload", boom)

    with pytest.raises(RuntimeError, match="failed after"):
        _until_first_executed(frame)

    decision = Decision.objects.get(outcome="executed")
    assert not Order.objects.exists() and not Fill.objects.exists() and not Position.objects.exists()
    assert Account.objects.get(name="paper").balance_usdt == D("10000")
    assert _actions(decision) == [("decision", ""), ("gate", "")]
    assert audit_verify().ok


def test_paper_entry_refused_marks_the_decision_skipped_and_keeps_the_order_with_its_records(btc_15m, monkeypatch):
    _, frame = btc_15m
    _mode_on()

    def refuse(self, intent, **kwargs):
        raise OrderRejected("-2019 Margin is insufficient")
    monkeypatch.setattr("execution.brokers.paper.PaperBroker.submit", refuse)

    now, queries = _until_first_executed(frame)

    decision = Decision.objects.get(as_of=now)
    assert (decision.outcome, decision.reason) == ("skipped", "order rejected: -2019 Margin is insufficient")
    order = Order.objects.get(decision=decision)
    assert (order.status, order.reject_reason) == ("rejected", "-2019 Margin is insufficient")
    assert not Position.objects.exists()
    assert _appends(queries) == (1, 1)
    assert _actions(decision) == [("decision", ""), ("gate", ""), ("order", "created"), ("order", "report"),
                                  ("order", "not_placed")]
    assert audit_verify().ok
