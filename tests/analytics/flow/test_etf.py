from datetime import date, timedelta

import pytest

from analytics.flow.etf import daily_totals, etf_context, latest_revisions, streak_days, surprise_z
from analytics.flow.types import EtfFlowPoint, FlowParams

D0 = date(2024, 3, 1)


def flows(totals, fund="IBIT"):
    return tuple(EtfFlowPoint(D0 + timedelta(days=i), fund, v, i) for i, v in enumerate(totals))


def test_daily_totals_sum_funds_per_day():
    rows = flows([10, 20]) + flows([-5, 1], fund="GBTC")

    assert daily_totals(rows) == [(D0, 5.0), (D0 + timedelta(days=1), 21.0)]


def test_latest_revisions_keep_the_figure_known_last():
    rows = (EtfFlowPoint(D0, "IBIT", 100.0, 1), EtfFlowPoint(D0, "IBIT", 120.0, 5))

    assert latest_revisions(rows) == (EtfFlowPoint(D0, "IBIT", 120.0, 5),)


@pytest.mark.parametrize("totals, expected", [
    ([1, -1, -2, -3], -3),
    ([-1, 2, 3], 2),
    ([5, 0], 0),
    ([], 0),
])
def test_streak_days_counts_same_sign_days_back_from_last(totals, expected):
    assert streak_days(totals) == expected


def test_surprise_z_against_trailing_mean_and_std():
    # history 10, 20, 30: mean 20, sample std 10 -> (50 - 20) / 10 = 3
    assert surprise_z([10, 20, 30, 50], 20, 3) == pytest.approx(3.0)


def test_surprise_z_uses_only_the_trailing_window():
    # window 2: history 20, 30 -> mean 25, std 7.0711
    assert surprise_z([1000, 20, 30, 50], 2, 2) == pytest.approx(25 / 7.0710678, rel=1e-6)


def test_etf_context_sums_streak_and_surprise():
    totals = [100.0] * 15 + [50.0, -10.0, -20.0, -30.0, -40.0, -50.0]

    ctx = etf_context(flows(totals), FlowParams())

    assert ctx.total_1d_usd == -50.0
    assert ctx.total_5d_usd == -150.0
    assert ctx.total_20d_usd == sum(totals[-20:])
    assert ctx.streak_days == -5
    history = totals[-21:-1]
    mean = sum(history) / 20
    std = (sum((h - mean) ** 2 for h in history) / 19) ** 0.5
    assert ctx.surprise_z == pytest.approx((-50 - mean) / std)
    assert ctx.latest_by_fund == (("IBIT", -50.0),)


def test_etf_context_no_rows_is_empty_with_note():
    ctx = etf_context((), FlowParams())

    assert ctx.total_1d_usd is None and ctx.streak_days == 0
    assert ctx.notes == ("etf_flows: no rows",)
