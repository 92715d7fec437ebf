"""Run metrics from trades and an equity curve: drawdowns, ratios, trade stats, breakdowns (pure)."""
import json
import math
import statistics
from decimal import Decimal as D

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from execution.backtest.metrics import (
    DAY_MS,
    HOUR_MS,
    Trade,
    breakdown,
    buy_and_hold_return,
    cagr,
    daily_returns,
    drawdown_points,
    drawdown_series,
    exposure_fraction,
    max_drawdown_duration_ms,
    max_drawdown_usdt,
    session_of,
    sharpe,
    sortino,
    summarize,
)

MINUTE_MS = 60_000

# The ten-day curve: peak 1250 on day 2, trough 1000 on day 4 (-20 %), 1250 regained on day 6 (4 days under water).
TEN_DAYS_TS = [d * DAY_MS for d in range(1, 11)]
TEN_DAYS_EQUITY = [D(v) for v in ("1100", "1250", "1100", "1000", "1150", "1250", "1300", "1350", "1400", "1500")]


def trade(symbol: str = "BTCUSDT", *, entry_ms: int = 0, exit_ms: int = HOUR_MS, pnl: str = "10",
          risk: str | None = "10", reason: str = "exit", side: str = "LONG", fees: str = "0",
          funding: str = "0") -> Trade:
    return Trade(symbol, side, entry_ms, exit_ms, D("100"), D("101"), D("1"), D(fees), D(funding), D(pnl),
                 None if risk is None else D(risk), reason)


def three_trades() -> list[Trade]:
    """A target win at 01:00 (asia), a stop loss at 09:00 (europe), an unplanned exit at 17:00 (us)."""
    return [
        trade("BTCUSDT", entry_ms=1 * HOUR_MS, exit_ms=5 * HOUR_MS, pnl="200", risk="100", reason="target",
              fees="2", funding="-1"),
        trade("ETHUSDT", side="SHORT", entry_ms=DAY_MS + 9 * HOUR_MS, exit_ms=DAY_MS + 13 * HOUR_MS, pnl="-100",
              risk="50", reason="stop", fees="1.5", funding="0.25"),
        trade("BTCUSDT", entry_ms=2 * DAY_MS + 17 * HOUR_MS, exit_ms=2 * DAY_MS + 21 * HOUR_MS, pnl="50",
              risk=None, reason="exit", fees="0.5"),
    ]


def ten_day_run(trades=(), **overrides):
    arguments = dict(start_ms=0, end_ms=10 * DAY_MS, starting_equity=D("1000"))
    return summarize(list(trades), TEN_DAYS_TS, TEN_DAYS_EQUITY, **(arguments | overrides))


# --- drawdown


def test_drawdown_series_ten_days_peaks_and_fractions():
    drawdown, peak = drawdown_series(TEN_DAYS_EQUITY)

    # 1250 -> 1100 is 12 %, -> 1000 is 20 %, -> 1150 is 8 %; 0 at every peak
    assert drawdown == pytest.approx([0, 0, 0.12, 0.2, 0.08, 0, 0, 0, 0, 0])
    assert peak.tolist() == [1100, 1250, 1250, 1250, 1250, 1250, 1300, 1350, 1400, 1500]


def test_drawdown_series_empty_returns_empty_arrays():
    drawdown, peak = drawdown_series([])

    assert drawdown.size == 0 and peak.size == 0


def test_max_drawdown_usdt_is_exact_decimal():
    assert max_drawdown_usdt([D("100.10"), D("90.03"), D("120"), D("100.01")]) == D("19.99")


def test_max_drawdown_duration_ms_recovered_counts_peak_to_recovery():
    # peak on day 2, regained (equal) on day 6
    assert max_drawdown_duration_ms(TEN_DAYS_TS, TEN_DAYS_EQUITY, 10 * DAY_MS) == 4 * DAY_MS


def test_max_drawdown_duration_ms_never_recovered_runs_to_end():
    # peak 1200 on day 1, never regained; the run ends on day 5
    ts_ms, equity = [0, DAY_MS, 2 * DAY_MS, 3 * DAY_MS], [D(1000), D(1200), D(900), D(1000)]

    assert max_drawdown_duration_ms(ts_ms, equity, 5 * DAY_MS) == 4 * DAY_MS


def test_max_drawdown_duration_ms_takes_longest_not_deepest():
    # a 50 % dip for 1 day, then a 10 % dip for 3 days
    ts_ms = [d * DAY_MS for d in range(7)]
    equity = [D(v) for v in (100, 50, 100, 90, 95, 99, 100)]

    assert max_drawdown_duration_ms(ts_ms, equity, 6 * DAY_MS) == 4 * DAY_MS


# --- daily returns, Sharpe, Sortino, CAGR


def test_daily_returns_intraday_points_close_each_utc_day():
    # day 0 closes at its 20:00 point (1050), day 1 at the last point (1100); the run starts at 1000
    ts_ms = [0, 6 * HOUR_MS, 20 * HOUR_MS, DAY_MS + 3 * HOUR_MS]
    equity = [D(1000), D(1200), D(1050), D(1100)]

    returns = daily_returns(ts_ms, equity, end_ms=DAY_MS + 12 * HOUR_MS)

    assert returns == pytest.approx([0.05, 1100 / 1050 - 1])


def test_daily_returns_midnight_point_closes_the_day_before():
    # 1100 stamped at exactly 00:00 of day 1 closes day 0; the run ends at that midnight, so one day
    returns = daily_returns([0, DAY_MS], [D(1000), D(1100)], end_ms=DAY_MS)

    assert returns == pytest.approx([0.1])


def test_daily_returns_day_without_points_carries_the_close():
    # nothing on day 1: its close is day 0's, a 0 return
    returns = daily_returns([0, DAY_MS, 3 * DAY_MS], [D(100), D(110), D(121)], end_ms=3 * DAY_MS)

    assert returns == pytest.approx([0.1, 0.0, 0.1])


def test_daily_returns_after_wipe_out_are_zero():
    returns = daily_returns([0, DAY_MS, 2 * DAY_MS], [D(100), D(0), D(0)], end_ms=2 * DAY_MS)

    assert returns.tolist() == [-1.0, 0.0]


def test_sharpe_sortino_known_series_match_closed_form():
    # +10 %, -10 %, +10 %: mean 1/30, sample sd 1/sqrt(75) -> daily Sharpe sqrt(3)/6, annual sqrt(1095)/6;
    # downside sqrt(0.01 / 3) -> daily Sortino sqrt(3)/3, annual sqrt(365/3)
    returns = daily_returns([0, DAY_MS, 2 * DAY_MS, 3 * DAY_MS], [D(1000), D(1100), D(990), D(1089)],
                            end_ms=3 * DAY_MS)

    assert returns == pytest.approx([0.1, -0.1, 0.1])
    assert sharpe(returns) == pytest.approx(math.sqrt(1095) / 6)      # 5.5151
    assert sortino(returns) == pytest.approx(math.sqrt(365 / 3))      # 11.0303


def test_sharpe_ten_days_matches_formula():
    returns = daily_returns([0, *TEN_DAYS_TS], [D(1000), *TEN_DAYS_EQUITY], end_ms=10 * DAY_MS)
    closes = [1000, *map(float, TEN_DAYS_EQUITY)]
    expected = [b / a - 1 for a, b in zip(closes, closes[1:])]

    assert returns == pytest.approx(expected)
    assert sharpe(returns) == pytest.approx(statistics.mean(expected) / statistics.stdev(expected) * math.sqrt(365))


@pytest.mark.parametrize(("returns", "expected_sharpe", "expected_sortino"), [
    # flat: nothing varies and nothing is lost
    ([0.0, 0.0, 0.0], None, None),
    # constant gain: no variation (float noise aside), no losing day
    ([0.1, 0.1, 0.1], None, math.inf),
    # one day is too few to annualise
    ([0.1], None, None),
])
def test_sharpe_sortino_degenerate_series_documented_values(returns, expected_sharpe, expected_sortino):
    array = np.array(returns)

    assert (sharpe(array), sortino(array)) == (expected_sharpe, expected_sortino)


@pytest.mark.parametrize(("start", "final", "span_ms", "expected"), [
    # +21 % in one 365.25-day year
    ("1000", "1210", int(365.25 * DAY_MS), 0.21),
    # +21 % over two years is +10 % a year
    ("1000", "1210", int(730.5 * DAY_MS), 0.10),
    # -19 % over two years is -10 % a year
    ("1000", "810", int(730.5 * DAY_MS), -0.10),
    # wiped out
    ("1000", "0", DAY_MS, -1.0),
])
def test_cagr_table_compounds_over_calendar_years(start, final, span_ms, expected):
    assert cagr(D(start), D(final), span_ms) == pytest.approx(expected)


def test_cagr_empty_span_returns_none():
    assert cagr(D(1000), D(1100), 0) is None


# --- exposure, sessions, breakdowns, buy and hold


def test_exposure_fraction_overlapping_trades_counted_once():
    # [1 h, 4 h] u [2 h, 6 h] u [3 h, 5 h] = [1 h, 6 h]; plus [8 h, 9 h]: 6 h of a 10 h run
    trades = [trade(entry_ms=a * HOUR_MS, exit_ms=b * HOUR_MS) for a, b in ((1, 4), (8, 9), (2, 6), (3, 5))]

    assert exposure_fraction(trades, 0, 10 * HOUR_MS) == pytest.approx(0.6)


def test_exposure_fraction_no_trades_is_zero_and_empty_run_is_none():
    assert exposure_fraction([], 0, HOUR_MS) == 0.0
    assert exposure_fraction([], HOUR_MS, HOUR_MS) is None


@pytest.mark.parametrize(("ts_ms", "expected"), [
    # asia [00, 08)
    (0, "asia"),
    (8 * HOUR_MS - MINUTE_MS, "asia"),          # 07:59
    (8 * HOUR_MS - 1, "asia"),                  # 07:59:59.999
    # europe [08, 16)
    (8 * HOUR_MS, "europe"),                    # 08:00
    (16 * HOUR_MS - MINUTE_MS, "europe"),       # 15:59
    # us [16, 24)
    (16 * HOUR_MS, "us"),
    (DAY_MS - 1, "us"),
    # the next day starts in asia again
    (DAY_MS, "asia"),
    (1_700_000_000_000, "us"),                  # 2023-11-14 22:13:20 UTC
])
def test_session_of_boundaries_by_utc_hour(ts_ms, expected):
    assert session_of(ts_ms) == expected


def test_breakdown_groups_by_key_sorted():
    result = breakdown(three_trades(), lambda t: t.symbol)

    assert list(result) == ["BTCUSDT", "ETHUSDT"]
    assert (result["BTCUSDT"].count, result["BTCUSDT"].net_pnl_usdt, result["BTCUSDT"].win_rate) == (2, D(250), 1.0)
    assert (result["ETHUSDT"].count, result["ETHUSDT"].net_pnl_usdt, result["ETHUSDT"].win_rate) == (1, D(-100), 0.0)


@pytest.mark.parametrize(("prices", "expected"), [
    ([D(100), D(90), D(150)], 0.5),
    ([D(100), D(80)], -0.2),
    ([D(100)], None),
    (None, None),
])
def test_buy_and_hold_return_first_to_last_close(prices, expected):
    assert buy_and_hold_return(prices) == (pytest.approx(expected) if expected is not None else None)


def test_trade_r_multiple_without_risk_is_none():
    assert trade(pnl="-15", risk="10").r_multiple == -1.5
    assert trade(risk="0").r_multiple is None and trade(risk=None).r_multiple is None


# --- summarize


def test_summarize_three_trades_hand_checked():
    metrics = ten_day_run(three_trades(), benchmark_prices=[D(100), D(120), D(125)])

    # trades: +200, -100, +50
    assert (metrics.trade_count, metrics.win_count, metrics.loss_count) == (3, 2, 1)
    assert metrics.net_pnl_usdt == D(150) and metrics.expectancy_usdt == D(50)
    assert (metrics.fees_usdt, metrics.funding_usdt) == (D("4.0"), D("-0.75"))
    assert metrics.win_rate == pytest.approx(2 / 3)
    assert (metrics.gross_profit_usdt, metrics.gross_loss_usdt, metrics.profit_factor) == (D(250), D(100), 2.5)
    # R: +200 / 100 = 2, -100 / 50 = -2, the third has no stop -> mean 0; 100 USDT over 150 risked -> 2/3 R
    assert metrics.average_r == 0.0
    assert metrics.expectancy_r == pytest.approx(2 / 3)
    # 3 trades in 10 days; 3 x 4 h open out of 240 h
    assert metrics.trades_per_day == pytest.approx(0.3)
    assert metrics.exposure_fraction == pytest.approx(0.05)
    assert (metrics.stop_hits, metrics.target_hits, metrics.liquidation_hits) == (1, 1, 0)
    assert metrics.exit_reasons == {"exit": 1, "stop": 1, "target": 1}
    assert {name: (b.count, b.net_pnl_usdt) for name, b in metrics.by_session.items()} == {
        "asia": (1, D(200)), "europe": (1, D(-100)), "us": (1, D(50))}
    # equity 1000 -> 1500 is +50 %; holding went 100 -> 125, +25 %
    assert metrics.return_fraction == pytest.approx(0.5)
    assert metrics.buy_and_hold_return_fraction == pytest.approx(0.25)
    assert metrics.excess_return_fraction == pytest.approx(0.25)


def test_summarize_ten_days_drawdown_and_ratios():
    metrics = ten_day_run()

    assert metrics.final_equity_usdt == D(1500)
    assert metrics.max_drawdown_fraction == pytest.approx(0.2)
    assert metrics.max_drawdown_usdt == D(250)
    assert metrics.max_drawdown_duration_ms == 4 * DAY_MS
    # 1.5 ** (365.25 / 10) - 1: ten days extrapolated to a year
    assert metrics.cagr == pytest.approx(1.5 ** 36.525 - 1)
    assert metrics.calmar == pytest.approx((1.5 ** 36.525 - 1) / 0.2)
    assert metrics.sharpe is not None and metrics.sharpe > 0


def test_summarize_no_trades_returns_empty_trade_figures():
    metrics = ten_day_run()

    assert (metrics.trade_count, metrics.win_rate, metrics.profit_factor) == (0, None, None)
    assert (metrics.average_r, metrics.expectancy_usdt, metrics.expectancy_r) == (None, None, None)
    assert (metrics.trades_per_day, metrics.exposure_fraction, metrics.net_pnl_usdt) == (0.0, 0.0, D(0))
    assert metrics.by_symbol == {} and all(b.count == 0 and b.win_rate is None for b in metrics.by_session.values())
    assert metrics.buy_and_hold_return_fraction is None and metrics.excess_return_fraction is None


def test_summarize_all_wins_profit_factor_inf():
    trades = [trade(pnl="10"), trade(entry_ms=2 * HOUR_MS, exit_ms=3 * HOUR_MS, pnl="5")]

    metrics = ten_day_run(trades)

    assert metrics.profit_factor == math.inf and metrics.win_rate == 1.0
    assert metrics.as_dict()["profit_factor"] == "inf"


def test_summarize_break_even_trades_profit_factor_none():
    assert ten_day_run([trade(pnl="0")]).profit_factor is None


def test_summarize_flat_equity_ratios_none():
    metrics = summarize([], [DAY_MS, 2 * DAY_MS], [D(1000), D(1000)], start_ms=0, end_ms=3 * DAY_MS,
                        starting_equity=D(1000))

    assert (metrics.sharpe, metrics.sortino, metrics.calmar) == (None, None, None)
    assert (metrics.max_drawdown_fraction, metrics.max_drawdown_usdt, metrics.max_drawdown_duration_ms) == (0, 0, 0)
    assert metrics.cagr == 0.0 and metrics.return_fraction == 0.0


def test_summarize_no_equity_points_uses_starting_equity():
    metrics = summarize([], [], [], start_ms=0, end_ms=DAY_MS, starting_equity=D(500))

    assert metrics.final_equity_usdt == D(500) and metrics.max_drawdown_fraction == 0


def test_summarize_never_recovers_drawdown_runs_to_end():
    # from the starting 1000 (the peak at 0) down to 600 and up to 800, never back: 40 % for the whole 5 days
    metrics = summarize([], [DAY_MS, 2 * DAY_MS], [D(600), D(800)], start_ms=0, end_ms=5 * DAY_MS,
                        starting_equity=D(1000))

    assert metrics.max_drawdown_fraction == pytest.approx(0.4)
    assert metrics.max_drawdown_usdt == D(400)
    assert metrics.max_drawdown_duration_ms == 5 * DAY_MS
    assert metrics.return_fraction == pytest.approx(-0.2)


def test_metrics_as_dict_is_json_safe():
    result = ten_day_run(three_trades(), benchmark_prices=[D(100), D(125)]).as_dict()

    assert result["net_pnl_usdt"] == "150" and result["max_drawdown_usdt"] == "250"
    assert result["by_symbol"]["ETHUSDT"] == {"count": 1, "net_pnl_usdt": "-100", "win_rate": 0.0}
    assert result["by_session"]["us"]["net_pnl_usdt"] == "50"
    assert json.loads(json.dumps(result)) == result


# --- bad input


@pytest.mark.parametrize(("make", "message"), [
    (lambda: trade(entry_ms=2 * HOUR_MS, exit_ms=HOUR_MS), "exit at 3600000 before entry at 7200000"),
    (lambda: trade(side="BUY"), "side 'BUY' is neither LONG nor SHORT"),
    (lambda: Trade("BTCUSDT", "LONG", 0, 1, D(0), D(1), D(1), D(0), D(0), D(0), None, "exit"), "must be positive"),
])
def test_trade_bad_values_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(("arguments", "message"), [
    (dict(equity_ts_ms=[DAY_MS], equity_usdt=[D(1), D(2)]), "equity_ts_ms has 1 points but equity_usdt has 2"),
    (dict(equity_ts_ms=[2 * DAY_MS, DAY_MS], equity_usdt=[D(1), D(2)]), "must not decrease"),
    (dict(equity_ts_ms=[11 * DAY_MS], equity_usdt=[D(1)]), "after end_ms"),
    (dict(equity_usdt=[D(-1)]), "must not be negative"),
    (dict(end_ms=-1), "before start_ms"),
    (dict(starting_equity=D(0)), "starting_equity must be positive"),
    (dict(trades=[trade(exit_ms=11 * DAY_MS)]), r"1 trade\(s\) outside the run"),
    (dict(benchmark_prices=[D(100), D(0)]), "benchmark prices must be positive"),
])
def test_summarize_bad_input_raises(arguments, message):
    base = dict(trades=[], equity_ts_ms=[DAY_MS], equity_usdt=[D(1000)], start_ms=0, end_ms=10 * DAY_MS,
                starting_equity=D(1000))
    merged = base | arguments

    with pytest.raises(ValueError, match=message):
        summarize(merged.pop("trades"), merged.pop("equity_ts_ms"), merged.pop("equity_usdt"), **merged)


# --- invariants

equities = st.lists(st.decimals(min_value=0, max_value=10**6, places=2), min_size=1, max_size=60)


@st.composite
def trade_lists(draw) -> list[Trade]:
    trades = []
    for _ in range(draw(st.integers(0, 20))):
        entry_ms = draw(st.integers(0, 10 * DAY_MS))
        trades.append(trade(
            draw(st.sampled_from(["BTCUSDT", "ETHUSDT", "SOLUSDT"])),
            entry_ms=entry_ms,
            exit_ms=draw(st.integers(entry_ms, 10 * DAY_MS)),
            pnl=str(draw(st.decimals(min_value=-1000, max_value=1000, places=2))),
            risk=str(draw(st.decimals(min_value=0, max_value=500, places=2))),
            reason=draw(st.sampled_from(["stop", "target", "liquidation", "exit"])),
        ))
    return trades


# Generation speed depends on the machine's load, not on the code under test.
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(equities)
def test_drawdown_series_any_curve_in_unit_interval_and_zero_at_peaks(equity):
    drawdown, peak = drawdown_series(equity)

    assert np.all((drawdown >= 0) & (drawdown <= 1))
    for i, value in enumerate(equity):
        if all(value >= earlier for earlier in equity[:i]):
            assert drawdown[i] == 0


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.decimals(min_value=1, max_value=10**6, places=2), equities)
def test_drawdown_points_are_the_drawn_series_from_the_starting_equity_to_1e_8(start, equity):
    stored = [[1000 * i, str(value)] for i, value in enumerate(equity)]

    points = drawdown_points(start, stored)

    drawn, _ = drawdown_series([start, *equity])
    assert [ts for ts, _ in points] == [ts for ts, _ in stored]
    assert all(abs(D(text) - D(repr(float(f)))) <= D("0.00000001") for (_, text), f in zip(points, drawn[1:]))


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(trade_lists(), equities)
def test_summarize_any_run_invariants_hold(trades, equity):
    ts_ms = sorted(np.linspace(0, 10 * DAY_MS, len(equity), dtype=np.int64).tolist())

    metrics = summarize(trades, ts_ms, equity, start_ms=0, end_ms=10 * DAY_MS, starting_equity=D(1000))

    assert 0 <= metrics.max_drawdown_fraction <= 1
    assert 0 <= metrics.exposure_fraction <= 1
    assert metrics.win_rate is None or 0 <= metrics.win_rate <= 1
    assert sum((b.net_pnl_usdt for b in metrics.by_symbol.values()), D(0)) == metrics.net_pnl_usdt
    assert sum((b.net_pnl_usdt for b in metrics.by_session.values()), D(0)) == metrics.net_pnl_usdt
    assert sum(b.count for b in metrics.by_session.values()) == metrics.trade_count
    assert metrics.stop_hits + metrics.target_hits + metrics.liquidation_hits <= metrics.trade_count
