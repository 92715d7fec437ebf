"""The fault matrix of issue 5: each fault the issue lists, the tests that prove it, and how they are seeded.

New scenarios live in this package and run the real ccxt client (CcxtBroker) against the emulator,
each parametrized by seed and ending in `assert_books_match_venue`. Faults proven before this
package existed are named where they are tested; the matrix checks that every name still resolves,
so a renamed or deleted proof fails here instead of silently leaving a fault untested.
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = "tests.execution.faults"


@dataclass(frozen=True, slots=True)
class Scenario:
    fault: str                    # as the issue words it
    tests: tuple[str, ...]        # "module:function", module relative to tests/ when it starts with a dot


MATRIX = (
    Scenario("timeout with the order applied: no resend, resolved by query", (
        ".test_timeouts:test_timeouts_applied_are_queried_and_unapplied_resent_once_with_the_same_id",
        ".test_timeouts:test_timeouts_same_seed_replays_the_same_faults_and_venue_orders",
        "tests.execution.test_orders_emulator:"
        "test_timeout_after_the_venue_applied_the_entry_is_resolved_without_a_second_order")),
    Scenario("timeout with the order not applied: one resend with the same id", (
        ".test_timeouts:test_timeouts_applied_are_queried_and_unapplied_resent_once_with_the_same_id",
        "tests.execution.test_orders_emulator:"
        "test_timeout_before_the_venue_saw_the_entry_is_resent_once_with_the_same_id",
        "tests.execution.test_loop:test_loop_resolves_an_order_of_unknown_outcome")),
    Scenario("5xx bursts", (
        ".test_server_errors:test_5xx_burst_on_entry_is_unknown_then_resolved_by_query",
        ".test_server_errors:test_5xx_burst_on_stop_reads_never_flattens_a_protected_position",
        "tests.execution.brokers.test_ccxt_broker:test_read_unavailable_retried_with_backoff_then_answers")),
    Scenario("429 with Retry-After", (
        ".test_rate_limits:test_429_retry_after_holds_every_request_that_long",
        ".test_rate_limits:test_429_on_the_stop_send_loop_keeps_the_position_protected_or_flat",
        "tests.execution.brokers.test_ccxt_broker:test_rate_limited_honours_retry_after_before_next_request")),
    Scenario("418 ban", (
        ".test_rate_limits:test_418_ban_halts_all_rest_until_it_ends_and_alerts",
        "tests.execution.brokers.test_ccxt_broker:test_ip_banned_halts_every_request_until_the_ban_ends")),
    Scenario("-1021 clock skew", (
        ".test_rate_limits:test_1021_clock_skew_resyncs_the_offset_and_the_next_request_passes",)),
    Scenario("1 to 10 partial fills with a cancel racing the last", (
        ".test_partial_fills:test_partial_fills_cancel_racing_the_last_slice_books_the_venues_quantity",
        "tests.execution.brokers.test_ccxt_broker:test_cancel_lost_race_to_fill_returns_filled_order")),
    Scenario("rejected stops -2021, -4142", (
        ".test_stop_rejections:test_stop_past_the_price_closes_the_position_at_once",
        ".test_stop_rejections:test_stop_past_the_price_flattened_then_the_loop_ticks_on",
        "tests.execution.test_protective:test_protection_stop_already_past_the_price_closes_the_position_now")),
    Scenario("rejected stops -4120, -2022, -4045", (
        ".test_stop_rejections:test_stop_rejected_is_recorded_and_the_position_flattened_after_the_grace",
        ".test_stop_rejections:test_stop_rejected_after_the_entry_filled_decision_stays_executed",
        ".test_stop_rejections:test_stop_rejected_flatten_is_alerted_once")),
    Scenario("-2019, -4164, -4131 on entry", (
        ".test_entry_rejections:test_entry_refused_by_the_venue_rejected_with_its_reason_and_no_position",
        ".test_entry_rejections:test_entry_under_the_known_minimum_never_reaches_the_venue")),
    Scenario("ghost orders (-2013)", (
        ".test_ghost_orders:test_ghost_order_three_misses_make_it_lost_and_a_later_fill_is_booked",
        ".test_ghost_orders:test_ghost_order_filled_while_denied_books_its_trade_once",
        "tests.execution.test_orders:test_order_acknowledged_then_missing_three_times_is_lost_and_still_watched")),
    Scenario("liquidation and manual closes on the exchange", (
        ".test_venue_closes:test_venue_close_reconciled_with_its_reason_and_our_exits_cancelled",
        "tests.execution.test_reconciliation:"
        "test_reconciliation_run_manual_close_closes_the_position_and_cancels_our_stop",
        "tests.execution.test_reconciliation:"
        "test_reconciliation_run_stop_of_wrong_size_after_partial_close_is_resized")),
    Scenario("user stream drops of 5 s, 65 s and 2 h and listenKey expiry", (
        "tests.execution.test_stream:test_user_stream_drop_of_five_seconds_caught_up_without_going_stale",
        "tests.execution.test_stream:test_user_stream_drop_of_sixty_five_seconds_polls_every_five_seconds_then_resumes",
        "tests.execution.test_stream:test_user_stream_drop_of_two_hours_with_lapsed_listen_key_resumes_on_a_new_key",
        "tests.execution.test_stream:test_user_stream_listen_key_expiry_reconnects_on_new_key_without_losing_a_fill")),
)
# The issue's list, in its words: the matrix must name a proof for each.
ISSUE_FAULTS = ("timeout with the order applied", "timeout with the order not applied", "5xx bursts",
                "429 with Retry-After", "418 ban", "-1021 clock skew", "partial fills", "-2021, -4142",
                "-4120, -2022, -4045", "-2019, -4164, -4131", "ghost orders", "liquidation and manual closes",
                "user stream drops", "listenKey expiry")
NOT_SCENARIOS = {"test_matrix", "test_emulator_faults"}


def _resolve(name: str):
    module, function = name.split(":")
    module = HERE + module if module.startswith(".") else module
    return getattr(importlib.import_module(module), function, None)


def _marks(function) -> dict[str, tuple]:
    return {mark.args[0]: mark.args[1] for mark in getattr(function, "pytestmark", []) if mark.name == "parametrize"}


@pytest.mark.parametrize("fault", ISSUE_FAULTS)
def test_matrix_names_a_proof_for_every_fault_of_the_issue(fault):
    assert [s.fault for s in MATRIX if fault in s.fault], f"no scenario proves {fault!r}"


@pytest.mark.parametrize("name", sorted({t for s in MATRIX for t in s.tests}))
def test_matrix_every_named_proof_exists(name):
    assert inspect.isfunction(_resolve(name)), f"{name} does not resolve to a test function"


@pytest.mark.parametrize("name", sorted({t for s in MATRIX for t in s.tests if t.startswith(".")}))
def test_matrix_new_scenarios_are_seeded(name):
    seeds = next((values for argnames, values in _marks(_resolve(name)).items() if "seed" in argnames), None)
    assert seeds, f"{name} is not parametrized by seed"


def test_matrix_every_scenario_module_is_in_the_matrix():
    named = {t.split(":")[0][1:] for s in MATRIX for t in s.tests if t.startswith(".")}
    modules = {p.stem for p in Path(__file__).parent.glob("test_*.py")} - NOT_SCENARIOS

    assert modules == named
