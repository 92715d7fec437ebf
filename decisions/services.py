"""The decision cycle: snapshot -> rule -> risk gates -> sizing -> route by mode -> execution."""
from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import IntegerField, QuerySet, Value

from analytics.selectors import bars_load, context_load
from analytics.models import Flow, Snapshot
from analytics.services import flow_run, ms_to_datetime, snapshot_record
from analytics.snapshot import MarketSnapshot, build_snapshot, min_bars
from dashboard.events import broadcast_on_commit
from decisions import pipeline, router
from decisions.approvals import decisions_due, decisions_expire
from decisions.engine.calibration import Calibrator
from decisions.engine.packet import Context as PacketContext
from decisions.engine.packet import Packet, build_packet
from decisions.engine.rules import Signal, decide
from decisions.params import flow_view, packet_params, sentiment_by_source, snapshot_params
from decisions.audit_services import ENGINE, AuditBatch, audit_append, audit_batched, audit_extend
from decisions.cycle import flow_line, trade_limits, window_gap  # noqa: F401  (moved to the core)
from decisions.models import AuditRecord, Decision, Mode, TradingConfig
from decisions.overrides import gate_overrides_active
from decisions.risk.gates import GateResult, first_block
from decisions.risk_state import risk_limits_for, risk_state_load
from decisions.selectors import trading_config_get
from execution import services as execution
from execution.models import Account, Position
from execution.oms import OrderRejected
from execution.reconciliation import trading_enabled
from execution.selectors import account_name_for, equity_now, last_close, positions_open
from market.coverage import SeriesGapError
from market.models import Instrument
from tradingbot.compiled_reads import rows_compiled

logger = logging.getLogger(__name__)


def _market_rules(instrument: Instrument) -> pipeline.MarketRules:
    return pipeline.MarketRules(instrument.exchange_symbol, instrument.tick_size, instrument.step_size,
                                instrument.min_notional)


def _account_facts(account: Account, config: TradingConfig, now: datetime,
                   equity: Decimal | None = None, positions: list[Position] | None = None) -> pipeline.AccountFacts:
    """Return the account's equity, margin in use and open count (from `positions`, its open ones, when given)."""
    if positions is None:
        positions = positions_open(account)
    margin_in_use = sum((p.quantity * p.entry_price for p in positions), Decimal(0)) / config.max_leverage
    return pipeline.AccountFacts(equity if equity is not None else equity_now(account=account, now=now,
                                                                              positions=positions),
                                 margin_in_use, len(positions))


def _gates(*, config: TradingConfig, account: Account, instrument: Instrument, now: datetime,
           signal: Signal, atr_percentile: float | None) -> list[GateResult]:
    """Return every gate's verdict; a FLAT signal is judged as a long so the journal shows pauses."""
    limits = risk_limits_for(config)
    state = risk_state_load(account=account, instrument=instrument, now=now, limits=limits,
                            atr_percentile=atr_percentile)
    return pipeline.gates_for(signal, state, limits, trade_limits(config), _market_rules(instrument), now,
                              gate_overrides_active(now=now))


def decision_run(*, instrument: Instrument, now: datetime, account: Account,
                 config: TradingConfig | None = None) -> Decision | None:
    """Evaluate the last closed bar of `instrument` once; a repeat for the same bar returns the first.

    `config` is the configuration the caller read for this cycle (read here when not given).
    """
    config = config if config is not None else trading_config_get()
    bars = _bars(instrument, config, now)
    if bars is None:
        decisions_expire(now=now)
        return None
    as_of = ms_to_datetime(int(bars.open_time_ms[-1]) + bars.timeframe_ms)
    due, existing = _pending_and_existing(instrument, config.decision_timeframe, as_of, now)
    decisions_expire(now=now, due=due)
    if existing is not None:
        return Decision.objects.get(pk=existing)
    gap = None if config.allow_data_gaps else window_gap(instrument, config.decision_timeframe, bars)
    if gap is not None:
        return _decision_blocked_by_gap(instrument, config, as_of, gap, now)
    snapshot = snapshot_build(instrument=instrument, config=config, now=now, bars=bars)
    flow = _flow(instrument, as_of, config)
    packet = packet_build(instrument=instrument, account=account, config=config, bars=bars, snapshot=snapshot,
                          flow=flow)
    limits = risk_limits_for(config)
    positions = positions_open(account)     # read once for the equity, the gates and the sizing
    equity = equity_now(account=account, now=now, positions=positions)
    bar = pipeline.decide_bar(
        packet, flow_line=flow_line(flow) if flow is not None else None,
        state=risk_state_load(account=account, instrument=instrument, now=now, limits=limits,
                              atr_percentile=snapshot.extra.get("atr_percentile"), equity=equity,
                              positions=positions),
        limits=limits, trade=trade_limits(config), market=_market_rules(instrument),
        account=_account_facts(account, config, now, equity, positions), now=now,
        overridden=gate_overrides_active(now=now))
    signal, gates, sizing, routed = bar.signal, list(bar.gates), bar.sizing, bar.route
    mode, reason = bar.mode, bar.reason
    if bar.breaker_until_ms is not None:
        _trip_breaker(config, gates, now)
    features = snapshot.features()      # stored and published: made once
    # On the paper venue the entry is a computation on this database, not a network call: it goes in
    # the decision's transaction (one commit, one audit append). A venue entry is sent after the
    # decision commits, as every venue order is sent only once committed.
    enters_here = routed.outcome == Decision.Outcome.EXECUTED and account.broker == Account.Broker.PAPER
    failure = None
    try:
        with transaction.atomic(), audit_batched() as audit:
            decision = Decision.objects.create(
                instrument=instrument, timeframe=config.decision_timeframe, as_of=as_of,
                snapshot=snapshot_record(instrument=instrument, timeframe=config.decision_timeframe,
                                         snapshot=snapshot, features=features),
                action=signal.action, mode=mode, outcome=routed.outcome, approval=routed.approval,
                entry_price=signal.entry_price, stop_price=signal.stop_price, target_price=signal.target_price,
                quantity=(sizing.quantity or None) if sizing else None,
                reason=reason[:255], rationale=list(signal.rationale), gates=[g.as_dict() for g in gates],
                config_version=config.version,
                take_profits=[{"price": str(p), "share": str(share)} for p, share in signal.take_profits],
                **_packet_fields(packet, signal, sizing, as_of, config),
            )
            decision_audit(decision, now=now, audit=audit)
            _publish(instrument, snapshot, flow, features)
            if enters_here:
                failure = _execute_in_transaction(decision, config, now, account, audit)
    except IntegrityError:  # another worker decided this bar first
        return Decision.objects.get(instrument=instrument, timeframe=config.decision_timeframe, as_of=as_of)
    if failure is not None:
        raise failure       # the decision is kept; its entry was rolled back
    if decision.outcome == Decision.Outcome.EXECUTED and not enters_here:
        decision_execute(decision=decision, config=config, now=now, account=account)
    broadcast_on_commit("decision", decision_payload(decision))
    broadcast_on_commit("gates", gates_payload(decision))
    return decision


def _execute_in_transaction(decision: Decision, config: TradingConfig, now: datetime, account: Account,
                            audit: AuditBatch) -> Exception | None:
    """Enter the decision's paper trade inside its transaction; return what the entry raised, if anything.

    Under a savepoint: an entry that fails leaves no order, fill, position or record of its own,
    and the decision is kept, as it was when it committed before its entry.
    """
    try:
        with transaction.atomic(), audit_batched(join=audit) as joined:
            decision_execute(decision=decision, config=config, now=now, account=account, audit=joined)
    except Exception as exc:    # noqa: BLE001 - raised again once the decision has committed
        return exc
    return None


def _pending_and_existing_read(*, now: datetime, instrument_id: int, timeframe: str, as_of: datetime) -> QuerySet:
    this_bar = Decision.objects.filter(instrument_id=instrument_id, timeframe=timeframe, as_of=as_of).order_by()
    # The part a row came from is its first column: the bar's own decision can also be a due one.
    return decisions_due(now=now).annotate(part=Value(0, output_field=IntegerField())).values_list(
        "part", "pk", "as_of").union(this_bar.annotate(part=Value(1, output_field=IntegerField()))
                                     .values_list("part", "pk", "as_of"), all=True)


def _pending_and_existing(instrument: Instrument, timeframe: str, as_of: datetime,
                          now: datetime) -> tuple[list[tuple[int, datetime]], int | None]:
    """Return the pending decisions due to expire at `now` and the pk of the bar's decision if made, in one query."""
    due, existing = [], None
    for part, pk, when in rows_compiled("due and this bar's decisions", Decision, _pending_and_existing_read,
                                        now=now, instrument_id=instrument.pk, timeframe=timeframe, as_of=as_of):
        if part == 0:
            due.append((pk, when))
        else:
            existing = pk
    return due, existing


def _packet_fields(packet: Packet, signal: Signal, sizing, as_of: datetime, config: TradingConfig) -> dict:
    zone = packet.entry_zone if signal.action != "FLAT" else None
    parts = packet.parts()
    if sizing is not None:
        parts["sizing"] = {"binding": sizing.binding, "reason": sizing.reason, "by_risk": str(sizing.by_risk),
                           "by_leverage": str(sizing.by_leverage), "by_margin": str(sizing.by_margin),
                           "margin_usdt": str(sizing.margin_usdt)}
    return {
        "entry_zone_low": zone[0] if zone else None, "entry_zone_high": zone[1] if zone else None,
        "risk_level": packet.risk_level, "confidence": packet.confidence,
        "success_probability": packet.success_probability, "probability_source": packet.probability_source[:64],
        "edge_long": packet.edge.edge_long if packet.edge else None,
        "edge_short": packet.edge.edge_short if packet.edge else None,
        "score_parts": parts, "expires_at": router.expires_at(as_of, config.decision_ttl_minutes),
    }


def calibrator_load(*, account: Account, limit: int = 500) -> Calibrator:
    """Return the calibrator fitted on the account's latest closed trades (confidence, won)."""
    def latest(*, account_id: int) -> QuerySet:
        return (Position.objects.filter(account_id=account_id, status=Position.Status.CLOSED,
                                        decision__confidence__isnull=False)
                .order_by("-closed_at").values_list("decision__confidence", "realized_pnl_usdt")[:limit])

    rows = rows_compiled(("calibration trades", limit), Position, latest, account_id=account.pk)
    return Calibrator.fit([(confidence, pnl > 0) for confidence, pnl in rows])


def packet_build(*, instrument: Instrument, account: Account, config: TradingConfig, bars, snapshot: MarketSnapshot,
                 flow: Flow | None) -> Packet:
    """Return the decision packet of the last bar from the stored flow, sentiment and closed trades."""
    view = flow_view(flow) if flow is not None else None
    readings = sentiment_by_source(flow)
    ctx = PacketContext(flow=view, crowd_bias=flow.crowd_bias if flow else None,
                        trap_index=flow.trap_index if flow else None, news=readings.get("news"),
                        whale=readings.get("whale"), onchain=readings.get("onchain"),
                        calibrator=calibrator_load(account=account), tick_size=instrument.tick_size)
    params = packet_params(config)
    return build_packet(bars, snapshot, ctx, params, decide(snapshot, params.rules, view))


def gates_recheck(*, decision: Decision, config: TradingConfig, now: datetime):
    """Return (first blocking gate or None, the latest price) for approving `decision` at `now`."""
    account = execution.account_ensure(name=account_name_for(decision.instrument.data_source))
    signal = Signal(decision.action, decision.reason, (), decision.entry_price, decision.stop_price,
                    decision.target_price, tuple((Decimal(t["price"]), Decimal(t["share"]))
                                                 for t in decision.take_profits))
    snapshot = decision.snapshot
    atr_percentile = (snapshot.features or {}).get("atr_percentile") if snapshot is not None else None
    gates = _gates(config=config, account=account, instrument=decision.instrument, now=now, signal=signal,
                   atr_percentile=atr_percentile)
    price = last_close(instrument=decision.instrument, now=now)
    return first_block(gates), (price[0] if price else None)


def decision_execute(*, decision: Decision, config: TradingConfig, now: datetime, account: Account | None = None,
                     reference_price: Decimal | None = None, audit: AuditBatch | None = None) -> None:
    """Send an executed-outcome decision to the broker unless it expired; record why when nothing was placed.

    `audit`: the batch of the decision's own transaction (a paper entry made inside it): the
    records of the entry, or of why there is none, are queued there.
    """
    account = account or execution.account_ensure(name=account_name_for(decision.instrument.data_source))
    enabled, why = trading_enabled(account)
    if not enabled:  # a venue account trades only after a clean (or acknowledged) start-up reconciliation
        _not_placed(decision, f"not executed: {why}", now, Decision.Outcome.SKIPPED, audit)
        return
    if router.is_expired(decision.expires_at, now):
        _not_placed(decision, f"expired at {decision.expires_at:%Y-%m-%d %H:%M} UTC; not executed", now,
                    Decision.Outcome.EXPIRED, audit)
        return
    try:
        position = execution.position_open(decision=decision, account=account,
                                           broker=execution.broker_for(account, config, now=now), now=now,
                                           reference_price=reference_price,
                                           trail_atr_multiple=config.trail_atr_multiple,
                                           order_type=config.entry_order_type, config=config, audit=audit)
    except OrderRejected as exc:
        position = None
        decision.reason = f"order rejected: {exc}"[:255]
    # A resting limit entry is working, not skipped: the execution loop chases it and opens the position.
    if position is None and not execution.entry_working(decision, account):
        _not_placed(decision, decision.reason, now, Decision.Outcome.SKIPPED, audit)


def _not_placed(decision: Decision, reason: str, now: datetime, outcome: str, audit: AuditBatch | None = None) -> None:
    with transaction.atomic(savepoint=False):
        decision.outcome, decision.reason = outcome, reason[:255]
        decision.save(update_fields=["outcome", "reason"])
        body = {"action": "not_placed", "reason": decision.reason}
        if audit is not None:
            audit.add(kind=AuditRecord.Kind.ORDER, actor=ENGINE, subject=f"decision:{decision.pk}", body=body, now=now)
        else:
            audit_append(kind=AuditRecord.Kind.ORDER, actor=ENGINE, subject=f"decision:{decision.pk}", body=body,
                         now=now)


def _bars(instrument: Instrument, config: TradingConfig, now: datetime):
    bars = bars_load(instrument=instrument, timeframe=config.decision_timeframe, now=now, count=config.history_bars)
    needed = min_bars(snapshot_params(config))
    if len(bars) < needed:
        logger.info("%s: %d bars, need %d; no analysis", instrument, len(bars), needed)
        return None
    return bars


def snapshot_build(*, instrument: Instrument, config: TradingConfig, now: datetime, bars) -> MarketSnapshot:
    """Return the snapshot of `bars` with its point-in-time context (higher timeframes, book)."""
    context = context_load(instrument=instrument, timeframe=config.decision_timeframe, now=now,
                           structure_timeframes=tuple(config.structure_timeframe_list()))
    return build_snapshot(bars, snapshot_params(config), context)


def analytics_record(*, instrument: Instrument, now: datetime) -> tuple[Snapshot, Flow] | None:
    """Store the snapshot of the last closed bar and the flow as of `now`, together or not at all."""
    config = trading_config_get()
    bars = _bars(instrument, config, now)
    if bars is None:
        return None
    gap = None if config.allow_data_gaps else window_gap(instrument, config.decision_timeframe, bars)
    if gap is not None:
        raise SeriesGapError(gap)
    snapshot = snapshot_build(instrument=instrument, config=config, now=now, bars=bars)
    with transaction.atomic():  # both or neither: a failed flow leaves no lone snapshot behind
        row = snapshot_record(instrument=instrument, timeframe=config.decision_timeframe, snapshot=snapshot)
        flow = flow_run(instrument=instrument, as_of=now, candle_timeframe=config.decision_timeframe,
                        allow_gaps=config.allow_data_gaps)
        _publish(instrument, snapshot, flow)
    return row, flow


def _publish(instrument: Instrument, snapshot: MarketSnapshot, flow: Flow | None,
             features: dict | None = None) -> None:
    features = features if features is not None else snapshot.features()
    broadcast_on_commit("snapshot", {"instrument": str(instrument), **features})
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


def _flow(instrument: Instrument, as_of: datetime, config: TradingConfig) -> Flow | None:
    """Return the flow view as of the decision's bar; a failure is logged and does not stop the cycle."""
    try:
        return flow_run(instrument=instrument, as_of=as_of, candle_timeframe=config.decision_timeframe,
                        allow_gaps=config.allow_data_gaps)
    except Exception:  # flow_run is atomic: nothing half-saved; the next cycle runs it again
        logger.exception("flow for %s as of %s failed", instrument, as_of)
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
    broadcast_on_commit("gates", gates_payload(decision))
    return decision


def decision_payload(decision: Decision) -> dict:
    """Return the JSON shape the dashboard shows for a decision."""
    return {"id": decision.pk, "instrument": str(decision.instrument), "as_of": decision.as_of,
            "action": decision.action, "outcome": decision.outcome, "mode": decision.mode,
            "reason": decision.reason, "rationale": decision.rationale, "gates": decision.gates,
            "entry_price": decision.entry_price, "stop_price": decision.stop_price,
            "target_price": decision.target_price, "quantity": decision.quantity}


def gates_payload(decision: Decision) -> dict:
    """Return the JSON shape the dashboard shows for a decision's gate verdicts."""
    blocked = next((g["name"] for g in decision.gates if g.get("verdict") == "block"), None)
    return {"decision_id": decision.pk, "instrument": str(decision.instrument), "as_of": decision.as_of,
            "outcome": decision.outcome, "blocked_by": blocked, "gates": decision.gates}


def flow_payload(flow: Flow) -> dict:
    """Return the JSON shape of a flow view (the btc_flow.json export uses it too)."""
    return {"instrument": str(flow.instrument), "as_of": flow.as_of, "crowd_bias": flow.crowd_bias,
            "trap_index": flow.trap_index, "global_risk_score": flow.global_risk_score,
            "warnings": flow.warnings, "parts": flow.parts, "inputs": flow.inputs}


def decision_audit(decision: Decision, *, now: datetime, audit: AuditBatch | None = None) -> None:
    """Append the decision and its gate verdicts to the audit chain (inside the caller's transaction).

    With `audit` (the batch of the decision's transaction) they are queued there instead.
    """
    subject = f"decision:{decision.pk}"
    blocked = next((g["name"] for g in decision.gates if g.get("verdict") == "block"), None)
    records = [
        (AuditRecord.Kind.DECISION, ENGINE, subject, {
            "instrument": str(decision.instrument), "timeframe": decision.timeframe, "as_of": decision.as_of,
            "action": decision.action, "mode": decision.mode, "outcome": decision.outcome,
            "reason": decision.reason, "entry_price": decision.entry_price, "stop_price": decision.stop_price,
            "target_price": decision.target_price, "take_profits": decision.take_profits,
            "quantity": decision.quantity, "rationale": decision.rationale,
            "config_version": decision.config_version}),
        (AuditRecord.Kind.GATE, ENGINE, subject, {"gates": decision.gates, "blocked_by": blocked}),
    ]
    if audit is None:
        audit_extend(records, now=now)
        return
    for kind, actor, subject, body in records:
        audit.add(kind=kind, actor=actor, subject=subject, body=body, now=now)