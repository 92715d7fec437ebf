import numpy as np
import pytest

from market.coverage import DAY_MS, SeriesGapError, require_complete, series_coverage, window_gaps

H = 3_600_000


def test_series_coverage_counts_share_per_day():
    times = np.array([i * H for i in range(48) if i not in (5, 6, 30)])

    cov = series_coverage("1h", times, H)

    assert [(d.expected, d.present) for d in cov.days] == [(24, 22), (24, 23)]
    assert cov.share == pytest.approx(45 / 48)
    assert [(g.start_ms, g.missing_bars) for g in cov.gaps] == [(5 * H, 2), (30 * H, 1)]


def test_series_coverage_buckets_stamps_a_few_ms_late():
    funding = np.array([0, 8 * H + 5, 16 * H + 3])

    cov = series_coverage("funding", funding, 8 * H, start_ms=0, end_ms=DAY_MS)

    assert cov.share == 1.0 and cov.gaps == ()


def test_window_gaps_counts_missing_head_and_tail():
    times = np.array([2 * H, 3 * H])

    gaps = window_gaps(times, H, 0, 6 * H)

    assert [(g.start_ms, g.end_ms, g.missing_bars) for g in gaps] == [(0, 2 * H, 2), (4 * H, 6 * H, 2)]


def test_require_complete_names_series_and_first_gap():
    with pytest.raises(SeriesGapError, match=r"BTCUSDT 15m: 2 missing rows .* first gap 1970-01-01 01:00"):
        require_complete("BTCUSDT 15m", np.array([0, 3 * H]), H, 0, 4 * H)


def test_require_complete_full_window_passes():
    require_complete("x", np.arange(0, 4 * H, H), H, 0, 4 * H)
