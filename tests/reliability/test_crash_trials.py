"""Crash trials: SIGKILL the execution process at each crash point of each flow, restart, reconcile, compare.

48 trials (8 points x 3 flows x long and short), each in real processes: the venue emulator, the
execution process killed at its crash point, and the restarted engine (execution/trials/). The
safety criteria (no duplicate order, books equal to the venue, every trade booked once) are checked
for every trial; the timing criteria (protected within 10 s, reconciled within 30 s, on the
engine's simulated clock) separately. The full 600-trial matrix: manage.py crash_trials.
"""
import os
import subprocess
import sys
from copy import deepcopy
from decimal import Decimal as D

import pytest

from execution.crashpoints import CRASH_AT_ENV, CRASH_SKIP_ENV
from execution.trials.checks import Books, books_problems
from execution.trials.director import TrialWorker
from execution.trials.matrix import trial_specs

SEED = 1
SUITE = trial_specs(48, SEED)
SUITE_CASES = [pytest.param(s, id=s.name) for s in SUITE]


@pytest.fixture(scope="module")
def trial_results(tmp_path_factory):
    """Return a function running a trial once on a shared worker process (later calls reuse the result)."""
    worker = TrialWorker(tmp_path_factory.mktemp("crash-trials"))
    results = {}

    def run(spec):
        if spec.index not in results:
            results[spec.index] = worker.run(spec)
        return results[spec.index]

    yield run
    worker.close()


@pytest.mark.parametrize("spec", SUITE_CASES)
def test_crash_trial_after_restart_books_equal_venue_without_duplicates(trial_results, spec):
    result = trial_results(spec)

    assert result["error"] == "" and result["verdict"]["crashed"], result["error"]
    problems = result["problems"]
    assert not problems.get("duplicate"), problems
    assert not problems.get("orders") and not problems.get("positions"), problems
    assert not problems.get("fills"), problems
    assert not problems.get("protection"), problems


@pytest.mark.parametrize("spec", SUITE_CASES)
def test_crash_trial_after_restart_protected_in_10s_and_reconciled_in_30s(trial_results, spec):
    result = trial_results(spec)

    assert result["naked_max_s"] <= 10, result["naked"]
    assert result["reconciled_sim_s"] is not None and result["reconciled_sim_s"] < 30, result["restart_orders"]


def test_trial_specs_cover_every_point_flow_and_side_equally():
    combos = {(s.point, s.flow, s.side) for s in SUITE}

    assert len(SUITE) == len(combos) == 48


# -- the checker: a clean venue state, then one difference at a time -------------------------------

VENUE = {
    "orders": {"1": {"client_order_id": "tb-a-entry", "status": "FILLED", "quantity": "0.010", "executed_qty": "0.010",
                     "algo_id": 0}},
    "algo_orders": {"2": {"client_algo_id": "tb-b-sl", "status": "NEW", "order_type": "STOP_MARKET",
                          "reduce_only": True, "side": "SELL", "symbol": "BTCUSDT", "quantity": "0.010",
                          "actual_order_id": 0}},
    "trades": [{"trade_id": 3, "order_id": 1, "qty": "0.010", "price": "60000.0"}],
    "positions": {"BTCUSDT:BOTH": {"symbol": "BTCUSDT", "amount": "0.010"}},
}
BOOKS = Books(orders=(("tb-a-entry", "filled", D("0.010"), D("0.010")), ("tb-b-sl", "accepted", D("0.010"), D(0))),
              fills=(("3", "tb-a-entry", D("0.010"), D("60000")),), positions=(("BTCUSDT", D("0.010")),))


def _second_entry(venue):
    venue["orders"]["4"] = {**venue["orders"]["1"], "status": "EXPIRED", "executed_qty": "0"}


def _stop_cancelled(venue):
    venue["algo_orders"]["2"]["status"] = "CANCELED"


def _position_grown(venue):
    venue["positions"]["BTCUSDT:BOTH"]["amount"] = "0.011"


CHECKER_CASES = [
    # (venue change, books change, criteria that fail)
    (None, {}, []),
    (_second_entry, {}, ["duplicate", "orders"]),
    (_stop_cancelled, {}, ["orders", "protection"]),
    (_position_grown, {}, ["positions", "protection"]),
    (None, {"fills": BOOKS.fills * 2}, ["fills"]),                                  # one trade booked twice
    (None, {"fills": ()}, ["fills"]),                                               # a trade never booked
    (None, {"orders": BOOKS.orders + (("tb-c-exit", "submitted", D(1), D(0)),)}, ["orders"]),  # never at the venue
    (None, {"positions": ()}, ["positions"]),
]


@pytest.mark.parametrize(("change_venue", "change_books", "failed"), CHECKER_CASES)
def test_books_problems_names_each_difference_by_criterion(change_venue, change_books, failed):
    venue = deepcopy(VENUE)
    if change_venue:
        change_venue(venue)
    books = Books(**{"orders": BOOKS.orders, "fills": BOOKS.fills, "positions": BOOKS.positions} | change_books)

    assert books_problems(venue, books).failed() == failed


# -- the crash point itself, in a process of its own -----------------------------------------------

CRASH_CASES = [
    # (TRADINGBOT_CRASH_AT, TRADINGBOT_CRASH_SKIP, exit code, passes printed before the kill)
    ("", "", 0, "12"),
    ("order.replied", "", -9, ""),
    ("order.replied:sl", "", -9, "1"),
    ("order.replied:sl", "1", 0, "12"),         # only one pass of the sl leg: skipped
    ("order.replied", "1", -9, "1"),
]


@pytest.mark.parametrize(("crash_at", "skip", "exit_code", "printed"), CRASH_CASES)
def test_crash_point_kills_at_the_named_pass_only(crash_at, skip, exit_code, printed):
    script = ("from execution.crashpoints import crash_point\n"
              "crash_point('order.replied', 'entry'); print(1, end='', flush=True)\n"
              "crash_point('order.replied', 'sl'); print(2, end='', flush=True)\n")
    env = {**os.environ, CRASH_AT_ENV: crash_at, CRASH_SKIP_ENV: skip}

    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)

    assert (done.returncode, done.stdout) == (exit_code, printed)
