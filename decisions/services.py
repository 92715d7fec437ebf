"""The decision cycle: snapshot -> rule -> risk gates -> sizing -> route by mode -> execution."""
from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction

from analytics.features.mtf import MtfParams, MtfWeights
from analytics.selectors import bars_load, context_load
from analytics.models import Flow, Snapshot
from analytics.services import flow_run, ms_to_datetime, snapshot_record
from analytics.snapshot import MarketSnapshot, SnapshotParams, build_snapshot, min_bars
from dashboard.events import broadcast_on_commit
from decisions.engine.rules import FlowView, RuleParams, Signal, decide
from decisions.audit_services import ENGINE, audit_append
from decisions.models import MTF_WEIGHT_FIELDS, AuditRecord, Decision, Mode, TradingConfig, ladder_parse
from decisions.risk.gates import GateResult, check_costs_vs_target, check_rr_min, first_block
from decisions.risk.wall import combine, evaluate_gates
from decisions.risk_state import risk_limits_for, risk_state_load
from decisions.risk.sizing import SizingInput, round_to_step, round_to_tick, size_position
from decisions.selectors import trading_config_get
from execution import services as execution
from execution.models import Account
from execution.oms import OrderRejected
from execution.selectors import equity_now
from market.coverage import SeriesGapError, require_complete
from market.models import Instrument

logger = logging.getLogger(__name__)


def snapshot_params(config: TradingConfig) -> SnapshotParams:
    """Return the frozen snapshot parameters of the admin-edited configuration."""
    weights = MtfWeights(*(float(getattr(config, name)) for name in MTF_WEIGHT_FIELDS))
    return SnapshotParams(atr_period=config.atr_period, pivot_length=config.pivot_length,
                          momentum_period=config.momentum_period,
                          mtf=MtfParams(weights=weights, pivot_length=config.pivot_length))


def _gates(*, config: TradingConfig, account: Account, instrument: Instrument, now: datetime,
           signal: Signal, snapshot: MarketSnapshot) -> list[GateResult]:
    """Return every gate's verdict; a FLAT signal is judged as a long so the journal shows pauses."""
    limits = risk_limits_for(config)
    state = risk_state_load(account=account, instrument=instrument, now=now, limits=limits,
                            atr_percentile=snapshot.extra.get("atr_percentile"))
    side = "SHORT" if signal.action == "SHORT" else "LONG"
    gates = evaluate_gates(state, limits, now, side, instrument.exchange_symbol)
    if signal.action != "FLAT":
        gates.append(check_rr_min(signal.entry_price, signal.stop_price, signal.take_profits, config.rr_min))
        gates.append(check_costs_vs_target(signal.entry_price, signal.target_price, config.taker_fee_fraction,
                                           config.slippage_bps, config.max_cost_to_target_fraction))
    return gates


def _route(signal: Signal, gates: list[GateResult], config: TradingConfig, quantity, mode: str) -> tuple[str, str]:
    """Return (outcome, reason) for a signal after the gates and the mode in force."""
    if signal.action == "FLAT":
        return Decision.Outcome.FLAT, signal.reason
    blocked = first_block(gates)
    if blocked is not None:
        return Decision.Outcome.BLOCKED, f"blocked by {blocked.name}: {blocked.reason}"
    if config.paused:
        return Decision.Outcome.PAUSED, f"{signal.reason}; bot paused"
    if not quantity:
        return Decision.Outcome.SKIPPED, f"{signal.reason}; size rounds to zero or below min notional"
    if mode != Mode.ON:
        breaker = " (circuit breaker)" if mode != config.mode else ""
        return Decision.Outcome.LOGGED, f"{signal.reason}; mode {mode}{breaker}, not executed"
    return Decision.Outcome.EXECUTED, signal.reason


def decision_run(*, instrument: Instrument, now: datetime, account: Account) -> Decision | None:
    """Evaluate the last closed bar of `instrument` once; a repeat for the same bar returns the first."""
    config = trading_config_get()
    bars = _bars(instrument, config, now)
    if bars is None:
        return None
    as_of = ms_to_datetime(int(bars.open_time_ms[-1]) + bars.timeframe_ms)
    existing = Decision.objects.filter(instrument=instrument, timeframe=config.decision_timeframe, as_of=as_of).first()
    if existing is not None:
        return existing
    gap = None if config.allow_data_gaps else _window_gap(instrument, config.decision_timeframe, bars)
    if gap is not None:
        return _decision_blocked_by_gap(instrument, config, as_of, gap, now)
    snapshot = snapshot_build(instrument=instrument, config=config, now=now, bars=bars)
    flow = _flow(instrument, as_of, config)
    view = flow_view(flow) if flow is not None else None
    signal = _on_tick_grid(decide(snapshot, rule_params(config), view), instrument.tick_size)
    if flow is not None:
        signal = replace(signal, rationale=signal.rationale + (_flow_line(flow),))
    gates = _gates(config=config, account=account, instrument=instrument, now=now, signal=signal, snapshot=snapshot)
    quantity = _quantity(signal, config, account, instrument, now, combine(gates).size_factor)
    _trip_breaker(config, gates, now)
    mode = config.effective_mode(now)
    outcome, reason = _route(signal, gates, config, quantity, mode)
    try:
        with transaction.atomic():
            decision = Decision.objects.create(
                instrument=instrument, timeframe=config.decision_timeframe, as_of=as_of,
                snapshot=snapshot_record(instrument=instrument, timeframe=config.decision_timeframe,
                                         snapshot=snapshot),
                action=signal.action, mode=mode, outcome=outcome, entry_price=signal.entry_price,
                stop_price=signal.stop_price, target_price=signal.target_price, quantity=quantity or None,
                reason=reason[:255], rationale=list(signal.rationale), gates=[g.as_dict() for g in gates],
                config_version=config.version,
                take_profits=[{"price": str(p), "share": str(share)} for p, share in signal.take_profits],
            )
            decision_audit(decision, now=now)
    except IntegrityError:  # another worker decided this bar first
        return Decision.objects.get(instrument=instrument, timeframe=config.decision_timeframe, as_of=as_of)
    _publish(instrument, snapshot, flow)
    if outcome == Decision.Outcome.EXECUTED:
        _execute(decision, account, config, now)
    broadcast_on_commit("decision", decision_payload(decision))
    return decision


def _bars(instrument: Instrument, config: TradingConfig, now: datetime):
    bars = bars_load(instrument=instrument, timeframe=config.decision_timeframe, now=now, count=config.history_bars)
    needed = min_bars(snapshot_params(config))
    if len(bars) < needed:
        logger.info("%s: %d bars, need %d; no analysis", instrument, len(bars), needed)
        return None
    return bars


def snapshot_build(*, instrument: Instrument, config: TradingConfig, now: datetime, bars) -> MarketSnapshot:
    """Return the snapshot of `bars` with its point-in-time context (higher timeframes, book)."""
    context = context_load(instrument=instrument, timeframe=config.decision_timeframe, now=now)
    return build_snapshot(bars, snapshot_params(config), context)


def analytics_record(*, instrument: Instrument, now: datetime) -> tuple[Snapshot, Flow] | None:
    """Store the snapshot of the last closed bar and the flow as of `now`, together or not at all."""
    config = trading_config_get()
    bars = _bars(instrument, config, now)
    if bars is None:
        return None
    gap = None if config.allow_data_gaps else _window_gap(instrument, config.decision_timeframe, bars)
    if gap is not None:
        raise SeriesGapError(gap)
    snapshot = snapshot_build(instrument=instrument, config=config, now=now, bars=bars)
    with transaction.atomic():  # both or neither: a failed flow leaves no lone snapshot behind
        row = snapshot_record(instrument=instrument, timeframe=config.decision_timeframe, snapshot=snapshot)
        flow = flow_run(instrument=instrument, as_of=now, candle_timeframe=config.decision_timeframe,
                        allow_gaps=config.allow_data_gaps)
        _publish(instrument, snapshot, flow)
    return row, flow


def _publish(instrument: Instrument, snapshot: MarketSnapshot, flow: Flow | None) -> None:
    broadcast_on_commit("snapshot", {"instrument": str(instrument), **snapshot.features()})
    if flow is not None:
        broadcast_on_commit("flow", flow_payload(flow))


def _trip_breaker(config: TradingConfig, gates: list[GateResult], now: datetime) -> None:
    """Hold the bot in SAFE until the daily-loss pause lifts (the next local day), audited."""
    daily = next((g for g in gates if g.name == "daily_loss" and g.blocked and g.until_ms), None)
    if daily is None:
        return
    until = ms_to_datetime(daily.until_ms)
    if config.safe_until is not None and config.safe_until >= until:
        return
    with transaction.atomic():
        TradingConfig.objects.filter(pk=config.pk).update(safe_until=until)
        config.safe_until = until
        audit_append(kind=AuditRecord.Kind.MODE_CHANGE, actor=ENGINE, subject=f"config:{config.pk}", now=now,
                     body={"from": config.mode, "to": Mode.SAFE, "until": until, "reason": daily.reason})
    broadcast_on_commit("status", {"mode": Mode.SAFE, "safe_until": until, "reason": daily.reason})


def _quantity(signal: Signal, config: TradingConfig, account: Account, instrument: Instrument, now: datetime,
              size_factor: float = 1.0):
    if signal.action == "FLAT":
        return None
    quantity = size_position(SizingInput(
        equity_now(account=account, now=now), config.risk_per_trade_fraction, signal.entry_price,
        signal.stop_price, instrument.step_size, instrument.min_notional, config.max_leverage))
    if size_factor < 1 and quantity:
        # A shrink verdict (e.g. high volatility -> half size) scales the risk, rounded down to the step.
        quantity = round_to_step(quantity * Decimal(repr(size_factor)), instrument.step_size)
        quantity = quantity if quantity * signal.entry_price >= instrument.min_notional else Decimal(0)
    return quantity


def _on_tick_grid(signal: Signal, tick: Decimal) -> Signal:
    if signal.entry_price is None:
        return signal
    return replace(signal, entry_price=round_to_tick(signal.entry_price, tick),
                   stop_price=round_to_tick(signal.stop_price, tick),
                   target_price=round_to_tick(signal.target_price, tick),
                   take_profits=tuple((round_to_tick(p, tick), share) for p, share in signal.take_profits))


def _flow(instrument: Instrument, as_of: datetime, config: TradingConfig) -> Flow | None:
    """Return the flow view as of the decision's bar; a failure is logged and does not stop the cycle."""
    try:
        return flow_run(instrument=instrument, as_of=as_of, candle_timeframe=config.decision_timeframe,
                        allow_gaps=config.allow_data_gaps)
    except Exception:  # flow_run is atomic: nothing half-saved; the next cycle runs it again
        logger.exception("flow for %s as of %s failed", instrument, as_of)
        return None


def rule_params(config: TradingConfig) -> RuleParams:
    """Return the frozen rule parameters of the admin-edited configuration."""
    warnings = tuple(w.strip() for w in config.rule_blocking_warnings.split(",") if w.strip())
    r_multiples, shares = ladder_parse(config.tp_r_multiples, config.tp_shares)
    return RuleParams(config.sl_atr_multiple, config.rule_max_funding_long,
                      config.rule_min_funding_short, config.rule_oi_falling_pct, config.rule_max_global_risk,
                      config.rule_use_liquidations, config.rule_use_etf_flows, warnings, r_multiples, shares)


def flow_view(flow: Flow) -> FlowView:
    """Return the facts the rule reads from a stored flow (its parts' contexts)."""
    context = (flow.parts or {}).get("context", {})
    derivatives, etf = context.get("derivatives", {}), context.get("etf", {})
    oi = dict((label, pct) for label, pct in derivatives.get("oi_change_pct", []))
    return FlowView(funding_rate=derivatives.get("funding_rate"), oi_change_4h_pct=oi.get("4h"),
                    liquidation_magnet=context.get("liquidations", {}).get("magnet", ""),
                    etf_5d_usd=etf.get("total_5d_usd"), global_risk=flow.global_risk_score,
                    warnings=tuple(w["name"] for w in flow.warnings))


def _flow_line(flow: Flow) -> str:
    warnings = ", ".join(w["name"] for w in flow.warnings) or "no warnings"
    return (f"flow: crowd bias {flow.crowd_bias:+.2f}, trap {flow.trap_index:.2f}, "
            f"risk {flow.global_risk_score:.0f}/100 ({warnings})")


def _window_gap(instrument: Instrument, timeframe: str, bars) -> str | None:
    """Return why the analysed window cannot be trusted (a named gap), or None when complete."""
    start = int(bars.open_time_ms[0])
    end = int(bars.open_time_ms[-1]) + bars.timeframe_ms
    try:
        require_complete(f"{instrument.exchange_symbol} {timeframe} candles", bars.open_time_ms,
                         bars.timeframe_ms, start, end)
    except SeriesGapError as exc:
        return str(exc)
    return None


def _decision_blocked_by_gap(instrument: Instrument, config: TradingConfig, as_of: datetime, gap: str,
                             now: datetime) -> Decision:
    try:
        with transaction.atomic():
            decision = Decision.objects.create(
                instrument=instrument, timeframe=config.decision_timeframe, as_of=as_of, action="FLAT",
                mode=config.mode, outcome=Decision.Outcome.BLOCKED, reason=f"data gap: {gap}"[:255],
                gates=[{"name": "data_complete", "verdict": "block", "reason": gap}], config_version=config.version,
            )
            decision_audit(decision, now=now)
    except IntegrityError:
        return Decision.objects.get(instrument=instrument, timeframe=config.decision_timeframe, as_of=as_of)
    broadcast_on_commit("decision", decision_payload(decision))
    return decision


def _execute(decision: Decision, account: Account, config: TradingConfig, now: datetime) -> None:
    try:
        position = execution.position_open(decision=decision, account=account,
                                           broker=execution.broker_for(account, config), now=now)
    except OrderRejected as exc:
        position = None
        decision.reason = f"order rejected: {exc}"[:255]
    if position is None:
        with transaction.atomic():
            decision.outcome = Decision.Outcome.SKIPPED
            decision.save(update_fields=["outcome", "reason"])
            audit_append(kind=AuditRecord.Kind.ORDER, actor=ENGINE, subject=f"decision:{decision.pk}",
                         body={"action": "not_placed", "reason": decision.reason}, now=now)


def decision_payload(decision: Decision) -> dict:
    """Return the JSON shape the dashboard shows for a decision."""
    return {"id": decision.pk, "instrument": str(decision.instrument), "as_of": decision.as_of,
            "action": decision.action, "outcome": decision.outcome, "mode": decision.mode,
            "reason": decision.reason, "rationale": decision.rationale, "gates": decision.gates,
            "entry_price": decision.entry_price, "stop_price": decision.stop_price,
            "target_price": decision.target_price, "quantity": decision.quantity}


def flow_payload(flow: Flow) -> dict:
    """Return the JSON shape of a flow view (the btc_flow.json export uses it too)."""
    return {"instrument": str(flow.instrument), "as_of": flow.as_of, "crowd_bias": flow.crowd_bias,
            "trap_index": flow.trap_index, "global_risk_score": flow.global_risk_score,
            "warnings": flow.warnings, "parts": flow.parts, "inputs": flow.inputs}


def decision_audit(decision: Decision, *, now: datetime) -> None:
    """Append the decision and its gate verdicts to the audit chain (inside the caller's transaction)."""
    subject = f"decision:{decision.pk}"
    audit_append(kind=AuditRecord.Kind.DECISION, actor=ENGINE, subject=subject, now=now, body={
        "instrument": str(decision.instrument), "timeframe": decision.timeframe, "as_of": decision.as_of,
        "action": decision.action, "mode": decision.mode, "outcome": decision.outcome, "reason": decision.reason,
        "entry_price": decision.entry_price, "stop_price": decision.stop_price,
        "target_price": decision.target_price, "take_profits": decision.take_profits, "quantity": decision.quantity,
        "rationale": decision.rationale,
        "config_version": decision.config_version})
    blocked = next((g["name"] for g in decision.gates if g.get("verdict") == "block"), None)
    audit_append(kind=AuditRecord.Kind.GATE, actor=ENGINE, subject=subject, now=now,
                 body={"gates": decision.gates, "blocked_by": blocked})
