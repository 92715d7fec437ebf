"""Decision packet: aggregation, flow refusal, levels, edge threshold, calibration, risk level and entry zone."""
import json
from decimal import Decimal as D
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from hypothesis import given, settings as hypothesis_settings, strategies as st

from analytics.snapshot import Bars, MarketSnapshot, SnapshotParams, build_snapshot
from decisions.engine.aggregate import METHODS
from decisions.engine.calibration import Calibrator
from decisions.engine.edge import COMPONENTS, THRESHOLD_TOLERANCE, EdgeParams
from decisions.engine.packet import Context, PacketParams, build_packet, packet_from_votes
from decisions.engine.rules import FlowView, RuleParams, decide
from decisions.engine.strategies import Vote, strategies_from_names

BTC_15M = "binance_usdm_BTCUSDT_15m_2025-07-04_2025-12-31.csv.gz"   # 17,279 bars, no gaps
SIDE_OF_ACTION = {"LONG": 1, "SHORT": -1, "FLAT": 0}
GAP_BELOW = {"bottom": 97.0, "top": 98.5, "size_atr": 0.75, "age_bars": 3, "state": "fresh"}
GAP_ABOVE = {"bottom": 101.5, "top": 103.0, "size_atr": 0.75, "age_bars": 3, "state": "fresh"}
# Edge 0.75 for the favoured side at close 100, ATR 2 and the default 1.8R ladder:
# (0.20 x 0.85 gap + 0.20 x 0.40 reward/risk + 0.15 x 0.90 book) / 0.55 = 0.70, + 0.05 agreeing timeframes.
BULLISH = {"fvg_below": GAP_BELOW, "obi": 0.8, "mtf_state": "agree", "mtf_score": 0.5}
BEARISH = {"fvg_above": GAP_ABOVE, "obi": -0.8, "mtf_state": "agree", "mtf_score": -0.5}
NO_THRESHOLD = PacketParams(edge=EdgeParams(threshold=0.0))


def _snap(**overrides) -> MarketSnapshot:
    base = dict(as_of_ms=0, close=100.0, atr=2.0, atr_fraction=0.02, trend="range", structure_labels=(),
                last_swing_high=None, last_swing_low=None, break_of_structure="", momentum="up",
                roc_atr=1.5, range_expansion=1.0, volume_ratio=1.2, extra={})
    return MarketSnapshot(**(base | overrides))


def _packet(votes, snapshot=None, ctx=Context(), params=PacketParams()):
    snapshot = snapshot or _snap(extra=BULLISH)
    return packet_from_votes(tuple(votes), snapshot, ctx, params, decide(snapshot, params.rules, ctx.flow))


def _rules_vote(snapshot: MarketSnapshot, params: RuleParams = RuleParams(), flow: FlowView | None = None) -> Vote:
    signal = decide(snapshot, params, flow)
    side = SIDE_OF_ACTION[signal.action]
    return Vote("rules", side, 0.5 if side else 0.0, signal.reason)


def _assert_no_levels(packet) -> None:
    signal = packet.signal
    assert (signal.action, signal.entry_price, signal.stop_price, signal.target_price) == ("FLAT", None, None, None)
    assert signal.take_profits == ()


# --- the rule set alone


@pytest.mark.parametrize(
    "snapshot, rule_params, flow, reason",
    [
        # the rule itself sees no alignment
        (_snap(trend="up", momentum="down"), RuleParams(), None, "no alignment: structure up, momentum down"),
        # the rule's own flow filter refused
        (_snap(trend="up"), RuleParams(), FlowView(funding_rate=0.002),
         "LONG refused by the flow: funding 0.2000%/8h above the long limit 0.0500%"),
        # a confirming timeframe disagrees
        (_snap(trend="up", extra={"structure_trends": {"1h": "down"}}), RuleParams(structure_timeframes=("1h",)),
         None, "LONG not confirmed: 1h structure down"),
    ],
)
def test_packet_rules_only_no_side_is_flat_with_the_rule_reason(snapshot, rule_params, flow, reason):
    votes = (_rules_vote(snapshot, rule_params, flow),)

    packet = packet_from_votes(votes, snapshot, Context(flow=flow), PacketParams(rules=rule_params),
                               decide(snapshot, rule_params, flow))

    _assert_no_levels(packet)
    assert packet.signal.reason == reason
    assert (packet.edge, packet.fused, packet.confidence, packet.success_probability) == (None, None, None, None)
    assert packet.signal.rationale[-1] == f"aggregation: {packet.aggregate.reason}"


@pytest.mark.parametrize(
    "trend, extra, action, stop, ladder",
    [
        # 1.5 ATR stop (3.0), targets at 1R, 2R, 3R closing 40 %, 40 %, 20 %
        ("up", BULLISH, "LONG", D("97"), ((D("103"), D("0.4")), (D("106"), D("0.4")), (D("109"), D("0.2")))),
        ("down", BEARISH, "SHORT", D("103"), ((D("97"), D("0.4")), (D("94"), D("0.4")), (D("91"), D("0.2")))),
    ],
)
def test_packet_rules_only_side_enters_at_close_with_atr_stop_and_ladder(trend, extra, action, stop, ladder):
    snapshot = _snap(trend=trend, momentum=trend, extra=extra)
    rule_signal = decide(snapshot, RuleParams())

    packet = packet_from_votes((_rules_vote(snapshot),), snapshot, Context(), PacketParams(), rule_signal)

    signal = packet.signal
    assert (signal.action, signal.reason) == (action, rule_signal.reason)
    assert (signal.entry_price, signal.stop_price, signal.target_price) == (D("100.0"), stop, ladder[-1][0])
    assert signal.take_profits == ladder
    assert signal.rationale[:len(rule_signal.rationale)] == rule_signal.rationale
    assert not any(line.startswith("strategy rules:") for line in signal.rationale)


# --- several strategies


@pytest.mark.parametrize(
    "method, weights, votes, action, strength, reason",
    [
        # first: the first voter with a side wins, whatever follows
        ("first", {}, [("rsi", 0, 0.0), ("ema_cross", -1, 0.7), ("bollinger", 1, 0.9)], "SHORT", 0.7,
         "SHORT: first: short from ema_cross, the first to vote"),
        # vote: a tie is no majority
        ("vote", {}, [("ema_cross", 1, 0.8), ("rsi", -1, 0.6)], "FLAT", 0.0,
         "no strategy signal: vote: no majority: 1 long, 1 short of 2 voters"),
        # vote: two of three, at the agreeing voters' mean strength
        ("vote", {}, [("ema_cross", 1, 0.8), ("rsi", 1, 0.4), ("bollinger", -1, 0.9)], "LONG", 0.6,
         "LONG: vote: long: 2 long, 1 short of 3 voters"),
        # weighted: (3 x 0.9 - 0.6 - 0.5) / 5 = +0.32 reaches 0.30
        ("weighted", {"ema_cross": 3.0}, [("ema_cross", 1, 0.9), ("rsi", -1, 0.6), ("bollinger", -1, 0.5)],
         "LONG", 0.32, "LONG: weighted: long: score +0.32"),
        # weighted without weights: (0.9 - 0.6 - 0.5) / 3 = -0.07 falls short
        ("weighted", {}, [("ema_cross", 1, 0.9), ("rsi", -1, 0.6), ("bollinger", -1, 0.5)], "FLAT", 0.2 / 3,
         "no strategy signal: weighted: none: score -0.07, |score| below 0.30"),
    ],
)
def test_packet_aggregation_picks_side_and_names_it(method, weights, votes, action, strength, reason):
    params = PacketParams(aggregation=method, strategy_weights=weights, edge=EdgeParams(threshold=0.0))
    votes = [Vote(name, side, s, f"{name} because") for name, side, s in votes]

    packet = _packet(votes, params=params)

    assert packet.signal.action == action and packet.signal.reason.startswith(reason)
    assert packet.aggregate.strength == pytest.approx(strength)
    assert (packet.fused is None) == (action == "FLAT")
    if packet.fused is not None:
        assert packet.fused.technical_part == pytest.approx(0.65 * strength)
    assert {f"strategy {v.strategy}: {v.reason}" for v in votes} <= set(packet.signal.rationale)


def test_packet_rules_among_others_uses_the_aggregate_reason_not_the_rule_reason():
    snapshot = _snap(trend="up", extra=BULLISH)
    votes = (_rules_vote(snapshot), Vote("rsi", -1, 0.9, "RSI fell back"))

    packet = _packet(votes, snapshot)

    assert packet.signal.action == "LONG"
    assert packet.signal.reason.startswith("LONG: first: long from rules, the first to vote")
    assert "strategy rsi: RSI fell back" in packet.signal.rationale


# --- flow filters


@pytest.mark.parametrize(
    "votes, flow, objections",
    [
        # an EMA cross long the rule did not propose
        ([("ema_cross", 1, 0.8)], FlowView(funding_rate=0.002),
         ["funding 0.2000%/8h above the long limit 0.0500%"]),
        # a breakout short into the liquidations below
        ([("atr_breakout", -1, 0.6)], FlowView(liquidation_magnet="below"),
         ["liquidation magnet below price works against a short"]),
        # every objection is named, in order
        ([("bollinger", 1, 0.5)], FlowView(global_risk=80.0, warnings=("oi_spike", "harmless")),
         ["global risk 80/100 above 70", "warning oi_spike"]),
    ],
)
def test_packet_flow_objection_refuses_a_non_rule_side(votes, flow, objections):
    snapshot = _snap(extra=BULLISH)
    votes = (_rules_vote(snapshot, flow=flow), *(Vote(n, side, s, "because") for n, side, s in votes))

    packet = _packet(votes, snapshot, Context(flow=flow), NO_THRESHOLD)

    action = "LONG" if votes[1].side > 0 else "SHORT"
    _assert_no_levels(packet)
    assert packet.signal.reason == f"{action} refused by the flow: {'; '.join(objections)}"
    assert packet.signal.rationale[-len(objections):] == tuple(f"flow objects: {o}" for o in objections)
    assert packet.edge is None and packet.fused is None


def test_packet_flow_against_the_other_side_lets_the_side_through():
    flow = FlowView(funding_rate=0.002)     # crowded longs: no objection to a short

    packet = _packet([Vote("ema_cross", -1, 0.8, "crossed below")], _snap(extra=BEARISH), Context(flow=flow))

    assert packet.signal.action == "SHORT"
    assert not any(line.startswith("flow objects") for line in packet.signal.rationale)


# --- edge threshold


@pytest.mark.parametrize("side, action, name", [(1, "LONG", "edge_long"), (-1, "SHORT", "edge_short")])
def test_packet_edge_below_threshold_is_flat_and_keeps_edge_and_fusion(side, action, name):
    # Only the 1.8R ladder is known: risk_reward (1.8 - 1) / 2 = 0.40 for both sides.
    packet = _packet([Vote("ema_cross", side, 0.8, "cross")], _snap())

    _assert_no_levels(packet)
    assert packet.signal.reason == f"{action} refused: {name} 0.40 below threshold 0.62"
    assert packet.edge.for_side(side) == pytest.approx(0.4)
    assert packet.fused.confidence == pytest.approx(0.65 * 0.8 + 0.35 * 0.4)
    assert f"edge: {name} 0.40 below threshold 0.62" in packet.signal.rationale
    assert (packet.success_probability, packet.risk_level, packet.entry_zone) == (None, "", None)


@pytest.mark.parametrize(
    "rules, threshold, action, text",
    [
        # the default ladder's edge 0.40 exactly at a 0.40 threshold
        (RuleParams(), 0.40, "LONG", "edge_long 0.40 at or above threshold 0.40"),
        # one target at 2.24R: (2.24 - 1) / 2 = 0.62, the default threshold
        (RuleParams(tp_r_multiples=(D("2.24"),), tp_shares=(D("1"),)), 0.62, "LONG",
         "edge_long 0.62 at or above threshold 0.62"),
        # a millionth above the edge refuses, with enough digits to tell them apart
        (RuleParams(), 0.400001, "FLAT", "edge_long 0.400000 below threshold 0.400001"),
    ],
)
def test_packet_edge_at_threshold_passes(rules, threshold, action, text):
    params = PacketParams(rules=rules, edge=EdgeParams(threshold=threshold))

    packet = _packet([Vote("ema_cross", 1, 0.8, "cross")], _snap(), params=params)

    assert packet.signal.action == action
    assert f"edge: {text}" in packet.signal.rationale


# --- success probability


def test_packet_uncalibrated_probability_is_the_confidence():
    calibrator = Calibrator.fit([(0.5, True)] * 29)

    packet = _packet([Vote("ema_cross", 1, 0.6, "cross")], ctx=Context(calibrator=calibrator))

    assert packet.success_probability == packet.confidence == pytest.approx(0.65 * 0.6 + 0.35 * 0.75)
    assert packet.probability_source == "uncalibrated: 29 closed trades, need 30"


# 40 trades at confidences 0.000 .. 0.975, the upper half won: five bins of 8 centred at 0.0875, 0.2875,
# 0.4875, 0.6875 and 0.8875 with Laplace rates 0.1, 0.1, 0.5, 0.9, 0.9.
FORTY_TRADES = [(i / 40, i >= 20) for i in range(40)]


@pytest.mark.parametrize(
    "strength, probability",
    [
        (1.0, 0.9),     # confidence 0.9125, past the last centre
        (0.5, 0.7),     # confidence 0.5875, halfway from 0.4875 (0.5) to 0.6875 (0.9)
        (0.0, 0.1),     # confidence 0.2625, between two bins that both say 0.1
    ],
)
def test_packet_calibrated_probability_comes_from_past_trades(strength, probability):
    ctx = Context(calibrator=Calibrator.fit(FORTY_TRADES))

    packet = _packet([Vote("ema_cross", 1, strength, "cross")], ctx=ctx)

    assert packet.success_probability == pytest.approx(probability)
    assert packet.probability_source == "calibrated (40 trades)"
    assert f"success probability {probability:.0%} (calibrated (40 trades))" in packet.signal.rationale


# --- risk level and entry zone


@pytest.mark.parametrize(
    "strength, atr_percentile, flow, level",
    [
        (1.0, None, None, "medium"),                     # nothing known about the market
        (1.0, 50.0, None, "low"),                        # calm market, confident decision
        (1.0, 95.0, None, "high"),                       # ATR in its top decile
        (1.0, 10.0, FlowView(global_risk=50.0), "medium"),
        (0.0, 10.0, None, "high"),                       # confidence 0.26: worse than a coin flip
    ],
)
def test_packet_risk_level_is_the_worst_reading(strength, atr_percentile, flow, level):
    extra = BULLISH if atr_percentile is None else {**BULLISH, "atr_percentile": atr_percentile}

    packet = _packet([Vote("ema_cross", 1, strength, "cross")], _snap(extra=extra), Context(flow=flow))

    assert packet.signal.action == "LONG"
    assert packet.risk_level == level
    assert packet.signal.rationale[-1] == f"risk level {level}"


@pytest.mark.parametrize(
    "side, extra, tick, zone",
    [
        # 0.25 ATR = 0.5 each way of 100.03; the chasing bound is rounded towards the entry
        (1, BULLISH, D("0.1"), (D("99.5"), D("100.5"))),
        (-1, BEARISH, D("0.1"), (D("99.6"), D("100.6"))),
        (1, BULLISH, D("0.5"), (D("99.5"), D("100.5"))),
        (-1, BEARISH, D("0.5"), (D("100.0"), D("101.0"))),
    ],
)
def test_packet_tick_size_gives_entry_zone_on_the_grid(side, extra, tick, zone):
    packet = _packet([Vote("ema_cross", side, 0.8, "cross")], _snap(close=100.03, extra=extra),
                     Context(tick_size=tick))

    low, high = packet.entry_zone
    assert packet.entry_zone == zone
    assert low <= packet.signal.entry_price <= high
    assert low % tick == 0 and high % tick == 0


def test_packet_without_tick_size_has_no_entry_zone():
    packet = _packet([Vote("ema_cross", 1, 0.8, "cross")], ctx=Context(tick_size=None))

    assert packet.signal.action == "LONG"
    assert packet.entry_zone is None and packet.risk_level == "medium"


# --- parts for the journal


def test_packet_parts_is_json_with_votes_aggregate_edge_and_fusion():
    flow = FlowView(global_risk=20.0)
    ctx = Context(flow=flow, crowd_bias=-0.3, trap_index=0.2, news=0.4, whale=0.1, onchain=0.2)
    votes = (Vote("ema_cross", 1, 0.8, "cross"), Vote("rsi", 0, 0.0, "no turn"))

    parts = json.loads(json.dumps(_packet(votes, ctx=ctx).parts(), allow_nan=False))

    assert set(parts) == {"votes", "aggregate", "edge", "fusion"}
    assert [v["strategy"] for v in parts["votes"]] == ["ema_cross", "rsi"]
    assert parts["aggregate"]["method"] == "first" and parts["aggregate"]["side"] == 1
    assert [p["name"] for p in parts["edge"]["parts"]] == list(COMPONENTS)
    assert all(p["available"] for p in parts["edge"]["parts"])
    assert parts["fusion"]["confidence"] == pytest.approx(parts["fusion"]["technical"] + parts["fusion"]["model"])


def test_packet_parts_of_an_early_flat_has_no_edge_or_fusion():
    packet = _packet([Vote("ema_cross", 0, 0.0, "no cross")])

    parts = json.loads(json.dumps(packet.parts(), allow_nan=False))

    assert set(parts) == {"votes", "aggregate"}


def test_build_packet_without_strategies_raises():
    snapshot = _snap()
    bars = Bars(*(np.ones(1) for _ in range(6)), 900_000)

    with pytest.raises(ValueError, match="no votes to aggregate"):
        build_packet(bars, snapshot, Context(), PacketParams(), decide(snapshot, RuleParams()))


# --- invariants

_NAMES = ("ema_cross", "rsi", "bollinger", "atr_breakout")
_vote = st.tuples(st.sampled_from([-1, 0, 1]), st.floats(0.0, 1.0))
_reading = st.none() | st.floats(-1.0, 1.0)


@st.composite
def _cases(draw):
    close = draw(st.floats(1e-3, 1e6))
    snapshot = _snap(
        close=close, atr=close * draw(st.floats(1e-6, 0.5)),
        trend=draw(st.sampled_from(["up", "range", "down"])), momentum=draw(st.sampled_from(["up", "down"])),
        extra={"obi": draw(_reading), "mtf_state": draw(st.sampled_from(["agree", "neither", "conflict"])),
               "mtf_score": draw(_reading), "atr_percentile": draw(st.none() | st.floats(0, 100)),
               "fvg_below": draw(st.none() | st.just({**GAP_BELOW, "bottom": close * 0.98})),
               "fvg_above": draw(st.none() | st.just({**GAP_ABOVE, "top": close * 1.02}))})
    flow = draw(st.none() | st.builds(FlowView, funding_rate=st.floats(-0.002, 0.002),
                                      global_risk=st.floats(0, 100)))
    votes = [Vote(name, side, strength if side else 0.0, "because")
             for name, (side, strength) in zip(_NAMES, draw(st.lists(_vote, min_size=1, max_size=4)))]
    if draw(st.booleans()):
        votes.insert(0, _rules_vote(snapshot, flow=flow))
    ctx = Context(flow=flow, news=draw(_reading), crowd_bias=draw(_reading),
                  tick_size=draw(st.sampled_from([None, D("0.01"), D("1")])))
    params = PacketParams(aggregation=draw(st.sampled_from(METHODS)),
                          edge=EdgeParams(threshold=draw(st.floats(0.0, 0.8))))
    return tuple(votes), snapshot, ctx, params


@hypothesis_settings(max_examples=300, deadline=None)
@given(_cases())
def test_packet_invariants_levels_confidence_and_edge(case):
    votes, snapshot, ctx, params = case

    packet = _packet(votes, snapshot, ctx, params)

    signal = packet.signal
    if signal.action == "FLAT":
        _assert_no_levels(packet)
        return
    direction = SIDE_OF_ACTION[signal.action]
    prices = [signal.stop_price, signal.entry_price, *(price for price, _ in signal.take_profits)]
    assert direction == packet.aggregate.side
    assert all(direction * (b - a) > 0 for a, b in zip(prices, prices[1:]))   # stop, entry, TP1, TP2, TP3
    assert signal.target_price == signal.take_profits[-1][0]
    assert 0.0 <= packet.confidence <= 1.0 and 0.0 <= packet.success_probability <= 1.0
    assert packet.edge.for_side(direction) >= params.edge.threshold - THRESHOLD_TOLERANCE
    if ctx.tick_size is not None:
        assert packet.entry_zone[0] <= signal.entry_price <= packet.entry_zone[1]


# --- real candles


@pytest.fixture(scope="module")
def btc_15m() -> Bars:
    from market.csvformat import parse_candles

    table = parse_candles((Path(settings.MARKET_DATA_DIR) / BTC_15M).read_bytes(), BTC_15M, "15m").numbers
    return Bars(table["open_time_ms"].to_numpy(np.int64),
                *(table[c].to_numpy(float) for c in ("open", "high", "low", "close", "volume")), 900_000)


def _window(bars: Bars, end: int, size: int = 300) -> Bars:
    cut = slice(end - size, end)
    return Bars(bars.open_time_ms[cut], bars.open[cut], bars.high[cut], bars.low[cut], bars.close[cut],
                bars.volume[cut], bars.timeframe_ms)


def test_build_packet_real_bars_rules_only_never_trades_against_the_rule(btc_15m):
    params = PacketParams(strategies=strategies_from_names("rules"))
    traded = []

    for end in range(1000, 1300, 3):
        bars = _window(btc_15m, end)
        snapshot = build_snapshot(bars, SnapshotParams())
        rule_signal = decide(snapshot, params.rules)
        packet = build_packet(bars, snapshot, Context(), params, rule_signal)
        assert packet.signal.action in ("FLAT", rule_signal.action)
        if packet.signal.action != "FLAT":
            traded.append((bars, snapshot, packet))
            assert packet.signal.reason == rule_signal.reason
            assert packet.signal.entry_price == D(repr(snapshot.close)) == rule_signal.entry_price
            assert packet.signal.stop_price == rule_signal.stop_price
        elif packet.edge is None:
            assert packet.signal.reason == rule_signal.reason

    assert traded, "no rule trade in the window: the test checked nothing"
    # The flow of the context reaches the rule set's vote: crowded funding refuses the same bar.
    bars, snapshot, packet = traded[0]
    action = packet.signal.action
    flow = FlowView(funding_rate=0.002 if action == "LONG" else -0.002)

    refused = build_packet(bars, snapshot, Context(flow=flow), params, decide(snapshot, params.rules, flow))

    _assert_no_levels(refused)
    assert refused.signal.reason.startswith(f"{action} refused by the flow: funding")


def test_build_packet_real_bars_all_strategies_vote_in_order(btc_15m):
    params = PacketParams(strategies=strategies_from_names("rules,ema_cross,rsi,bollinger,atr_breakout"),
                          aggregation="vote")
    sides = set()

    for end in range(1000, 1300, 3):
        bars = _window(btc_15m, end)
        snapshot = build_snapshot(bars, SnapshotParams())
        packet = build_packet(bars, snapshot, Context(), params, decide(snapshot, params.rules))
        assert [v.strategy for v in packet.votes] == ["rules", "ema_cross", "rsi", "bollinger", "atr_breakout"]
        side = SIDE_OF_ACTION[packet.signal.action]
        sides.add(side)
        if side:
            assert side == packet.aggregate.side
            risk = D("1.5") * D(repr(snapshot.atr))
            assert packet.signal.stop_price == D(repr(snapshot.close)) - side * risk

    assert sides == {-1, 0, 1}


# --- no stop distance


@pytest.mark.parametrize("atr", [0.0, float("nan")])
def test_packet_without_atr_is_flat_whatever_the_strategy_proposes(atr):
    votes = (Vote("ema_cross", 1, 0.9, "EMA 21 crossed above EMA 55"),)

    packet = _packet(votes, _snap(atr=atr, extra=BULLISH), params=NO_THRESHOLD)

    _assert_no_levels(packet)
    assert packet.signal.reason == "ATR not available"


def test_packet_rule_vote_dropped_by_weighting_does_not_keep_the_rule_reason():
    snapshot = _snap(trend="up", extra=BULLISH)
    weak = Vote("rules", 1, 0.1, "LONG: structure up and momentum up")

    packet = _packet((weak,), snapshot, params=PacketParams(aggregation="weighted"))

    _assert_no_levels(packet)
    assert packet.signal.reason.startswith("no strategy signal: weighted")
