from decimal import Decimal as D

import pytest

from decisions.risk.gates import (
    GateResult,
    check_costs_vs_target,
    check_daily_loss,
    check_no_open_position,
    first_block,
)


@pytest.mark.parametrize(
    "start, now, verdict",
    [
        (D("10000"), D("9801"), "allow"),   # -1.99 %: inside the limit
        (D("10000"), D("9800"), "block"),   # exactly -2 %: the limit itself blocks
        (D("10000"), D("10500"), "allow"),  # a winning day
        (D("0"), D("0"), "block"),          # no equity at all
    ],
)
def test_check_daily_loss_limit_two_percent(start, now, verdict):
    assert check_daily_loss(start, now, D("0.02")).verdict == verdict


def test_check_daily_loss_reason_names_the_change():
    assert "-2.50%" in check_daily_loss(D("10000"), D("9750"), D("0.02")).reason


def test_first_block_returns_first_blocking_gate():
    gates = [GateResult("a", "allow", ""), check_no_open_position(True), GateResult("c", "block", "")]

    assert first_block(gates).name == "one_position"


@pytest.mark.parametrize(
    "target, verdict",
    [
        (D("101"), "allow"),    # 1 % target, 0.1 % round trip = 10 % of it
        (D("100.3"), "block"),  # 0.3 % target: costs are a third of the move
        (D("99"), "allow"),     # a short's target below entry counts the same
    ],
)
def test_check_costs_vs_target_quarter_limit(target, verdict):
    gate = check_costs_vs_target(D("100"), target, D("0.0004"), D("1"), D("0.25"))

    assert gate.verdict == verdict
