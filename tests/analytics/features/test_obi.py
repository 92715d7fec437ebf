import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.features.obi import (
    DepthSnapshot, ObiState, obi, obi_ema, obi_matrix, parse_depth_snapshots, snapshot_levels,
)

TARDIS_25 = "binance_usdm_BTCUSDT_book-snapshot-25-tardis_2020-09-01.csv.gz"
DEPTH = "binance_usdm_BTCUSDT_depth-snapshot_2022-11-01.csv.gz"

# Mid 100; a 10 bps band is 99.9 .. 100.1.
BIDS = np.array([[99.95, 3.0], [99.9, 1.0], [99.0, 50.0]])
ASKS = np.array([[100.05, 2.0], [100.2, 40.0]])


def test_obi_counts_only_levels_inside_the_band():
    assert obi(BIDS, ASKS, band_bps=10) == pytest.approx(4 / 6)


def test_obi_wider_band_takes_deeper_levels():
    assert obi(BIDS, ASKS, band_bps=200) == pytest.approx(54 / 96)


def test_obi_balanced_book_is_half_and_one_sided_is_nan():
    assert obi([[99.9, 1]], [[100.1, 1]]) == 0.5
    assert np.isnan(obi(BIDS, np.empty((0, 2))))


def test_obi_matrix_matches_obi_per_snapshot_with_missing_levels():
    snapshots = [DepthSnapshot(1, BIDS, ASKS), DepthSnapshot(2, BIDS[:1], ASKS), DepthSnapshot(3, BIDS, ASKS[:0])]

    values = obi_matrix(*snapshot_levels(snapshots), band_bps=10)

    expected = [obi(s.bids, s.asks, 10) for s in snapshots]
    np.testing.assert_allclose(values, expected, rtol=1e-9, atol=1e-9)


levels = st.lists(st.tuples(st.floats(90, 110), st.floats(0, 50)), min_size=0, max_size=12)


@settings(max_examples=100, deadline=None)
@given(levels, levels, st.floats(1, 500))
def test_obi_is_between_zero_and_one_and_matrix_agrees(bids, asks, band_bps):
    bids, asks = np.array(bids).reshape(-1, 2), np.array(asks).reshape(-1, 2)

    value = obi(bids, asks, band_bps)

    assert np.isnan(value) or 0 <= value <= 1
    matrix = obi_matrix(*snapshot_levels([DepthSnapshot(0, bids, asks)]), band_bps=band_bps)
    np.testing.assert_allclose(matrix, [value], rtol=1e-9, atol=1e-9)


def test_obi_state_ema_matches_obi_ema_and_skips_nan():
    snapshots = [DepthSnapshot(1, BIDS, ASKS), DepthSnapshot(2, BIDS, ASKS[:0]), DepthSnapshot(3, BIDS[:1], ASKS)]
    state = ObiState(band_bps=10, alpha=0.5)

    values = [state.update(s) for s in snapshots]

    raw = np.array([v.obi for v in values])
    np.testing.assert_allclose([v.obi_ema for v in values], obi_ema(raw, 0.5), rtol=1e-9, atol=1e-9)
    assert values[1].obi_ema == values[0].obi_ema == pytest.approx(4 / 6)
    assert values[2].obi_ema == pytest.approx(4 / 6 + 0.5 * (3 / 5 - 4 / 6))


def test_obi_state_rejects_alpha_outside_unit_interval():
    with pytest.raises(ValueError, match="alpha must be in"):
        ObiState(alpha=0)


def test_parse_depth_snapshots_tardis_file_gives_25_levels_and_sane_obi(market_data_dir):
    snapshots = parse_depth_snapshots((market_data_dir / TARDIS_25).read_bytes(), TARDIS_25)

    assert len(snapshots) == 10
    assert snapshots[0].ts_ms == 1_598_918_403_696   # µs in the file
    assert snapshots[0].bids.shape == (25, 2) and snapshots[0].asks.shape == (25, 2)
    assert snapshots[0].bids[0, 0] < snapshots[0].asks[0, 0]
    values = obi_matrix(*snapshot_levels(snapshots), band_bps=5)
    np.testing.assert_allclose(values, [obi(s.bids, s.asks, 5) for s in snapshots], rtol=1e-9, atol=1e-9)
    assert ((values > 0) & (values < 1)).all()
    assert values[0] == pytest.approx(0.5769, abs=1e-4)


def test_parse_depth_snapshots_binance_depth_file_holds_only_bids(market_data_dir):
    snapshots = parse_depth_snapshots((market_data_dir / DEPTH).read_bytes(), DEPTH)

    assert len(snapshots) == 1 and snapshots[0].ts_ms == 1_667_346_579_146
    assert snapshots[0].bids.shape == (100, 2) and snapshots[0].bids[0, 0] == 20377.0
    # The recorded fixture has no ask side, so there is no mid and no imbalance to report.
    assert np.isnan(obi(snapshots[0].bids, snapshots[0].asks))


def test_parse_depth_snapshots_unknown_layout_raises():
    with pytest.raises(ValueError, match="not a Tardis book snapshot"):
        parse_depth_snapshots(b"a,b\n1,2\n", "x.csv")
