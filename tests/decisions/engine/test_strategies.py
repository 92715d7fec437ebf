"""Strategy registry: triggers on hand-built bars, causality and both sides on a year of real candles."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from hypothesis import given, settings as hypothesis_settings, strategies as st

from analytics.snapshot import Bars, SnapshotParams, build_snapshot, min_bars
from decisions.engine.rules import FlowView, RuleParams, decide
from decisions.engine.strategies import (
    PARAMS_TYPES, REGISTRY, AtrBreakout, AtrBreakoutParams, Bollinger, BollingerParams, EmaCross, EmaCrossParams,
    Rsi, RsiParams, RuleSetParams, RuleSetStrategy, StrategyInput, Vote, strategies_from_names,
)

BTC_15M = "binance_spot_BTCUSDT_15m_2023-12-31_2025-02-28.csv.gz"   # 40,804 bars, 14 months, no gaps
SIDE_OF_ACTION = {"LONG": 1, "SHORT": -1, "FLAT": 0}


def _bars(closes, spread: float = 1.0) -> Bars:
    close = np.asarray(closes, float)
    n = len(close)
    return Bars(np.arange(n) * 60_000, close, close + spread, close - spread, close, np.ones(n), 60_000)


def _window(bars: Bars, end: int, size: int) -> Bars:
    cut = slice(max(0, end - size), end)
    return Bars(bars.open_time_ms[cut], bars.open[cut], bars.high[cut], bars.low[cut], bars.close[cut],
                bars.volume[cut], bars.timeframe_ms)


@pytest.fixture(scope="module")
def btc_15m() -> Bars:
    from market.csvformat import parse_candles

    table = parse_candles((Path(settings.MARKET_DATA_DIR) / BTC_15M).read_bytes(), BTC_15M, "15m").numbers
    return Bars(table["open_time_ms"].to_numpy(np.int64),
                *(table[c].to_numpy(float) for c in ("open", "high", "low", "close", "volume")), 900_000)


# --- Vote --------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "side, strength, message",
    [
        (2, 0.5, "side must be -1, 0 or 1, got 2"),
        (1, 1.01, r"strength must be in \[0, 1\]"),
        (-1, -0.1, r"strength must be in \[0, 1\]"),
        (0, 0.2, "0 without a side"),                   # no side, no strength
        (1, float("nan"), r"strength must be in \[0, 1\]"),
    ],
)
def test_vote_out_of_range_raises(side, strength, message):
    with pytest.raises(ValueError, match=message):
        Vote("rsi", side, strength, "because")


# --- EMA cross: fast 2 / slow 4, a cross counts for 2 bars -----------------------------------

# Falling closes keep the fast EMA under the slow one; the jump at bar 8 lifts it above.
EMA_UP = [10, 9, 8, 7, 6, 5, 5, 5] + [20] * 6
EMA_DOWN = [100 - x for x in EMA_UP]


@pytest.mark.parametrize(
    "closes, bar, side",
    [
        # long: no vote before the cross, a vote on the cross bar and 2 bars on, none once stale
        (EMA_UP, 7, 0), (EMA_UP, 8, 1), (EMA_UP, 10, 1), (EMA_UP, 11, 0),
        # short mirrored
        (EMA_DOWN, 7, 0), (EMA_DOWN, 8, -1), (EMA_DOWN, 10, -1), (EMA_DOWN, 11, 0),
    ],
)
def test_ema_cross_around_the_cross_votes_while_fresh(closes, bar, side):
    strategy = EmaCross(EmaCrossParams(fast=2, slow=4, max_age_bars=2, atr_period=2))

    sides, strengths = strategy.votes(_bars(closes))
    vote = strategy.vote(StrategyInput(_bars(closes[:bar + 1])))

    assert sides[bar] == side == vote.side
    assert (strengths[bar] > 0) == (side != 0)


@pytest.mark.parametrize(
    "closes, bar, words",
    [
        (EMA_UP, 8, "EMA 2 crossed above EMA 4 0 bars ago (fast "),
        (EMA_DOWN, 9, "EMA 2 crossed below EMA 4 1 bars ago (fast "),
        (EMA_UP, 12, "no fresh cross: EMA 2 crossed above EMA 4 4 bars ago, more than 2"),
        (EMA_UP, 6, "EMA 2 below EMA 4 with no cross in the window"),
        (EMA_UP, 2, "EMA 4 needs 4 bars, have 3"),
    ],
)
def test_ema_cross_vote_reason_names_cross_and_age(closes, bar, words):
    strategy = EmaCross(EmaCrossParams(fast=2, slow=4, max_age_bars=2, atr_period=2))

    vote = strategy.vote(StrategyInput(_bars(closes[:bar + 1])))

    assert words in vote.reason


# --- RSI 3, levels 30 / 70 ---------------------------------------------------------------------

FALLING = [120 - i for i in range(20)]    # RSI 0: every change a loss
RISING = [80 + i for i in range(20)]      # RSI 100


@pytest.mark.parametrize(
    "closes, side",
    [
        # long: a +1 bounce lifts RSI to 33.3 (gain 1/3 vs loss 2/3), a +0.2 bounce only to 9.1
        (FALLING, 0), (FALLING + [102], 1), (FALLING + [101.2], 0), (FALLING + [102, 103], 0),
        # short mirrored
        (RISING, 0), (RISING + [98], -1), (RISING + [98.8], 0), (RISING + [98, 97], 0),
    ],
)
def test_rsi_turn_back_across_level_votes_on_that_bar_only(closes, side):
    strategy = Rsi(RsiParams(period=3))

    sides, strengths = strategy.votes(_bars(closes))
    vote = strategy.vote(StrategyInput(_bars(closes)))

    assert sides[-1] == side == vote.side
    # The dip went all the way to RSI 0 (or 100): 30 points past the level, full strength.
    assert strengths[-1] == vote.strength == (1.0 if side else 0.0)


def test_rsi_vote_reason_gives_levels_and_trough():
    vote = Rsi(RsiParams(period=3)).vote(StrategyInput(_bars(FALLING + [102])))

    assert vote.reason == "RSI 3 rose back above 30 (0.0 -> 33.3; low 0.0, 30.0 points below)"


# --- Bollinger 20, k 2 -------------------------------------------------------------------------

QUIET = [100, 101] * 10                   # bands about 99.5 +/- 1


@pytest.mark.parametrize(
    "closes, side",
    [
        # long: the close below the lower band waits; the next close back inside votes; then nothing
        (QUIET + [90], 0), (QUIET + [90, 100], 1), (QUIET + [90, 100, 100], 0), (QUIET + [100], 0),
        # short mirrored
        (QUIET + [111], 0), (QUIET + [111, 100], -1), (QUIET + [111, 100, 100], 0),
    ],
)
def test_bollinger_close_back_inside_votes(closes, side):
    strategy = Bollinger(BollingerParams())

    sides, strengths = strategy.votes(_bars(closes))
    vote = strategy.vote(StrategyInput(_bars(closes)))

    assert sides[-1] == side == vote.side
    assert (strengths[-1] > 0) == (side != 0)


def test_bollinger_vote_reason_names_band_and_depth():
    vote = Bollinger().vote(StrategyInput(_bars(QUIET + [90, 100])))

    assert vote.reason.startswith("close 100 back inside the lower band ")
    assert "SD below it (previous close 90; Bollinger 20, k 2)" in vote.reason


# --- ATR breakout: ATR 3, lookback 5, multiple 0.5 ---------------------------------------------

# Flat closes of 100 with high/low +/- 1: ATR 2, so the levels are 101 + 1 = 102 and 99 - 1 = 98.
FLAT = [100.0] * 10


@pytest.mark.parametrize(
    "last, side, strength",
    [
        # long: at the level nothing, just past it a weak vote, 1 above it half an ATR past: 0.5
        (102.0, 0, 0.0), (102.01, 1, 0.005), (103.0, 1, 0.5), (105.0, 1, 1.0),
        # short mirrored
        (98.0, 0, 0.0), (97.99, -1, 0.005), (97.0, -1, 0.5),
        # inside the range
        (100.5, 0, 0.0),
    ],
)
def test_atr_breakout_close_past_level_votes(last, side, strength):
    strategy = AtrBreakout(AtrBreakoutParams(atr_period=3, lookback=5, multiple=0.5))

    sides, strengths = strategy.votes(_bars(FLAT + [last]))
    vote = strategy.vote(StrategyInput(_bars(FLAT + [last])))

    assert sides[-1] == side == vote.side
    assert strengths[-1] == pytest.approx(strength) == vote.strength


def test_atr_breakout_vote_reason_gives_level_arithmetic():
    strategy = AtrBreakout(AtrBreakoutParams(atr_period=3, lookback=5, multiple=0.5))

    vote = strategy.vote(StrategyInput(_bars(FLAT + [103.0])))

    assert vote.reason == "close 103 broke above the 5-bar high 101 + 0.5 x ATR 2 = 102 by 0.50 ATR"


# --- Rule set ------------------------------------------------------------------------------------

STEPS = np.arange(80)
ZIGZAG_UP = 100 + 0.5 * STEPS + 3 * np.sin(2 * np.pi * STEPS / 10)   # higher highs and higher lows
ZIGZAG_DOWN = 200 - ZIGZAG_UP


@pytest.mark.parametrize("closes, side", [(ZIGZAG_UP, 1), (ZIGZAG_DOWN, -1), (np.full(80, 100.0), 0)])
def test_rule_set_votes_follow_trend_and_agree_with_decide_at_every_bar(closes, side):
    strategy = RuleSetStrategy()
    bars = _bars(closes)

    sides, _ = strategy.votes(bars)

    assert set(sides.tolist()) == ({0, side} if side else {0})
    for n in range(min_bars(SnapshotParams()), len(bars) + 1):
        signal = decide(build_snapshot(bars.upto(n), SnapshotParams()), RuleParams())
        assert sides[n - 1] == SIDE_OF_ACTION[signal.action], f"bar {n - 1}: {signal.reason}"


def test_rule_set_vote_flow_objection_turns_long_to_none():
    bars = _bars(ZIGZAG_UP)
    strategy = RuleSetStrategy()
    assert strategy.votes(bars)[0][-4] == 1

    vote = strategy.vote(StrategyInput(bars.upto(77), flow=FlowView(funding_rate=0.01)))

    assert (vote.side, vote.strength) == (0, 0.0)
    assert "LONG refused by the flow: funding 1.0000%/8h above the long limit" in vote.reason


def test_rule_set_vote_uses_given_snapshot_and_rule_params():
    bars = _bars(ZIGZAG_UP).upto(77)
    snapshot = replace(build_snapshot(bars, SnapshotParams()), trend="down", momentum="down")

    vote = RuleSetStrategy().vote(StrategyInput(bars, snapshot=snapshot, rule_params=RuleParams()))

    assert vote.side == -1
    assert vote.reason.startswith("SHORT: structure down and momentum down; structure down (")


# --- Every strategy ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_strategy_vote_too_few_bars_says_what_it_needs(name):
    vote = REGISTRY[name]().vote(StrategyInput(_bars([100.0] * 5)))

    assert (vote.strategy, vote.side, vote.strength) == (name, 0, 0.0)
    assert "needs" in vote.reason and "have 5" in vote.reason


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_strategy_votes_empty_bars_returns_empty_arrays(name):
    sides, strengths = REGISTRY[name]().votes(_bars([]))

    assert sides.dtype == np.int8 and strengths.dtype == np.float64
    assert len(sides) == len(strengths) == 0


SMALL = {
    "rules": RuleSetStrategy(RuleSetParams(SnapshotParams(atr_period=5, pivot_length=2, momentum_period=4))),
    "ema_cross": EmaCross(EmaCrossParams(fast=3, slow=8, max_age_bars=3, atr_period=4)),
    "rsi": Rsi(RsiParams(period=4)),
    "bollinger": Bollinger(BollingerParams(period=6, k=1.5)),
    "atr_breakout": AtrBreakout(AtrBreakoutParams(atr_period=4, lookback=5, multiple=0.3)),
}


@hypothesis_settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-3, 3, allow_nan=False), min_size=20, max_size=120), st.data())
def test_strategy_votes_random_walk_causal_and_bounded(steps, data):
    bars = _bars(1000 + np.cumsum(steps), spread=0.8)
    cut = data.draw(st.integers(1, len(bars)))

    for name, strategy in SMALL.items():
        sides, strengths = strategy.votes(bars)
        early_sides, early_strengths = strategy.votes(bars.upto(cut))

        assert set(np.unique(sides).tolist()) <= {-1, 0, 1}, name
        assert ((strengths >= 0) & (strengths <= 1)).all() and (strengths[sides == 0] == 0).all(), name
        np.testing.assert_array_equal(early_sides, sides[:cut], err_msg=name)
        np.testing.assert_allclose(early_strengths, strengths[:cut], rtol=1e-12, atol=1e-12, err_msg=name)


# --- Real candles: BTCUSDT 15m, 14 months ---------------------------------------------------------

@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_strategy_real_year_votes_both_sides_with_strength_in_unit_range(btc_15m, name):
    sides, strengths = REGISTRY[name]().votes(btc_15m)

    assert len(sides) == len(strengths) == len(btc_15m)
    assert (sides == 1).sum() > 10 and (sides == -1).sum() > 10
    assert (strengths[sides != 0] > 0).all() and (strengths[sides != 0] <= 1).all()
    assert (strengths[sides == 0] == 0).all()


@pytest.mark.parametrize("n", [100, 1_000, 9_999, 25_000, 40_803])
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_strategy_real_votes_upto_n_equal_prefix_of_full_history(btc_15m, name, n):
    strategy = REGISTRY[name]()
    sides, strengths = strategy.votes(btc_15m)

    early_sides, early_strengths = strategy.votes(btc_15m.upto(n))

    np.testing.assert_array_equal(early_sides, sides[:n])
    np.testing.assert_allclose(early_strengths, strengths[:n], rtol=1e-12, atol=1e-12)


def _cuts(sides: np.ndarray, count: int = 4) -> list[int]:
    """Return bar counts ending on long, short and no votes, spread over the history past the warm-up."""
    cuts = []
    for side in (1, -1, 0):
        at = np.flatnonzero(sides[1_000:] == side) + 1_000
        cuts += (at[np.linspace(0, len(at) - 1, count).astype(int)] + 1).tolist()
    return cuts


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_strategy_real_vote_equals_last_of_votes(btc_15m, name):
    strategy = REGISTRY[name]()
    full_sides, _ = strategy.votes(btc_15m)

    for end in _cuts(full_sides):
        window = _window(btc_15m, end, 600)
        sides, strengths = strategy.votes(window)
        vote = strategy.vote(StrategyInput(window))
        assert (vote.side, vote.strength) == pytest.approx((sides[-1], strengths[-1]), abs=1e-12), end
        assert vote.reason


def test_rule_set_real_vote_agrees_with_decide(btc_15m):
    strategy = RuleSetStrategy()
    full_sides, _ = strategy.votes(btc_15m)
    actions = set()

    for end in _cuts(full_sides, count=6):
        window = _window(btc_15m, end, 600)
        signal = decide(build_snapshot(window, SnapshotParams()), RuleParams())
        vote = strategy.vote(StrategyInput(window))
        assert vote.side == strategy.votes(window)[0][-1] == SIDE_OF_ACTION[signal.action], end
        assert vote.reason.startswith(signal.reason)
        actions.add(signal.action)

    assert actions == {"LONG", "SHORT", "FLAT"}


def test_ema_cross_real_long_reason_quotes_the_emas(btc_15m):
    strategy = EmaCross()
    end = int(np.flatnonzero(strategy.votes(btc_15m)[0] == 1)[-1]) + 1

    vote = strategy.vote(StrategyInput(btc_15m.upto(end)))

    assert vote.side == 1
    assert vote.reason.startswith("EMA 21 crossed above EMA 55 ")
    assert " bars ago (fast " in vote.reason and " > slow " in vote.reason and " ATR)" in vote.reason


# --- Params and registry ------------------------------------------------------------------------

@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: EmaCrossParams(fast=55, slow=21), "EMA cross needs 1 <= fast < slow, got 55 and 21"),
        (lambda: EmaCrossParams(max_age_bars=-1), "max_age_bars must be >= 0"),
        (lambda: RsiParams(oversold=70, overbought=30), "0 < oversold < overbought < 100"),
        (lambda: RsiParams(period=0), "RSI period must be >= 1"),
        (lambda: BollingerParams(k=0), "Bollinger needs period >= 2, k > 0"),
        (lambda: AtrBreakoutParams(lookback=0), "ATR breakout needs atr_period and lookback >= 1"),
        (lambda: AtrBreakoutParams(multiple=-0.5), "multiple must be >= 0"),
        (lambda: RuleSetParams(full_strength_roc_atr=0), "full_strength_roc_atr must be > 0"),
    ],
)
def test_params_invalid_raise_with_reason(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_strategies_from_names_returns_in_order_with_params():
    rsi_params = RsiParams(period=7)

    strategies = strategies_from_names(" Rules, ema_cross ,rsi,", {"rsi": rsi_params})

    assert [s.name for s in strategies] == ["rules", "ema_cross", "rsi"]
    assert strategies[2].params is rsi_params and strategies[1].params == EmaCrossParams()


def test_registry_names_and_params_types_match():
    assert list(REGISTRY) == ["rules", "ema_cross", "rsi", "bollinger", "atr_breakout"]
    assert all(REGISTRY[name]().name == name for name in REGISTRY)
    assert PARAMS_TYPES["atr_breakout"] is AtrBreakoutParams and PARAMS_TYPES["rules"] is RuleSetParams


@pytest.mark.parametrize(
    "names, params, message",
    [
        ("rules,macd", None, "unknown strategy 'macd'; choose from rules, ema_cross, rsi, bollinger, atr_breakout"),
        ("foo, bar", None, "unknown strategy 'foo', 'bar'"),
        (" , ", None, "no strategy named; choose from rules"),
        ("rsi,ema_cross,rsi", None, "strategy 'rsi' listed more than once"),
        ("rsi", {"rsi": EmaCrossParams()}, "params for 'rsi' must be RsiParams, got EmaCrossParams"),
    ],
)
def test_strategies_from_names_bad_list_raises(names, params, message):
    with pytest.raises(ValueError, match=message):
        strategies_from_names(names, params)
