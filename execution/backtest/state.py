"""The state of one backtest run: its symbols, the shared account, the order book and what it records.

The engine's steps (`exits`, `entries`, `decide`) read and write this state; `book` records an order
and its fills the way `execution.orders.order_create_pending` + `order_apply_report` store them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal

from decisions.cycle import trade_limits
from decisions.risk_state import risk_limits_for
from execution.backtest.ledger import Ledger, LedgerOrder, stored
from execution.backtest.quiet import QuietBars
from execution.backtest.records import DecisionRecord, FillRecord, FundingRecord, OrderRecord
from execution.backtest.world import InstrumentSpec, Market
from execution.brokers.base import ExecutionReport
from execution.brokers.paper import PaperBroker
from execution.oms import OrderIntent
from execution.order_states import IllegalTransition, transition

ZERO = Decimal(0)


def dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def ms_of(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class GateOverrideSpec:
    """A stored operator override of one gate (decisions.models.GateOverride), as a backtest reads it.

    Active from `created_ms` until `until_ms`, or until `revoked_ms` when it was revoked earlier:
    the history of the override, where the live path reads only whether it holds now.
    """

    gate: str
    created_ms: int
    until_ms: int
    created_by: str
    reason: str
    revoked_ms: int | None = None

    def active(self, now_ms: int) -> bool:
        return self.created_ms <= now_ms < self.until_ms and (self.revoked_ms is None or now_ms < self.revoked_ms)

    @property
    def note(self) -> str:
        """Return the note the live path shows (decisions.overrides.gate_overrides_active)."""
        return f"overridden by {self.created_by} until {dt(self.until_ms):%Y-%m-%d %H:%M} UTC ({self.reason})"


@dataclass(slots=True)
class SimOrder:
    """One order of the run as its row would end up (execution.models.Order)."""

    client_order_id: str
    intent_id: str
    leg: str
    side: str
    type: str
    quantity: Decimal
    price: Decimal | None
    reduce_only: bool
    created_ms: int
    symbol: str
    status: str = "submitted"
    filled_quantity: Decimal = ZERO
    notional: Decimal = ZERO                # sum of fill quantity x price
    fees_usdt: Decimal = ZERO
    average_price: Decimal | None = None
    decision: DecisionRecord | None = None  # the entry's decision (the live row's decision_id)
    last_checked_ms: int | None = None      # a resting limit's match progress (Order.last_checked_at)
    rate: LedgerOrder | None = None

    def record(self) -> OrderRecord:
        return OrderRecord(self.client_order_id, self.intent_id, self.leg, self.side, self.type, self.quantity,
                           stored(self.average_price), self.status, self.reduce_only, dt(self.created_ms),
                           self.symbol, self.price, self.filled_quantity)


@dataclass
class SymbolRun:
    """One instrument of the run: its filters, its market reads and its quiet bars."""

    spec: InstrumentSpec
    market: Market
    quiet: QuietBars | None = None
    decided: set = field(default_factory=set)
    funding_booked: set = field(default_factory=set)      # (symbol, funding ms) settled, as FundingPayment is unique
    funding_missing: set = field(default_factory=set)     # funding ms logged as missing
    gates_key: tuple | None = None                        # what the last FLAT bar's gates were judged on


@dataclass
class Run:
    config: object                      # decisions.models.TradingConfig (read only)
    symbols: list[SymbolRun]
    ledger: Ledger
    account_name: str
    next_position_id: int
    approvals: object                   # engine.ApprovalPolicy
    overrides: tuple[GateOverrideSpec, ...] = ()
    skip_quiet_bars: bool = True
    broker: PaperBroker = field(init=False)
    safe_until_ms: int | None = None    # the circuit breaker's hold (live: TradingConfig.safe_until)
    account_balance_seen: Decimal = ZERO    # the cycle's Account object (refreshed after each symbol's exits)
    orders: list[SimOrder] = field(default_factory=list)
    orders_by_id: dict[str, SimOrder] = field(default_factory=dict)
    analyses: object = None                            # analysis.AnalysesAhead when workers analyse ahead
    plans: dict = field(default_factory=dict)          # (symbol, as_of) -> entries.EntryPlan with a resting order
    fills: list[FillRecord] = field(default_factory=list)
    funding: list[FundingRecord] = field(default_factory=list)
    decisions: list = field(default_factory=list)
    equity: list = field(default_factory=list)
    last_now_ms: int | None = None

    def __post_init__(self):
        config = self.config
        self.broker = PaperBroker(taker_fee_fraction=config.taker_fee_fraction, slippage_bps=config.slippage_bps,
                                  maker_fee_fraction=config.maker_fee_fraction)
        self.limits = risk_limits_for(config)
        self.trade = trade_limits(config)
        self.safe_until_ms = self.trade.safe_until_ms
        self.ledger.rate_window_ms = self.limits.rate_window_minutes * 60_000

    def overridden(self, now_ms: int) -> dict[str, str]:
        """Return {gate: note} of the overrides holding at `now_ms`, ordered by their end (as live)."""
        active = sorted((o for o in self.overrides if o.active(now_ms)), key=lambda o: o.until_ms)
        return {o.gate: o.note for o in active}

    def marks(self, now_ms: int) -> dict[str, Decimal | None]:
        return {s.spec.exchange_symbol: s.market.last_close(now_ms) for s in self.symbols}

    def book(self, intent: OrderIntent, report: ExecutionReport, created_ms: int, symbol: str, *,
             decision: DecisionRecord | None = None) -> SimOrder:
        """Record a new order and the broker's answer to it; return the order."""
        order = SimOrder(intent.client_order_id, intent.intent_id, intent.leg, intent.side, intent.type,
                         intent.quantity, intent.price, intent.reduce_only, created_ms, symbol, decision=decision)
        order.rate = LedgerOrder(created_ms, intent.quantity, None, intent.price)
        self.orders.append(order)
        self.orders_by_id[order.client_order_id] = order
        self.ledger.order_add(order.rate)
        self.report_apply(order, report)
        return order

    def report_apply(self, order: SimOrder, report: ExecutionReport) -> None:
        """Book the report's fills on the order and move it to the reported state (order_apply_report)."""
        for fill in report.fills:
            self.fills.append(FillRecord(fill.client_order_id, dt(fill.ts_ms), fill.price, fill.quantity, fill.fee_usdt,
                                         fill.liquidity, order.symbol))
            order.filled_quantity += fill.quantity
            order.notional += fill.quantity * fill.price
            order.fees_usdt += fill.fee_usdt
        if report.fills:
            order.average_price = order.notional / order.filled_quantity
            order.rate.average_price = order.average_price
            self.ledger.fills_add([f.ts_ms for f in report.fills])
        target = report.status
        if report.fills and target not in ("filled", "partially_filled"):
            target = "filled" if order.filled_quantity >= order.quantity else "partially_filled"
        try:
            order.status = transition(order.status, target).value
        except IllegalTransition:
            pass        # the live path logs it and keeps the state; so does this
