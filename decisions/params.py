"""Turn stored rows (the admin-edited configuration, a stored flow) into the frozen values of the pure core."""
from __future__ import annotations

from analytics.features.mtf import MtfParams, MtfWeights
from analytics.snapshot import SnapshotParams
from decisions.engine.edge import EdgeParams, EdgeWeights
from decisions.engine.fusion import FusionWeights
from decisions.engine.packet import PacketParams
from decisions.engine.rules import FlowView, RuleParams
from decisions.engine.strategies import strategies_from_names
from analytics.models import Flow
from decisions.models import EDGE_WEIGHT_FIELDS, MTF_WEIGHT_FIELDS, TradingConfig, ladder_parse


def snapshot_params(config: TradingConfig) -> SnapshotParams:
    """Return the frozen snapshot parameters of the admin-edited configuration."""
    weights = MtfWeights(*(float(getattr(config, name)) for name in MTF_WEIGHT_FIELDS))
    return SnapshotParams(atr_period=config.atr_period, pivot_length=config.pivot_length,
                          momentum_period=config.momentum_period,
                          mtf=MtfParams(weights=weights, pivot_length=config.pivot_length))


def packet_params(config: TradingConfig) -> PacketParams:
    """Return the frozen strategy, edge and fusion parameters of the admin-edited configuration."""
    weights = EdgeWeights(*(float(getattr(config, name)) for name in EDGE_WEIGHT_FIELDS))
    return PacketParams(
        rules=rule_params(config),
        strategies=strategies_from_names(config.strategies),
        aggregation=config.strategy_aggregation,
        strategy_weights={k: float(v) for k, v in (config.strategy_weights or {}).items()},
        edge=EdgeParams(weights, config.edge_mtf_agree_bonus, config.edge_mtf_conflict_penalty, config.edge_threshold),
        fusion=FusionWeights(float(config.fusion_technical_weight), float(config.fusion_model_weight)),
        entry_zone_atr=config.max_entry_drift_atr,
    )


def rule_params(config: TradingConfig) -> RuleParams:
    """Return the frozen rule parameters of the admin-edited configuration."""
    warnings = tuple(w.strip() for w in config.rule_blocking_warnings.split(",") if w.strip())
    r_multiples, shares = ladder_parse(config.tp_r_multiples, config.tp_shares)
    confirm = tuple(tf for tf in config.structure_timeframe_list() if tf != config.decision_timeframe)
    return RuleParams(config.sl_atr_multiple, config.rule_max_funding_long,
                      config.rule_min_funding_short, config.rule_oi_falling_pct, config.rule_max_global_risk,
                      config.rule_use_liquidations, config.rule_use_etf_flows, warnings, r_multiples, shares,
                      confirm, config.stop_mode, config.structure_buffer_atr, config.structure_max_atr)


def flow_view(flow: Flow) -> FlowView:
    """Return the facts the rule reads from a stored flow (its parts' contexts)."""
    context = (flow.parts or {}).get("context", {})
    derivatives, etf = context.get("derivatives", {}), context.get("etf", {})
    oi = dict((label, pct) for label, pct in derivatives.get("oi_change_pct", []))
    return FlowView(funding_rate=derivatives.get("funding_rate"), oi_change_4h_pct=oi.get("4h"),
                    liquidation_magnet=context.get("liquidations", {}).get("magnet", ""),
                    etf_5d_usd=etf.get("total_5d_usd"), global_risk=flow.global_risk_score,
                    warnings=tuple(w["name"] for w in flow.warnings))


def sentiment_by_source(flow: Flow | None) -> dict[str, float]:
    """Return the latest reading of each sentiment source ("news", "whale", "onchain", ...) in the flow."""
    if flow is None:
        return {}
    sentiment = (flow.parts or {}).get("context", {}).get("sentiment", {})
    out = {str(source).lower().replace("-", "").replace("_", ""): score
           for source, score, *_ in sentiment.get("readings") or []}
    if sentiment.get("news_score") is not None:
        out["news"] = sentiment["news_score"]
    return out
