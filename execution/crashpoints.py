"""Crash points: kill this process with SIGKILL at a named place, for the crash trials (execution/trials/).

`crash_point(name, detail)` does nothing unless the environment variable TRADINGBOT_CRASH_AT names
it, as "<name>" or "<name>:<detail>"; TRADINGBOT_CRASH_SKIP=N lets the first N matching passes
through and kills at the N+1-th. SIGKILL, not an exception: no `finally`, no rollback handler and
no atexit hook runs, which is what a power cut or the OOM killer leaves behind.

"The database killed mid-commit", with SQLite: a kill inside a transaction (order.saved,
fill.booked) is its equivalent. In WAL mode the rows written so far sit in uncommitted WAL frames
that no reader ever sees and the next connection ignores, so the database holds the last commit.
With MariaDB it would mean killing mariadbd itself; the trials do not do that.

Points and where they sit (the detail is the order's leg: entry, sl, tp1, exit, ...):
- order.committed      execution/orders.py order_send: the order row is committed, nothing sent yet.
- venue.applied        execution/trials/transport.py: the venue applied a write, its reply is unread.
- order.replied        execution/orders.py order_send: the venue's reply is in memory, not in the books.
- order.saved          execution/orders.py order_apply_report: the reply's rows are written, not committed.
- fill.booked          execution/orders.py _book_fills: a fill row is written, its transaction not committed.
- protect.before_stop  execution/protective.py protection_place: the entry is booked, no stop sent yet.
- venue.cancel         execution/trials/transport.py: a cancel of the leg is about to be sent.
"""
from __future__ import annotations

import os
import signal

CRASH_AT_ENV = "TRADINGBOT_CRASH_AT"
CRASH_SKIP_ENV = "TRADINGBOT_CRASH_SKIP"
POINT_NAMES = ("order.committed", "venue.applied", "order.replied", "order.saved", "fill.booked",
               "protect.before_stop", "venue.cancel")

_passes: dict[str, int] = {}


def crash_point(name: str, detail: str = "") -> None:
    """Kill this process (SIGKILL) when TRADINGBOT_CRASH_AT is `name` or `name:detail`; else do nothing."""
    wanted = os.environ.get(CRASH_AT_ENV)
    if not wanted or wanted not in (name, f"{name}:{detail}"):
        return
    seen = _passes.get(wanted, 0)
    _passes[wanted] = seen + 1
    if seen < int(os.environ.get(CRASH_SKIP_ENV) or 0):
        return
    os.kill(os.getpid(), signal.SIGKILL)
