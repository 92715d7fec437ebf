"""The restarted engine of a trial: reconcile, tick the execution loop on a simulated clock, check the books.

The restart is what run_execution does, under a supervisor that starts it again after a crash:
the execution loop with reconciliation_run and a StreamApplier, take the engine lease (refused
while the dead engine's lease lasts, when the holder name is per process: the supervisor tries
again every tick), reconcile once (ExecutionLoop.start), then tick every 2 s: resolve unknown
orders, poll REST every 5 s (no user-stream socket is opened, so the applier's stream is stale and
REST stands in, as it does until a socket is up), protect and verify every open position, and
reconcile every 30 s (and at once when an order resolves).

The engine's clock starts at the wall clock and moves 2 s a tick without waiting; the venue's
clock and ccxt's request timestamps move with it, so every time the engine, the venue and the
database see is on one simulated timeline. Wall time is measured separately.

After every step the venue's state is compared with the books (checks.py). The books are
reconciled at the first step where nothing differs; three more ticks and one more reconciliation
run follow, and the last comparison (with the venue also read through ccxt) is the verdict. A
position counts as naked from the restart (or from when it appears) until it has exactly one stop
of its size, with a resolution of one tick.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from execution.brokers.ccxt import CcxtBroker
from execution.loop import ExecutionLoop
from execution.models import Account, Fill, Order, Position
from execution.reconciliation import reconciliation_run
from execution.safety import EngineAlreadyRunning
from execution.stream.applier import StreamApplier
from execution.trials.checks import Books, Problems, books_problems, naked_positions
from execution.trials.flows import ACCOUNT_NAME, engine_holder, trial_broker
from execution.trials.matrix import TrialSpec
from execution.trials.venue import VenueControl

TICK = timedelta(seconds=2)
HORIZON = timedelta(minutes=5)       # give up: not reconciled
SETTLE_TICKS = 3


class TrialClock:
    """The restarted engine's clock: the wall clock at the restart, then 2 s a tick; the venue follows."""

    def __init__(self, venue: VenueControl, broker: CcxtBroker):
        self.venue, self.broker = venue, broker
        self.start = self.now = timezone.now()
        self.offset_ms = 0

    def advance(self, step: timedelta = TICK) -> datetime:
        """Move the engine, the venue and ccxt's timestamps `step` forward; return the new time."""
        wall = timezone.now()
        target_ms = int((self.now + step - wall).total_seconds() * 1000)
        self.offset_ms = max(self.offset_ms, target_ms)   # never back: the venue's clock only grows
        self.now = wall + timedelta(milliseconds=self.offset_ms)
        self.venue.call("clock", self.offset_ms)
        # ccxt signs with milliseconds() - timeDifference: the venue checks it against its own clock.
        self.broker.exchange.options["timeDifference"] = -self.offset_ms
        return self.now

    @property
    def elapsed_s(self) -> float:
        return (self.now - self.start).total_seconds()


@dataclass
class NakedWatch:
    """How long each venue position went without its stop, in simulated seconds since the restart."""

    since: dict[str, float] = field(default_factory=dict)
    longest_s: float = 0.0
    reasons: list[str] = field(default_factory=list)

    def observe(self, at_s: float, state: dict) -> None:
        naked = naked_positions(state)
        for symbol, why in naked.items():
            if symbol not in self.since:
                self.since[symbol] = at_s
                self.reasons.append(f"{at_s:.0f}s {symbol}: {why}")
        for symbol in [s for s in self.since if s not in naked]:
            self.longest_s = max(self.longest_s, at_s - self.since.pop(symbol))

    def close(self, at_s: float) -> float:
        """Return the longest naked time, counting positions still naked until `at_s`."""
        for start in self.since.values():
            self.longest_s = max(self.longest_s, at_s - start)
        return self.longest_s


def books_load(account: Account) -> Books:
    """Return the database's side of the comparison for `account`."""
    orders = tuple(Order.objects.filter(account=account).values_list("client_order_id", "status", "quantity",
                                                                        "filled_quantity"))
    fills = tuple(Fill.objects.filter(order__account=account).values_list("trade_id", "order__client_order_id",
                                                                           "quantity", "price"))
    sign = {"LONG": Decimal(1), "SHORT": Decimal(-1)}
    held = Position.objects.filter(account=account, status=Position.Status.OPEN).select_related("instrument")
    positions = tuple((p.instrument.exchange_symbol, sign[p.side] * p.quantity) for p in held)
    return Books(orders, fills, positions)


def _ccxt_agrees(broker: CcxtBroker, state: dict) -> list[str]:
    """Return where the venue read through ccxt differs from its own state (a broken read would hide problems)."""
    problems = []
    held = {p.symbol: p.quantity for p in broker.positions()}
    own = {p["symbol"]: Decimal(p["amount"]) for p in state["positions"].values() if Decimal(p["amount"])}
    if held != own:
        problems.append(f"ccxt positions {held} != venue {own}")
    listed = sorted(o.client_order_id for o in broker.open_orders())
    working = [o["client_order_id"] for o in state["orders"].values() if o["status"] in ("NEW", "PARTIALLY_FILLED")]
    open_ids = sorted(working + [a["client_algo_id"] for a in state["algo_orders"].values() if a["status"] == "NEW"])
    if listed != open_ids:
        problems.append(f"ccxt open orders {listed} != venue {open_ids}")
    return problems


def _orders_since(account: Account, moment: datetime) -> list[str]:
    rows = Order.objects.filter(account=account, created_at__gte=moment).order_by("created_at", "pk")
    return [f"{o.leg}:{o.status}" for o in rows]


def _start(loop: ExecutionLoop, clock: TrialClock, venue: VenueControl, watch: NakedWatch) -> float:
    """Start the loop, trying again a tick later while another holder's lease lasts; return the seconds waited."""
    while True:
        try:
            loop.start(clock.now)
            return clock.elapsed_s
        except EngineAlreadyRunning:
            if clock.elapsed_s >= HORIZON.total_seconds():
                raise
            watch.observe(clock.elapsed_s, venue.snapshot())
            clock.advance()


def restart_and_check(spec: TrialSpec, venue: VenueControl) -> dict:
    """Restart the engine after a crash, run it until the books match the venue, and return the verdict."""
    started = time.perf_counter()
    account = Account.objects.get(name=ACCOUNT_NAME)
    broker = trial_broker(account)
    clock = TrialClock(venue, broker)
    loop = ExecutionLoop(account, broker, engine_holder(spec), reconcile=reconciliation_run,
                         stream=StreamApplier(account=account, broker=broker))
    watch = NakedWatch()
    lease_wait_s = _start(loop, clock, venue, watch)
    reconciled_s = reconciled_wall_s = None
    settle = 0
    while True:
        state = venue.snapshot()
        watch.observe(clock.elapsed_s, state)
        if reconciled_s is None and not books_problems(state, books_load(account)):
            reconciled_s, reconciled_wall_s = clock.elapsed_s, time.perf_counter() - started
        if reconciled_s is not None:
            settle += 1
        if settle > SETTLE_TICKS or clock.elapsed_s >= HORIZON.total_seconds():
            break
        loop.tick(clock.advance())
    reconciliation_run(account=account, broker=broker, now=clock.advance(), trigger="periodic")
    state = venue.snapshot()
    watch.observe(clock.elapsed_s, state)
    problems: Problems = books_problems(state, books_load(account))
    for text in _ccxt_agrees(broker, state):
        problems.add("orders", text)
    return {"reconciled_sim_s": reconciled_s, "reconciled_wall_s": reconciled_wall_s, "lease_wait_s": lease_wait_s,
            "naked_max_s": watch.close(clock.elapsed_s), "naked": watch.reasons[:5],
            "problems": {k: v[:10] for k, v in problems.by_criterion.items() if v},
            "restart_orders": _orders_since(account, clock.start), "sim_s": clock.elapsed_s,
            "wall_s": time.perf_counter() - started}


def restart_main(spec: TrialSpec, venue: VenueControl, conn) -> None:
    """Run `restart_and_check` in this (forked) process and send its result, or the error, through `conn`."""
    try:
        result = restart_and_check(spec, venue)
    except BaseException:   # noqa: BLE001  reported as the trial's error
        result = {"error": traceback.format_exc()[-4000:]}
    conn.send(result)
    conn.close()
