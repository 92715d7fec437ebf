"""The backtester: the live cycle's steps over the in-memory world, on a simulated clock.

Each bar close is one cycle in the order of `execution.engine.cycle_run`: the open position's
exits on the bars since the last check (`ladder_step`, filled by `PaperBroker.fill_at`), then
the decision (`build_snapshot`, `build_flow`, `build_packet`, `decide_bar`), then the entry
(`apply_precision`, `PaperBroker.submit`) and the equity point. Only the reads differ: the world
(`execution.backtest.world`) answers them from candle arrays instead of the database.

What the live path has and this does not (yet): funding (no stored rates: the live path books
none either), limit entries with chase, HYBRID approvals and expiry of pending decisions, gate
overrides, order books, derivatives and manual inputs.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace

from analytics.flow import DEFAULT_PARAMS, build_flow
from analytics.services import without_gappy_series
from analytics.snapshot import build_snapshot, min_bars
from decisions import router
from decisions.engine.calibration import Calibrator
from decisions.engine.packet import Context as PacketContext
from decisions.engine.packet import build_packet
from decisions.engine.rules import decide
from decisions.params import flow_view, packet_params, sentiment_by_source, snapshot_params
from decisions.pipeline import AccountFacts, MarketRules, decide_bar
from decisions.risk_state import risk_limits_for
from decisions.services import flow_line, trade_limits, window_gap
from execution.backtest.world import Candles, InstrumentSpec, Ledger, LedgerOrder, Market, SimPosition
from execution.brokers.paper import LadderPosition, PaperBroker, Target, ladder_step, position_pnl
from execution.brokers.paper_model import liquidation_clearance_fee
from execution.entries import trail_distance
from execution.oms import OrderIntent, OrderRejected, Precision, apply_precision, make_intent_id
from execution.paper_venue import position_liquidation_price
from market.timeframes import timeframe_ms

UNREALIZED_PLACES = Decimal("0.00000001")     # execution.services.equity_record


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    as_of: datetime
    action: str
    outcome: str
    mode: str
    reason: str
    entry_price: Decimal | None
    stop_price: Decimal | None
    target_price: Decimal | None
    take_profits: tuple[tuple[Decimal, Decimal], ...]    # (price, share)
    quantity: Decimal | None
    confidence: float | None
    edge_long: float | None
    edge_short: float | None


@dataclass(frozen=True, slots=True)
class OrderRecord:
    client_order_id: str
    intent_id: str
    leg: str
    side: str
    type: str
    quantity: Decimal
    average_price: Decimal | None
    status: str
    reduce_only: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class FillRecord:
    client_order_id: str
    ts: datetime
    price: Decimal
    quantity: Decimal
    fee_usdt: Decimal
    liquidity: str


@dataclass(frozen=True, slots=True)
class EquityRecord:
    ts: datetime
    balance_usdt: Decimal
    unrealized_pnl_usdt: Decimal
    equity_usdt: Decimal


@dataclass(frozen=True, slots=True)
class BacktestResult:
    decisions: tuple[DecisionRecord, ...]
    orders: tuple[OrderRecord, ...]
    fills: tuple[FillRecord, ...]
    trades: tuple[SimPosition, ...]       # every position, closed or still open, in opening order
    equity: tuple[EquityRecord, ...]


@dataclass(frozen=True, slots=True)
class FlowRow:
    """The fields of a stored analytics.models.Flow the decision reads, after the JSON round trip."""

    crowd_bias: float
    trap_index: float
    global_risk_score: float
    warnings: list
    parts: dict


@dataclass
class _Run:
    config: object                      # decisions.models.TradingConfig (read only)
    spec: InstrumentSpec
    market: Market
    ledger: Ledger
    account_name: str
    next_position_id: int
    broker: PaperBroker = field(init=False)
    safe_until_ms: int | None = None    # the circuit breaker's hold (live: TradingConfig.safe_until)
    decided: set = field(default_factory=set)
    decisions: list = field(default_factory=list)
    orders: list = field(default_factory=list)
    fills: list = field(default_factory=list)
    equity: list = field(default_factory=list)

    def __post_init__(self):
        self.broker = PaperBroker(taker_fee_fraction=self.config.taker_fee_fraction,
                                  slippage_bps=self.config.slippage_bps,
                                  maker_fee_fraction=self.config.maker_fee_fraction)


def backtest_run(*, candles: dict[str, Candles], instrument: InstrumentSpec, config, starting_equity: Decimal,
                 start: datetime, end: datetime | None = None, account_name: str = "paper",
                 first_position_id: int = 1,
                 progress: Callable[[int, int], None] | None = None) -> BacktestResult:
    """Return the decisions, orders, fills, trades and equity of the live cycle run at every bar close.

    `candles` maps timeframes to their arrays; the decision timeframe's must be there, finer ones
    (1m, 5m) make the exits and structure views finer as in the live path. The clock stops at each
    close of the decision timeframe from `start` to `end` (default: the last bar's close), aware
    UTC. `config` is a TradingConfig (only read). `account_name` and `first_position_id` give the
    intent ids the live account would (entries hash the account name, exits the position id).
    `progress(done, total)` is called after each bar close.
    """
    run = _Run(config, instrument, Market(candles), Ledger(starting_equity, starting_equity), account_name,
               first_position_id)
    series = candles[config.decision_timeframe]
    step = series.step_ms
    last = _ms(end) if end is not None else int(series.open_time_ms[-1]) + step
    closes = range(_ms(start), last + 1, step)
    for done, now_ms in enumerate(closes, 1):
        _cycle(run, _dt(now_ms))
        if progress is not None:
            progress(done, len(closes))
    return BacktestResult(tuple(run.decisions), tuple(run.orders), tuple(run.fills), tuple(run.ledger.positions),
                          tuple(run.equity))


def _cycle(run: _Run, now: datetime) -> None:
    # As the live cycle: exits first, then the decision sizes from the balance after them.
    _exits(run, now)
    _decide(run, now, run.ledger.balance_usdt)
    _equity(run, now)


# Exits: execution.services.positions_check_exits and position_reduce.

def _ladder(p: SimPosition) -> LadderPosition:
    targets = tuple(Target(Decimal(str(t["price"])), Decimal(str(t["share"])), bool(t.get("filled")))
                    for t in p.take_profits) or (Target(p.target_price, Decimal(1)),)
    return LadderPosition(p.side, p.entry_price, p.initial_quantity or p.quantity, p.quantity, p.stop_price, targets,
                          p.trail_distance or None, p.best_price)


def _exits(run: _Run, now: datetime) -> None:
    position = next(iter(run.ledger.open_positions()), None)
    if position is None:
        return
    ladder = _ladder(position)
    since = position.exits_checked_until_ms or position.opened_ms
    # No funding settles here: with no stored rates the live path books none either.
    for open_ms, bar_open, bar_high, bar_low in run.market.exit_bars(
            since_ms=since, now_ms=_ms(now), strictly_after=position.exits_checked_until_ms is not None):
        exits, ladder = ladder_step(ladder, bar_open, bar_high, bar_low, run.spec.step_size,
                                    breakeven_after_first=run.config.breakeven_after_tp1,
                                    tick_size=run.spec.tick_size, trigger_high=bar_high, trigger_low=bar_low,
                                    liquidation_price=position.liquidation_price)
        when_ms = max(open_ms, position.opened_ms)
        for exit_ in exits:
            _reduce(run, position, exit_, when_ms)
        if position.status == "closed":
            return
        position.stop_price, position.best_price = ladder.stop_price, ladder.best_price
        position.take_profits = [{"price": str(t.price), "share": str(t.share), "filled": t.filled}
                                 for t in ladder.targets]
        position.exits_checked_until_ms = open_ms


def _book(run: _Run, intent: OrderIntent, report, created_ms: int) -> tuple[Decimal, Decimal, Decimal]:
    """Record the order and its fills; return (filled quantity, average price, fees)."""
    filled = sum((f.quantity for f in report.fills), Decimal(0))
    average = sum((f.quantity * f.price for f in report.fills), Decimal(0)) / filled if filled else None
    fees = sum((f.fee_usdt for f in report.fills), Decimal(0))
    run.orders.append(OrderRecord(intent.client_order_id, intent.intent_id, intent.leg, intent.side, intent.type,
                                  intent.quantity, average, report.status, intent.reduce_only, _dt(created_ms)))
    run.fills.extend(FillRecord(f.client_order_id, _dt(f.ts_ms), f.price, f.quantity, f.fee_usdt, f.liquidity)
                     for f in report.fills)
    run.ledger.orders.append(LedgerOrder(created_ms, intent.quantity, average))
    run.ledger.fill_times_ms.extend(f.ts_ms for f in report.fills)
    return filled, average, fees


def _reduce(run: _Run, position: SimPosition, exit_, when_ms: int) -> None:
    side = "sell" if position.side == "LONG" else "buy"
    intent = OrderIntent(make_intent_id("exit", position.id), exit_.leg, run.spec.symbol, side, "market",
                         exit_.quantity, reduce_only=True)
    # A stop is a market order and slips; a take-profit is a resting limit and fills at its price.
    report = run.broker.fill_at(intent, exit_.price, when_ms, slip=exit_.reason == "stop",
                                tick_size=run.spec.tick_size)
    filled, average, exit_fee = _book(run, intent, report, when_ms)
    gross = position_pnl(position.side, filled, position.entry_price, average)
    position.quantity -= filled
    position.fees_usdt += exit_fee
    position.realized_pnl_usdt += gross - exit_fee
    if exit_.reason == "liquidation":
        clearance = liquidation_clearance_fee(filled, average, run.config.maintenance_margin_fraction)
        exit_fee += clearance
        position.fees_usdt += clearance
        position.realized_pnl_usdt -= clearance
    position.exit_price, position.exit_reason = average, exit_.leg
    if position.quantity <= 0:
        position.status, position.closed_ms = "closed", when_ms
        position.exit_reason = {"stop": "stop", "liquidation": "liquidation"}.get(exit_.reason, "target")
    run.ledger.balance_usdt += gross - exit_fee


# The decision: decisions.services.decision_run.

def _flow(run: _Run, as_of_ms: int) -> FlowRow | None:
    config = run.config
    inputs = run.market.flow_inputs(asset=run.spec.base, as_of_ms=as_of_ms, params=DEFAULT_PARAMS,
                                    candle_timeframe=config.decision_timeframe)
    gap_warnings = []
    if not config.allow_data_gaps:
        inputs, gap_warnings = without_gappy_series(inputs, timeframe_ms(config.decision_timeframe))
    flow = build_flow(inputs, DEFAULT_PARAMS, None)
    # Through JSON as the stored row's fields are, so the rule reads the same lists and floats.
    warnings, parts = json.loads(json.dumps([*flow.warnings_json(), *gap_warnings])), json.loads(
        json.dumps(flow.parts_json()))
    return FlowRow(flow.crowd_bias.value, flow.trap_index.value, flow.global_risk.value, warnings, parts)


def _decide(run: _Run, now: datetime, cycle_balance: Decimal) -> None:
    config, market, now_ms = run.config, run.market, _ms(now)
    bars = market.bars_load(timeframe=config.decision_timeframe, now_ms=now_ms, count=config.history_bars)
    if len(bars) < min_bars(snapshot_params(config)):
        return
    as_of = _dt(int(bars.open_time_ms[-1]) + bars.timeframe_ms)
    if as_of in run.decided:
        return
    run.decided.add(as_of)
    gap = None if config.allow_data_gaps else window_gap(run.spec, config.decision_timeframe, bars)
    if gap is not None:
        run.decisions.append(DecisionRecord(as_of, "FLAT", "blocked", config.mode, f"data gap: {gap}"[:255],
                                            None, None, None, (), None, None, None, None))
        return
    context = market.context_load(timeframe=config.decision_timeframe, now_ms=now_ms,
                                  structure_timeframes=tuple(config.structure_timeframe_list()))
    snapshot = build_snapshot(bars, snapshot_params(config), context)
    flow = _flow(run, _ms(as_of))
    packet = _packet(run, bars, snapshot, flow)
    limits = risk_limits_for(config)
    trade = trade_limits(config)
    if run.safe_until_ms is not None and (trade.safe_until_ms is None or run.safe_until_ms > trade.safe_until_ms):
        trade = replace(trade, safe_until_ms=run.safe_until_ms)
    mark = market.last_close(now_ms)
    equity = cycle_balance + run.ledger.unrealized_pnl(mark)
    atr_percentile = snapshot.extra.get("atr_percentile")
    bar = decide_bar(
        packet, flow_line=flow_line(flow) if flow is not None else None,
        state=run.ledger.risk_state(now=now, limits=limits, equity=equity, symbol=run.spec.exchange_symbol,
                                    atr_percentile=atr_percentile, volume_24h_usdt=market.volume_24h_usdt(now_ms)),
        limits=limits, trade=trade,
        market=MarketRules(run.spec.exchange_symbol, run.spec.tick_size, run.spec.step_size, run.spec.min_notional),
        account=AccountFacts(equity, run.ledger.margin_in_use(config.max_leverage), len(run.ledger.open_positions())),
        now=now, overridden={})
    if bar.breaker_until_ms is not None:
        run.safe_until_ms = max(bar.breaker_until_ms, run.safe_until_ms or 0)
    signal, sizing = bar.signal, bar.sizing
    record = DecisionRecord(
        as_of, signal.action, bar.route.outcome, bar.mode, bar.reason[:255], signal.entry_price, signal.stop_price,
        signal.target_price, tuple(signal.take_profits), (sizing.quantity or None) if sizing else None,
        packet.confidence, packet.edge.edge_long if packet.edge else None,
        packet.edge.edge_short if packet.edge else None)
    if record.outcome == "executed":
        record = _execute(run, record, now, snapshot.atr, cycle_balance)
    run.decisions.append(record)


def _packet(run: _Run, bars, snapshot, flow: FlowRow | None):
    view = flow_view(flow) if flow is not None else None
    readings = sentiment_by_source(flow)
    ctx = PacketContext(flow=view, crowd_bias=flow.crowd_bias if flow else None,
                        trap_index=flow.trap_index if flow else None, news=readings.get("news"),
                        whale=readings.get("whale"), onchain=readings.get("onchain"),
                        calibrator=Calibrator.fit(run.ledger.calibration_pairs()), tick_size=run.spec.tick_size)
    params = packet_params(run.config)
    return build_packet(bars, snapshot, ctx, params, decide(snapshot, params.rules, view))


# The entry: decisions.services.decision_execute -> execution.services.position_open (market entries).

def _execute(run: _Run, record: DecisionRecord, now: datetime, atr: float, cycle_balance: Decimal) -> DecisionRecord:
    config, spec = run.config, run.spec
    if router.is_expired(router.expires_at(record.as_of, config.decision_ttl_minutes), now):
        when = record.as_of + timedelta(minutes=config.decision_ttl_minutes)
        return replace(record, outcome="expired", reason=f"expired at {when:%Y-%m-%d %H:%M} UTC; not executed")
    side = "buy" if record.action == "LONG" else "sell"
    intent_id = make_intent_id(run.account_name, spec.instrument_id, config.decision_timeframe,
                               record.as_of.isoformat())
    intent = OrderIntent(intent_id, "entry", spec.symbol, side, "market", record.quantity)
    try:
        intent = apply_precision(intent, Precision(spec.tick_size, spec.step_size, spec.min_notional),
                                 record.entry_price)
    except OrderRejected as exc:
        return replace(record, outcome="skipped", reason=f"order rejected: {exc}"[:255])
    report = run.broker.submit(intent, reference_price=record.entry_price, ts_ms=_ms(now), tick_size=spec.tick_size)
    quantity, price, fee = _book(run, intent, report, _ms(now))
    if quantity <= 0:
        return replace(record, outcome="skipped")
    targets = [{"price": str(p), "share": str(s)} for p, s in record.take_profits] or \
        [{"price": str(record.target_price), "share": "1"}]
    # The live helper reads the decision's snapshot ATR and the instrument's tick from its rows.
    trail = trail_distance(SimpleNamespace(snapshot=SimpleNamespace(atr=atr),
                                            instrument=SimpleNamespace(tick_size=spec.tick_size)),
                            config.trail_atr_multiple)
    position = SimPosition(run.next_position_id, _ms(record.as_of), record.confidence, record.action, price,
                           quantity, quantity, record.stop_price, record.target_price,
                           [{**t, "filled": False} for t in targets], trail, _ms(now), fee, -fee)
    run.next_position_id += 1
    run.ledger.balance_usdt -= fee
    position.liquidation_price = position_liquidation_price(
        SimpleNamespace(side=position.side, entry_price=price, quantity=quantity,
                        instrument=SimpleNamespace(tick_size=spec.tick_size)),
        SimpleNamespace(balance_usdt=cycle_balance), config)
    run.ledger.positions.append(position)
    return record


def _equity(run: _Run, now: datetime) -> None:
    ledger = run.ledger
    unrealized = ledger.unrealized_pnl(run.market.last_close(_ms(now))).quantize(UNREALIZED_PLACES)
    point = EquityRecord(now, ledger.balance_usdt, unrealized, ledger.balance_usdt + unrealized)
    ledger.equity_points.append((_ms(now), point.equity_usdt))
    run.equity.append(point)
