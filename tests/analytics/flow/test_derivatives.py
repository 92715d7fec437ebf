import pytest

from analytics.flow.derivatives import (
    basis_bps, cvd_divergence, cvd_from_candles, cvd_trend, derivatives_context, funding_extreme,
    funding_level_score, funding_z, oi_change_pct,
)
from analytics.flow.types import HOUR_MS, BasisPoint, CandlePoint, CvdPoint, FlowParams, FundingPoint, OpenInterestPoint

P = FlowParams()


def oi_series(values, step_ms=HOUR_MS):
    return tuple(OpenInterestPoint(i * step_ms, v) for i, v in enumerate(values))


def candles(closes, taker_buys, volume=10.0, step_ms=HOUR_MS):
    return tuple(CandlePoint(i * step_ms, (i + 1) * step_ms, c, volume, tb)
                 for i, (c, tb) in enumerate(zip(closes, taker_buys)))


def test_oi_change_pct_over_window_matches_hand_computation():
    # 4h window on hourly samples: 100 -> 110 is +10 %.
    assert oi_change_pct(oi_series([100, 101, 102, 105, 110]), 4 * HOUR_MS, 0.25) == pytest.approx(10.0)


def test_oi_change_pct_sampling_coarser_than_window_returns_none():
    points = oi_series([100, 110], step_ms=4 * HOUR_MS)

    assert oi_change_pct(points, HOUR_MS, 0.25) is None


def test_oi_change_pct_too_little_history_returns_none():
    assert oi_change_pct(oi_series([100, 110]), 24 * HOUR_MS, 0.25) is None


def test_funding_z_excludes_last_rate_from_history():
    points = tuple(FundingPoint(i * 8 * HOUR_MS, r) for i, r in enumerate([0.0001, 0.0002, 0.0003, 0.0005]))
    # history mean 0.0002, sample std 0.0001 -> (0.0005 - 0.0002) / 0.0001 = 3

    assert funding_z(points, 30 * 24 * HOUR_MS, 3) == pytest.approx(3.0)


def test_funding_z_flat_history_returns_none():
    points = tuple(FundingPoint(i, 0.0001) for i in range(20))

    assert funding_z(points, 10**9, 10) is None


@pytest.mark.parametrize("rate, z, expected", [
    # by absolute level (0.05 % per 8 h)
    (0.0005, None, "long"),
    (-0.0005, None, "short"),
    # by z-score against history
    (0.0002, 2.5, "long"),
    (-0.0001, -2.0, "short"),
    # neither
    (0.0002, 1.0, ""),
    (-0.0002, 3.0, ""),
])
def test_funding_extreme_by_level_or_z(rate, z, expected):
    assert funding_extreme(rate, z, P) == expected


@pytest.mark.parametrize("rate, expected", [(0.0001, 0.0), (0.0003, 0.5), (0.0009, 1.0), (-0.0001, -0.5), (-0.01, -1.0)])
def test_funding_level_score_scales_from_neutral_to_extreme(rate, expected):
    assert funding_level_score(rate, P) == pytest.approx(expected)


def test_basis_bps_is_premium_over_index():
    assert basis_bps(BasisPoint(0, 100.1, 100.0)) == pytest.approx(10.0)


def test_cvd_from_candles_cumulates_taker_delta():
    # deltas 2*6-10 = 2, 2*3-10 = -4
    assert cvd_from_candles(candles([1, 1], [6, 3])) == [2.0, -2.0]


def test_cvd_from_candles_missing_taker_buy_returns_none():
    assert cvd_from_candles(candles([1, 1], [6, None])) is None


def test_cvd_trend_price_up_sellers_dominant_is_bearish_divergence():
    # 5 hourly bars; the 4h window holds the last 4: deltas 2*4-10 = -2 each -> -8 / 40 = -0.2
    bars = candles([100, 100.5, 101, 101.5, 102], [5, 4, 4, 4, 4])

    trend, price_change, source = cvd_trend((), bars, 4 * HOUR_MS)

    assert (trend, source) == (pytest.approx(-0.2), "candles")
    assert price_change == pytest.approx(2.0)
    assert cvd_divergence(trend, price_change, P) == ("bearish", 1.0)


def test_cvd_trend_window_not_covered_returns_none():
    trend, _, _ = cvd_trend((), candles([100, 101], [5, 5]), 4 * HOUR_MS)

    assert trend is None


def test_cvd_trend_uses_samples_when_present():
    bars = candles([100, 99, 98, 97, 96], [None] * 5)
    samples = tuple(CvdPoint((i + 1) * HOUR_MS, v) for i, v in enumerate([0, 1, 2, 3, 6]))

    trend, price_change, source = cvd_trend(samples, bars, 4 * HOUR_MS)

    # CVD +6 over 40 base of volume, price -4 %: bullish divergence of strength min(1, 0.15 / 0.1)
    assert (trend, source) == (pytest.approx(0.15), "samples")
    assert price_change == pytest.approx(-4.0)
    assert cvd_divergence(trend, price_change, P) == ("bullish", 1.0)


def test_cvd_divergence_small_price_move_is_none():
    assert cvd_divergence(-0.5, 0.2, P) == ("", 0.0)


def test_derivatives_context_nothing_given_notes_every_input():
    ctx = derivatives_context((), (), (), (), (), P)

    assert ctx.funding_rate is None and ctx.oi_trend_pct is None and ctx.basis_bps is None
    assert {n.split(":")[0] for n in ctx.notes} == {"open_interest", "funding", "basis", "cvd"}


def test_derivatives_context_annualises_latest_funding():
    ctx = derivatives_context((FundingPoint(0, 0.0001),), (), (), (), (), P)

    # 0.01 % per 8 h x 3 x 365 = 10.95 % a year
    assert ctx.funding_annualised_pct == pytest.approx(10.95)
