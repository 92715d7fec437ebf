"""Reconciliation shell: compare the venue with the books at start-up and every 30 s, store and act.

The comparison itself is pure (execution.reconcile). Here: load both views (views.py), store a
ReconciliationRun, carry out its actions in order under the symbol leases, each audited
(runs.py, orders.py, positions.py), and gate trading on the result (gate.py).
"""
from execution.reconciliation.gate import reconciliation_acknowledge, trading_enabled
from execution.reconciliation.runs import (TRIGGERS, account_broker, reconcile_accounts, reconciliation_failed,
                                           reconciliation_payload, reconciliation_run)

__all__ = ["TRIGGERS", "account_broker", "reconcile_accounts", "reconciliation_acknowledge", "reconciliation_failed",
           "reconciliation_payload", "reconciliation_run", "trading_enabled"]
