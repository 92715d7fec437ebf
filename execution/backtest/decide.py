"""The decision of one symbol at one bar close: decisions.services.decision_run over the in-memory world.

`build_snapshot`, `build_flow`, `build_packet` and `decisions.pipeline.decide_bar` (tick grid, the 18
gates, circuit breaker, sizing, routing) run as live; the market reads come from `world.Market` and
the account facts from `ledger.Ledger`. A quiet bar (`quiet.QuietBars`: the rule is FLAT without a
snapshot) gets the same record without the analysis; its gates still run whenever they could trip
the circuit breaker (see `_decide_quiet`). HYBRID decisions waiting for approval are answered by the
run's `ApprovalPolicy` at once (see `_approve`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from decisions import router
from decisions.cycle import flow_line, window_gap
from decisions.engine.packet import Context as PacketContext
from decisions.engine.packet import Packet, build_packet
from decisions.engine.rules import Signal, decide
from decisions.params import flow_view, sentiment_by_source
from decisions.pipeline import SAFE, AccountFacts, MarketRules, decide_bar
from decisions.risk.wall import day_bounds
from execution.backtest.analysis import FlowRow, analysis
from execution.backtest.entries import decision_execute
from execution.backtest.records import DecisionRecord
from execution.backtest.state import Run, SymbolRun, dt


@dataclass(frozen=True, slots=True)
class ApprovalPolicy:
    """How a backtest answers HYBRID decisions that wait for an operator.

    "approve_all" approves each one, "reject_all" rejects each one, "min_confidence" approves those
    whose confidence is at least `min_confidence` and rejects the rest. The answer comes at the
    decision's own close, as `decisions.approvals.decision_approve` would: the entry is priced at the
    last close and refused (the decision expires) when that price has left the entry zone; the gates
    the approval re-checks are the ones the decision has just passed at the same moment.
    """

    rule: str = "reject_all"
    min_confidence: float | None = None

    def __post_init__(self):
        if self.rule not in ("approve_all", "reject_all", "min_confidence"):
            raise ValueError(f"approval rule {self.rule!r}: choose approve_all, reject_all or min_confidence")
        if (self.rule == "min_confidence") != (self.min_confidence is not None):
            raise ValueError("min_confidence is set with the min_confidence rule, and only with it")

    def approves(self, confidence: float | None) -> bool:
        if self.rule == "min_confidence":
            return confidence is not None and confidence >= self.min_confidence
        return self.rule == "approve_all"


def decision_step(run: Run, sym: SymbolRun, now_ms: int) -> None:
    """Decide the last closed bar of `sym` once (decision_run); quiet bars take the short way."""
    config = run.config
    stored = sym.market.candles.get(config.decision_timeframe)
    end = stored.closed_until(now_ms) if stored is not None else 0
    if min(end, config.history_bars) < run.min_bars:
        return
    as_of_ms = int(stored.open_time_ms[end - 1]) + stored.step_ms
    if as_of_ms in sym.decided:
        return
    sym.decided.add(as_of_ms)
    if (run.skip_quiet_bars and sym.quiet is not None and as_of_ms == now_ms
            and (config.allow_data_gaps or sym.quiet.window_complete(end))):
        reason = sym.quiet.reason(end)
        if reason is not None:
            _decide_quiet(run, sym, now_ms, reason)
            return
    _decide_full(run, sym, now_ms)


def _equity(run: Run, now_ms: int) -> Decimal:
    return run.account_balance_seen + run.ledger.unrealized_pnl(run.marks(now_ms))


def _market_rules(sym: SymbolRun) -> MarketRules:
    return MarketRules(sym.spec.exchange_symbol, sym.spec.tick_size, sym.spec.step_size, sym.spec.min_notional)


def _bar(run: Run, sym: SymbolRun, packet: Packet, now_ms: int, *, flow_text: str | None,
         atr_percentile: float | None, volume_24h):
    now, equity = dt(now_ms), _equity(run, now_ms)
    bar = decide_bar(
        packet, flow_line=flow_text,
        state=run.ledger.risk_state(now=now, limits=run.limits, equity=equity, atr_percentile=atr_percentile,
                                    volume_24h_usdt=volume_24h),
        limits=run.limits, trade=replace(run.trade, safe_until_ms=run.safe_until_ms), market=_market_rules(sym),
        account=AccountFacts(equity, run.ledger.margin_in_use(run.config.max_leverage),
                             len(run.ledger.open_positions())),
        now=now, overridden=run.overridden(now_ms))
    if bar.breaker_until_ms is not None:
        run.safe_until_ms = max(bar.breaker_until_ms, run.safe_until_ms or 0)
    return bar


def _decide_quiet(run: Run, sym: SymbolRun, now_ms: int, reason: str) -> None:
    """Record the rule's FLAT decision; judge the gates only when they could trip the breaker.

    A FLAT bar's gates change nothing but the circuit breaker (a newly blocking daily loss). With no
    open position, that verdict moves only with a booking, a new local day, an override or the
    breaker's own hold, so between those the last verdict stands; with a position open the
    equity moves every bar and the gates run every bar.
    """
    key = (run.ledger.version, day_bounds(now_ms, run.limits)[0], tuple(run.overridden(now_ms)), run.safe_until_ms)
    if run.ledger.open_positions() or key != sym.gates_key:
        packet = Packet(Signal("FLAT", reason), (), None)
        mode = _bar(run, sym, packet, now_ms, flow_text=None, atr_percentile=None, volume_24h=None).mode
        sym.gates_key = (run.ledger.version, key[1], key[2], run.safe_until_ms)
    else:
        safe = run.safe_until_ms is not None and now_ms < run.safe_until_ms
        mode = SAFE if safe else run.trade.configured_mode
    run.decisions.append(DecisionRecord(dt(now_ms), "FLAT", router.FLAT, mode, reason[:255], None, None, None, (),
                                        None, None, None, None, sym.spec.exchange_symbol))


def _packet(run: Run, sym: SymbolRun, bars, snapshot, flow: FlowRow | None) -> Packet:
    view = flow_view(flow) if flow is not None else None
    readings = sentiment_by_source(flow)
    ctx = PacketContext(flow=view, crowd_bias=flow.crowd_bias if flow else None,
                        trap_index=flow.trap_index if flow else None, news=readings.get("news"),
                        whale=readings.get("whale"), onchain=readings.get("onchain"),
                        calibrator=run.ledger.calibrator(), tick_size=sym.spec.tick_size)
    return build_packet(bars, snapshot, ctx, run.packet_params, decide(snapshot, run.packet_params.rules, view))


def _decide_full(run: Run, sym: SymbolRun, now_ms: int) -> None:
    config, market = run.config, sym.market
    bars = market.bars_load(timeframe=config.decision_timeframe, now_ms=now_ms, count=config.history_bars)
    as_of = dt(int(bars.open_time_ms[-1]) + bars.timeframe_ms)
    symbol = sym.spec.exchange_symbol
    end = market.candles[config.decision_timeframe].closed_until(now_ms)
    complete = config.allow_data_gaps or (sym.quiet is not None and sym.quiet.window_complete(end))
    gap = None if complete else window_gap(sym.spec, config.decision_timeframe, bars)
    if gap is not None:
        run.decisions.append(DecisionRecord(as_of, "FLAT", "blocked", config.mode, f"data gap: {gap}"[:255],
                                            None, None, None, (), None, None, None, None, symbol))
        return
    ahead = run.analyses.take((symbol, now_ms)) if run.analyses is not None else None
    snapshot, flow = ahead if ahead is not None else analysis(run, sym, now_ms, bars)
    packet = _packet(run, sym, bars, snapshot, flow)
    bar = _bar(run, sym, packet, now_ms, flow_text=flow_line(flow) if flow is not None else None,
               atr_percentile=snapshot.extra.get("atr_percentile"), volume_24h=market.volume_24h_usdt(now_ms))
    signal, sizing = bar.signal, bar.sizing
    record = DecisionRecord(
        as_of, signal.action, bar.route.outcome, bar.mode, bar.reason[:255], signal.entry_price, signal.stop_price,
        signal.target_price, tuple(signal.take_profits), (sizing.quantity or None) if sizing else None,
        packet.confidence, packet.edge.edge_long if packet.edge else None,
        packet.edge.edge_short if packet.edge else None, symbol, bar.route.approval,
        packet.entry_zone if signal.action != "FLAT" else None)
    if record.outcome == router.EXECUTED:
        record = decision_execute(run, sym, record, now_ms, snapshot.atr, record.entry_price)
    elif record.outcome == router.PENDING:
        record = _approve(run, sym, record, now_ms, snapshot.atr)
    run.decisions.append(record)


def _approve(run: Run, sym: SymbolRun, record: DecisionRecord, now_ms: int, atr: float) -> DecisionRecord:
    """Answer a HYBRID decision by the run's policy (decisions.approvals.decision_approve / decision_reject)."""
    if not run.approvals.approves(record.confidence):
        return replace(record, outcome=router.REJECTED, approval="rejected")
    price = sym.market.last_close(now_ms)
    low, high = record.entry_zone or (None, None)
    if price is None or not router.in_entry_zone(price, low, high):
        return replace(record, outcome=router.EXPIRED, approval="expired")    # refused: it waits, then expires
    approved = replace(record, outcome=router.EXECUTED, approval="approved")
    return decision_execute(run, sym, approved, now_ms, atr, price)

