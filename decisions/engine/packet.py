"""The decision packet: strategies -> aggregation -> flow filters -> levels -> edge -> fusion.

Pure: no Django, no I/O, no clock. The shell builds the snapshot, the flow view, the sentiment
readings and the calibrator, and passes them in; the backtester passes the same values.

Order of the steps, each of which may end in FLAT with its reason:
1. every configured strategy votes on the last bar; the votes are aggregated (first/vote/weighted);
2. the flow filters of the rule set (funding, open interest, liquidations, ETF flows, global risk,
   warnings) may refuse the aggregated side, whichever strategy proposed it;
3. levels: entry at the close, stop `sl_atr_multiple` ATR away, the take-profit ladder;
4. the edge of that side must reach the edge threshold;
5. confidence = technical weight x aggregated strength + model weight x edge; the calibrator turns
   it into a success probability once enough closed trades exist.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from decimal import Decimal

from analytics.snapshot import Bars, MarketSnapshot
from decisions.engine.aggregate import Aggregate, aggregate
from decisions.engine.calibration import Calibrator
from decisions.engine.edge import Edge, EdgeParams, build_edge, inputs_from_snapshot, passes
from decisions.engine.fusion import Fused, FusionWeights, RiskLevelParams, entry_zone, fuse, risk_level
from decisions.engine.rules import FlowView, RuleParams, Signal, flow_objections, signal_with_levels
from decisions.engine.strategies import Strategy, StrategyInput, Vote

SIDE_ACTION = {1: "LONG", -1: "SHORT", 0: "FLAT"}


@dataclass(frozen=True, slots=True)
class PacketParams:
    rules: RuleParams = field(default_factory=RuleParams)
    strategies: tuple[Strategy, ...] = ()
    aggregation: str = "first"
    strategy_weights: dict = field(default_factory=dict)
    edge: EdgeParams = field(default_factory=EdgeParams)
    fusion: FusionWeights = field(default_factory=FusionWeights)
    risk_levels: RiskLevelParams = field(default_factory=RiskLevelParams)
    entry_zone_atr: Decimal = Decimal("0.25")


@dataclass(frozen=True, slots=True)
class Context:
    """What the packet reads besides the bars and the snapshot; None where unknown."""

    flow: FlowView | None = None
    crowd_bias: float | None = None
    trap_index: float | None = None
    news: float | None = None               # sentiment readings by source, -1..1
    whale: float | None = None
    onchain: float | None = None
    calibrator: Calibrator = field(default_factory=lambda: Calibrator(0, 30))
    tick_size: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Packet:
    signal: Signal                          # action, reason, rationale, entry, stop, ladder
    votes: tuple[Vote, ...]
    aggregate: Aggregate
    edge: Edge | None = None
    fused: Fused | None = None
    success_probability: float | None = None
    probability_source: str = ""
    risk_level: str = ""
    entry_zone: tuple[Decimal, Decimal] | None = None

    @property
    def confidence(self) -> float | None:
        return self.fused.confidence if self.fused is not None else None

    def parts(self) -> dict:
        """Return the votes, the aggregation, the edge components and the fusion, JSON-safe."""
        out = {"votes": [_flat_dict(v) for v in self.votes],
               "aggregate": {"method": self.aggregate.method, "side": self.aggregate.side,
                             "strength": self.aggregate.strength, "reason": self.aggregate.reason}}
        if self.edge is not None:
            out["edge"] = {"long": self.edge.edge_long, "short": self.edge.edge_short,
                           "mtf_adjustment_long": self.edge.mtf_adjustment_long,
                           "mtf_adjustment_short": self.edge.mtf_adjustment_short,
                           "parts": [_flat_dict(p) for p in self.edge.parts]}
        if self.fused is not None:
            out["fusion"] = {"confidence": self.fused.confidence, "technical": self.fused.technical_part,
                             "model": self.fused.model_part, "reason": self.fused.reason}
        return out


def _flat_dict(record) -> dict:
    # What asdict gives for a dataclass of plain values (str, numbers, None), without its deep copies.
    return {f.name: getattr(record, f.name) for f in fields(record)}


def _reward_risk(signal: Signal) -> float:
    risk = abs(signal.entry_price - signal.stop_price)
    if risk == 0:
        return 0.0
    return float(sum(abs(price - signal.entry_price) * share for price, share in signal.take_profits) / risk)


def _flat(reason: str, rationale: tuple[str, ...]) -> Signal:
    return Signal("FLAT", reason[:255], rationale)


def build_packet(bars: Bars, snapshot: MarketSnapshot, ctx: Context, params: PacketParams,
                 rule_signal: Signal) -> Packet:
    """Return the decision packet of the last bar; `rule_signal` is decide() on the same snapshot."""
    inp = StrategyInput(bars, snapshot, ctx.flow, params.rules)
    return packet_from_votes(tuple(strategy.vote(inp) for strategy in params.strategies), snapshot, ctx, params,
                             rule_signal)


def packet_from_votes(votes: tuple[Vote, ...], snapshot: MarketSnapshot, ctx: Context, params: PacketParams,
                      rule_signal: Signal) -> Packet:
    """Return the packet from the strategies' votes on the last bar.

    The backtester computes the votes of a whole history at once (`Strategy.votes`) and enters
    here per bar; the live path enters through `build_packet`.
    """
    agg = aggregate(votes, params.aggregation, params.strategy_weights or None)
    rationale = rule_signal.rationale + tuple(f"strategy {v.strategy}: {v.reason}" for v in votes
                                              if v.strategy != "rules")
    rationale += (f"aggregation: {agg.reason}",)
    only_rules = [v.strategy for v in votes] == ["rules"]
    if agg.side == 0:
        rule_flat = only_rules and rule_signal.action == "FLAT"
        return Packet(_flat(rule_signal.reason if rule_flat else f"no strategy signal: {agg.reason}", rationale),
                      votes, agg)
    if not snapshot.atr > 0:  # also NaN: no stop distance, so no levels and no size
        return Packet(_flat("ATR not available", rationale), votes, agg)
    action = SIDE_ACTION[agg.side]
    objections = flow_objections(action, ctx.flow, params.rules) if ctx.flow is not None else []
    if objections:
        return Packet(_flat(f"{action} refused by the flow: {'; '.join(objections)}",
                            rationale + tuple(f"flow objects: {o}" for o in objections)), votes, agg)
    reason = (rule_signal.reason if only_rules else f"{action}: {agg.reason}")[:255]
    signal = signal_with_levels(snapshot, action, reason, rationale, params.rules)
    return _with_edge(signal, snapshot, ctx, params, votes, agg)


def _with_edge(signal: Signal, snapshot: MarketSnapshot, ctx: Context, params: PacketParams,
               votes: tuple[Vote, ...], agg: Aggregate) -> Packet:
    flow = ctx.flow
    edge = build_edge(inputs_from_snapshot(
        snapshot, reward_risk=_reward_risk(signal), news=ctx.news, whale=ctx.whale, onchain=ctx.onchain,
        crowd_bias=ctx.crowd_bias, trap_index=ctx.trap_index,
        global_risk=flow.global_risk if flow is not None else None), params.edge)
    ok, edge_text = passes(edge, agg.side, params.edge)
    fused = fuse(agg.side, agg.strength, edge, params.fusion)
    rationale = signal.rationale + (f"edge: {edge_text}", f"fusion: {fused.reason}")
    if not ok:
        return Packet(_flat(f"{signal.action} refused: {edge_text}", rationale), votes, agg, edge, fused)
    probability, source = ctx.calibrator.probability(fused.confidence)
    level = risk_level(flow.global_risk if flow is not None else None, snapshot.extra.get("atr_percentile"),
                       fused.confidence, params.risk_levels)
    zone = None
    if ctx.tick_size:
        zone = entry_zone(agg.side, signal.entry_price, snapshot.atr, params.entry_zone_atr, tick=ctx.tick_size)
    rationale += (f"success probability {probability:.0%} ({source})", f"risk level {level}")
    signal = Signal(signal.action, signal.reason, rationale, signal.entry_price, signal.stop_price,
                    signal.target_price, signal.take_profits)
    return Packet(signal, votes, agg, edge, fused, probability, source, level, zone)
