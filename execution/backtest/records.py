"""What a backtest run records: decisions, orders, fills, funding payments and equity, as the live rows hold them.

Pure: no Django, no I/O, no clock. Each record carries the fields of its live row that the parity
tests compare (execution.models Order, Fill, FundingPayment, EquityPoint; decisions.models.Decision),
plus the symbol, so one run over several symbols keeps them apart.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from execution.backtest.ledger import SimPosition


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
    symbol: str = ""
    approval: str = ""                  # "", "auto", "pending", "approved", "rejected" (Decision.approval)
    entry_zone: tuple[Decimal, Decimal] | None = None


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
    symbol: str = ""
    price: Decimal | None = None        # a limit order's price
    filled_quantity: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class FillRecord:
    client_order_id: str
    ts: datetime
    price: Decimal
    quantity: Decimal
    fee_usdt: Decimal
    liquidity: str
    symbol: str = ""


@dataclass(frozen=True, slots=True)
class FundingRecord:
    """One funding settlement booked on a position (execution.models.FundingPayment, source paper)."""

    symbol: str
    position_id: int
    ts: datetime
    rate: Decimal
    mark_price: Decimal
    amount_usdt: Decimal


@dataclass(frozen=True, slots=True)
class EquityRecord:
    ts: datetime
    balance_usdt: Decimal
    unrealized_pnl_usdt: Decimal
    equity_usdt: Decimal


@dataclass(frozen=True, slots=True)
class BacktestResult:
    decisions: tuple[DecisionRecord, ...]
    orders: tuple[OrderRecord, ...]     # each order as it ended, in creation order
    fills: tuple[FillRecord, ...]
    trades: tuple[SimPosition, ...]       # every position, closed or still open, in opening order
    equity: tuple[EquityRecord, ...]
    funding: tuple[FundingRecord, ...] = ()
    symbols: tuple[str, ...] = ()
