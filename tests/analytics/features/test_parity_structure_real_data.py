"""Real candles: the whole-history and the bar-by-bar paths agree, and no value looks ahead."""
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from analytics.features.aggregate import BarAggregator, resample_arrays
from analytics.features.fvg import FvgState, fvg_series
from analytics.features.mtf import TIMEFRAMES, MtfParams, MtfState, mtf_series
from analytics.features.structure import StructureState, structure_series
from market.csvformat import parse_candles
from market.resample import resample

USDM_10_DAYS = "binance_usdm_BTCUSDT_1m_2025-06-06_2025-06-16.csv.gz"   # 14,399 bars: views up to 1d
SPOT_MONTH = "binance_spot_BTCUSDT_1m_2024-11-30_2024-12-29.csv.gz"     # 41,760 bars: three full weeks
COLUMNS = ("open_time_ms", "open", "high", "low", "close", "volume")


def _load(name):
    table = parse_candles((Path(settings.MARKET_DATA_DIR) / name).read_bytes(), name, "1m")
    return table.numbers, {c: table.numbers[c].to_numpy() for c in COLUMNS}


@pytest.fixture(scope="module")
def usdm():
    return _load(USDM_10_DAYS)


@pytest.fixture(scope="module")
def spot():
    return _load(SPOT_MONTH)


def _cut_points(n, seed):
    return sorted(np.random.default_rng(seed).integers(1, n, 6).tolist()) + [n - 1]


def _assert_rows_equal(series, rows):
    for f in fields(rows[0]):
        got = np.array([getattr(r, f.name) for r in rows], dtype=float)
        np.testing.assert_allclose(got, np.asarray(getattr(series, f.name), float), rtol=1e-9, atol=1e-9,
                                   err_msg=f.name)


def _assert_prefix(full, part, cut):
    for f in fields(full):
        np.testing.assert_allclose(np.asarray(getattr(part, f.name), float),
                                   np.asarray(getattr(full, f.name), float)[:cut], rtol=1e-9, atol=1e-9,
                                   err_msg=f"{f.name} at cut {cut}")


@pytest.mark.parametrize("pivot_length", [3, 5])
def test_structure_state_equals_series_at_every_real_bar(usdm, pivot_length):
    _, bars = usdm
    state = StructureState(pivot_length)

    rows = [state.update(h, l, c) for h, l, c in zip(bars["high"].tolist(), bars["low"].tolist(),
                                                      bars["close"].tolist())]

    series = structure_series(bars["high"], bars["low"], bars["close"], pivot_length)
    _assert_rows_equal(series, rows)
    assert {1, -1} <= set(series.trend.tolist()) and (series.bos != 0).sum() > 100


def test_fvg_state_equals_series_at_every_real_bar(usdm):
    _, bars = usdm
    state = FvgState()

    rows = [state.update(h, l, c) for h, l, c in zip(bars["high"].tolist(), bars["low"].tolist(),
                                                      bars["close"].tolist())]

    series = fvg_series(bars["high"], bars["low"], bars["close"])
    _assert_rows_equal(series, rows)
    assert (series.gap != 0).sum() > 1000 and series.open_below.max() == 50   # the cap is reached


@pytest.mark.parametrize("fixture, pivot_length", [("usdm", 3), ("spot", 1), ("spot", 3)])
def test_mtf_state_equals_series_at_every_real_bar(request, fixture, pivot_length):
    _, bars = request.getfixturevalue(fixture)
    params = MtfParams(pivot_length=pivot_length)
    state = MtfState(params)

    rows = [state.update(*values) for values in zip(*(bars[c].tolist() for c in COLUMNS))]

    series = mtf_series(*(bars[c] for c in COLUMNS), params=params)
    _assert_rows_equal(series, rows)
    assert series.available[-1, :3].all()   # 15m..4h can all tell a direction by the end


def test_aggregators_equal_resample_on_real_month_up_to_one_week(spot):
    frame, bars = spot
    aggregators = {tf: BarAggregator(tf) for tf in TIMEFRAMES}
    live = {tf: [] for tf in TIMEFRAMES}

    for values in zip(*(bars[c].tolist() for c in COLUMNS)):
        for tf, aggregator in aggregators.items():
            if (bar := aggregator.update(*values)) is not None:
                live[tf].append(bar)

    for tf in TIMEFRAMES:
        expected = resample(frame, "1m", tf)
        vectorised = resample_arrays(*(bars[c] for c in COLUMNS), tf)
        assert [b.open_time_ms for b in live[tf]] == expected["open_time_ms"].tolist() == \
            vectorised.open_time_ms.tolist()
        for column in ("open", "high", "low", "close", "volume"):
            np.testing.assert_allclose([getattr(b, column) for b in live[tf]], expected[column], rtol=1e-9)
            np.testing.assert_allclose(getattr(vectorised, column), expected[column], rtol=1e-9)
    assert len(live["1w"]) == 3   # Dec 2, 9 and 16; the week of Dec 23 lacks its last hour


@pytest.mark.parametrize("seed", [1, 2])
def test_structure_and_fvg_see_no_future_bars_at_random_cuts(usdm, seed):
    _, bars = usdm
    h, l, c = bars["high"], bars["low"], bars["close"]
    structure, gaps = structure_series(h, l, c, 3), fvg_series(h, l, c)

    for cut in _cut_points(len(c), seed):
        _assert_prefix(structure, structure_series(h[:cut], l[:cut], c[:cut], 3), cut)
        _assert_prefix(gaps, fvg_series(h[:cut], l[:cut], c[:cut]), cut)


@pytest.mark.parametrize("seed", [3, 4])
def test_mtf_sees_no_future_bars_at_random_cuts(spot, seed):
    _, bars = spot
    arrays = [bars[c] for c in COLUMNS]
    full = mtf_series(*arrays)

    for cut in _cut_points(len(arrays[0]), seed):
        _assert_prefix(full, mtf_series(*(a[:cut] for a in arrays)), cut)
