"""Event-driven signal backtest: fills at the next open, fees, edge bars, EMA cross, parity with backtesting.py."""
from decimal import Decimal as D
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.conf import settings
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from execution.backtest.fast import (
    BarTrade,
    FastConfig,
    FastResult,
    OpenTrade,
    backtest_signal,
    ema_cross_positions,
    ema_from_first,
)
from market.csvformat import parse_candles

CENT = D("0.01")
FEE = D("0.0004")
# Decided at each close: long after bar 1, flip short after bar 3, flat after bar 5.
OPENS = ("64000.00", "64123.45", "64250.10", "63987.65", "64010.20", "64555.55", "64400.00")
TARGETS = (0, 1, 1, -1, -1, 0, 0)
USDM_10_DAYS = "binance_usdm_BTCUSDT_1m_2025-06-06_2025-06-16.csv.gz"   # 14,399 real 1m bars


def run(opens=OPENS, targets=TARGETS, **config) -> FastResult:
    config = {"quantity": 0.25} | config
    return backtest_signal(np.array(opens, dtype=float), np.array(targets), FastConfig(**config))


def expected_cents(side: int, entry: str, exit_: str, quantity: str) -> tuple[D, D]:
    """Return (fees, pnl) in Decimal, rounded to the cent: a fee on each fill's notional."""
    q, entry_price, exit_price = D(quantity), D(entry), D(exit_)
    fees = q * entry_price * FEE + q * exit_price * FEE
    pnl = side * q * (exit_price - entry_price) - fees
    return fees.quantize(CENT), pnl.quantize(CENT)


def cents(value: float) -> D:
    return D(value).quantize(CENT)


def test_backtest_signal_fills_each_change_at_next_open():
    result = run()

    assert [(t.entry_bar, t.exit_bar, t.side, t.entry_price, t.exit_price) for t in result.trades()] == [
        (2, 4, 1, 64250.10, 64010.20),       # long decided on bar 1, closed by the flip decided on bar 3
        (4, 6, -1, 64010.20, 64400.00),      # the flip's entry at the same open; flat decided on bar 5
    ]
    assert result.open_trade is None
    assert result.fills == 4


def test_backtest_signal_fees_and_pnl_match_decimal_to_the_cent():
    result = run()

    long_fees, long_pnl = expected_cents(1, "64250.10", "64010.20", "0.25")
    short_fees, short_pnl = expected_cents(-1, "64010.20", "64400.00", "0.25")
    assert (long_fees, long_pnl) == (D("12.83"), D("-72.80"))     # 6.42501 + 6.40102; -59.975 - 12.82603
    assert [cents(x) for x in result.fees_usdt] == [long_fees, short_fees]
    assert [cents(x) for x in result.pnl_usdt] == [long_pnl, short_pnl]
    assert [cents(x) for x in result.equity_usdt] == [D("9927.20"), D("9816.91")]


def test_backtest_signal_equity_fraction_sizes_from_realised_equity():
    result = run(opens=("100", "100", "110", "120"), targets=(1, -1, 0, 0), quantity=None,
                 initial_equity_usdt=10_000.0, equity_fraction=0.5)

    first, second = result.trades()
    assert first.quantity == 50.0                                  # 5,000 USDT at 100
    assert cents(first.pnl_usdt) == D("495.80")                     # 500 - 2.00 - 2.20 of fees
    assert second.quantity == pytest.approx((10_000 + 495.8) * 0.5 / 110)
    assert result.equity_usdt[-1] == pytest.approx(10_000 + first.pnl_usdt + second.pnl_usdt)


def test_backtest_signal_equity_fraction_stops_entering_once_equity_is_gone():
    result = run(opens=("100", "100", "300", "310", "320"), targets=(-1, 1, -1, 1, 1), quantity=None)

    assert len(result) == 1 and result.equity_usdt[0] < 0       # the short lost twice the equity
    assert result.open_trade is None and result.fills == 2


@pytest.mark.parametrize("targets", [
    (0, 0, 0, 0, 0),                      # flat throughout
    (0, 0, 0, 0, 1),                      # a change on the last bar has no next open: dropped
    (-1, 0, 0, 0, 1),                     # short filled at bar 1, flattened at bar 2; the last change dropped
])
def test_backtest_signal_without_fillable_position_opens_nothing(targets):
    result = run(opens=("10", "11", "12", "13", "14"), targets=targets)

    assert result.open_trade is None
    assert len(result) == (1 if targets[0] else 0)


def test_backtest_signal_flip_on_last_bar_leaves_the_old_trade_open():
    result = run(opens=("10", "11", "12", "13"), targets=(0, 1, 1, -1), quantity=2.0)

    assert len(result) == 0
    assert result.open_trade == OpenTrade(entry_bar=2, side=1, entry_price=12.0, quantity=2.0,
                                          entry_fee_usdt=2.0 * 12.0 * 0.0004)


def test_backtest_signal_empty_input_returns_no_trades():
    result = backtest_signal(np.array([]), np.array([], dtype=np.int8))

    assert len(result) == 0 and result.trades() == [] and result.open_trade is None


@pytest.mark.parametrize("opens, targets, message", [
    (("1", "2"), (0, 2), "only -1, 0 and 1"),
    (("1", "2"), (0, 0.5), "only -1, 0 and 1"),
    (("1", "2", "3"), (0, 1), "shape"),
    (("1", "nan", "3"), (1, 1, 1), "fill bar 1"),
    (("1", "0", "3"), (1, 1, 1), "fill bar 1"),
])
def test_backtest_signal_bad_input_raises(opens, targets, message):
    with pytest.raises(ValueError, match=message):
        run(opens=opens, targets=targets)


@pytest.mark.parametrize("config, message", [
    ({"fee_fraction": -0.001}, "fee_fraction"),
    ({"quantity": 0.0}, "quantity"),
    ({"equity_fraction": 0.0}, "positive"),
])
def test_fast_config_bad_values_raise(config, message):
    with pytest.raises(ValueError, match=message):
        FastConfig(**config)


@given(st.lists(st.sampled_from((-1, 0, 1)), min_size=2, max_size=60), st.integers(0, 2**32 - 1))
@hypothesis_settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)  # a loaded CI machine is slow, not wrong
def test_backtest_signal_trades_follow_the_targets(targets, seed):
    opens = np.random.default_rng(seed).uniform(50, 150, len(targets))

    result = backtest_signal(opens, np.array(targets), FastConfig(quantity=1.0))

    for trade in result.trades():
        assert trade.entry_bar < trade.exit_bar
        assert trade.side == targets[trade.entry_bar - 1] != targets[trade.exit_bar - 1]
        assert (trade.entry_price, trade.exit_price) == (opens[trade.entry_bar], opens[trade.exit_bar])
        assert trade.fees_usdt == pytest.approx((trade.entry_price + trade.exit_price) * 0.0004)
    assert np.allclose(result.equity_usdt, 10_000 + np.cumsum(result.pnl_usdt))
    held = result.open_trade.side if result.open_trade else 0
    assert held == targets[-2]            # the last bar's decision is never filled


@pytest.mark.parametrize("period", [1, 12, 26])
def test_ema_from_first_follows_the_recursion_from_the_first_value(period):
    values = np.random.default_rng(period).uniform(90, 110, 300)
    alpha = 2 / (period + 1)
    expected = [values[0]]
    for value in values[1:]:
        expected.append((1 - alpha) * expected[-1] + alpha * value)

    assert np.allclose(ema_from_first(values, period), expected, rtol=1e-12, atol=0)


def test_ema_cross_positions_flat_prices_stay_flat():
    assert not ema_cross_positions(np.full(100, 30_000.0)).any()


def test_ema_cross_positions_trend_changes_flip_and_ties_hold():
    close = np.concatenate([np.full(5, 100.0), np.linspace(100, 120, 40), np.linspace(120, 90, 60)])

    target = ema_cross_positions(close)

    assert not target[:6].any()                     # equal prices (the ramp starts at 100): no position yet
    assert (target[6:45] == 1).all()                # rising: the fast EMA above the slow one
    assert target[-1] == -1 and np.isin(target[6:], (-1, 1)).all()
    assert np.flatnonzero(np.diff(target[6:])).size == 1


@pytest.mark.parametrize("fast, slow", [(26, 12), (0, 26), (12, 12)])
def test_ema_cross_positions_bad_periods_raise(fast, slow):
    with pytest.raises(ValueError, match="fast < slow"):
        ema_cross_positions(np.ones(10), fast, slow)


def test_ema_cross_positions_nan_close_raises():
    with pytest.raises(ValueError, match="finite"):
        ema_cross_positions(np.array([1.0, np.nan, 2.0]))


# Same rules in backtesting.py: a Strategy buying (selling) 1 unit when EMA12 > (<) EMA26 and the
# position is not already long (short), both EMAs through self.I(ema_from_first); Backtest with
# commission=0.0004 (a fraction of each fill's notional, at entry and at exit), exclusive_orders=True
# (a new order closes the open trade first: the flip), trade_on_close=False (market orders fill at the
# next bar's open), finalize_trades=False (the position open at the end is not a trade), cash 1e8 so
# whole-unit orders are never refused. Its next() starts at bar 1, where ema_cross_positions is still 0.
@pytest.mark.filterwarnings("ignore:Some trades remain open", "ignore:DatetimeIndex.dayofweek is deprecated")
def test_backtest_signal_matches_backtesting_py_on_real_minutes():
    import backtesting  # requirements-dev.txt: the comparison runs in every test run, never skipped
    numbers = parse_candles((Path(settings.MARKET_DATA_DIR) / USDM_10_DAYS).read_bytes(), USDM_10_DAYS, "1m").numbers
    frame = pd.DataFrame({k.title(): numbers[k].to_numpy() for k in ("open", "high", "low", "close")},
                         index=pd.to_datetime(numbers["open_time_ms"].to_numpy(), unit="ms"))

    ours = backtest_signal(frame["Open"].to_numpy(), ema_cross_positions(frame["Close"].to_numpy()),
                           FastConfig(fee_fraction=0.0004, quantity=1.0))
    theirs = backtesting.Backtest(frame, _ema_cross_strategy(backtesting), cash=1e8, commission=0.0004,
                                  exclusive_orders=True, trade_on_close=False, finalize_trades=False).run()._trades

    assert len(ours) == len(theirs) > 300
    assert ours.trades() == [
        BarTrade(int(row.EntryBar), int(row.ExitBar), int(np.sign(row.Size)), row.EntryPrice, row.ExitPrice,
                 float(abs(row.Size)), row.Commission, row.PnL)
        for row in theirs.itertuples()
    ]


def _ema_cross_strategy(backtesting):
    class EmaCross(backtesting.Strategy):
        def init(self):
            self.fast = self.I(ema_from_first, self.data.Close, 12)
            self.slow = self.I(ema_from_first, self.data.Close, 26)

        def next(self):
            if self.fast[-1] > self.slow[-1]:
                if not self.position.is_long:
                    self.buy(size=1)
            elif self.fast[-1] < self.slow[-1] and not self.position.is_short:
                self.sell(size=1)

    return EmaCross
