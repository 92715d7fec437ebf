"""The broker port: what the OMS needs from any venue, paper or real. Pure: no Django.

Brokers translate; they never decide. Errors reach the OMS as the small family below, whose
docstrings say what the OMS does about each. Quantities and prices are Decimal; times are epoch ms.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from execution.oms import OrderIntent, OrderRejected

__all__ = ["Broker", "BrokerError", "DuplicateClientId", "ExchangeUnavailable", "ExecutionReport", "FillReport",
           "FundingReport", "IpBanned", "OrderNotFound", "OrderRejected", "RateLimited", "UnknownOutcome",
           "VenueBalance", "VenueOrder", "VenuePosition", "WouldTriggerImmediately"]


@dataclass(frozen=True, slots=True)
class FillReport:
    client_order_id: str
    trade_id: str
    ts_ms: int
    price: Decimal
    quantity: Decimal
    fee_usdt: Decimal
    liquidity: str = "taker"
    exchange_order_id: str = ""
    realized_pnl_usdt: Decimal | None = None   # as the venue books it, when it says


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    client_order_id: str
    status: str                  # an OrderState value: "filled", "accepted", "rejected", ...
    fills: tuple[FillReport, ...] = ()
    exchange_order_id: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """An order as the venue reports it (normal or conditional/algo)."""

    client_order_id: str
    exchange_order_id: str
    symbol: str                  # venue symbol, e.g. BTCUSDT
    side: str                    # "buy" or "sell"
    type: str                    # "market", "limit", "stop_market", "take_profit", "take_profit_market", ...
    status: str                  # an OrderState value
    quantity: Decimal
    filled: Decimal = Decimal(0)
    average_price: Decimal | None = None
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    reduce_only: bool = False
    conditional: bool = False    # lives in the Algo Order API (stops and take-profits since 2025-12-09)
    update_ms: int = 0


@dataclass(frozen=True, slots=True)
class VenuePosition:
    symbol: str
    quantity: Decimal            # signed: > 0 long, < 0 short (one-way mode)
    entry_price: Decimal
    mark_price: Decimal | None = None
    unrealized_pnl_usdt: Decimal = Decimal(0)
    liquidation_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class FundingReport:
    """One funding settlement the venue booked to the account: paid (amount < 0) or received (amount > 0)."""

    symbol: str                  # venue symbol, e.g. BTCUSDT
    ts_ms: int                   # the funding time
    amount_usdt: Decimal
    rate: Decimal | None = None  # the funding rate, when the venue says (Binance's income history does not)
    venue_id: str = ""           # the venue's id of the booking (Binance's tranId)


@dataclass(frozen=True, slots=True)
class VenueBalance:
    wallet_usdt: Decimal
    available_usdt: Decimal
    unrealized_pnl_usdt: Decimal = Decimal(0)


class BrokerError(Exception):
    """Base of the venue errors the OMS handles."""


class UnknownOutcome(BrokerError):
    """The request may or may not have reached the venue (timeout, -1007): query by client id, never resend blindly."""


class DuplicateClientId(BrokerError):
    """The venue already has an order with this client id (-4116): the earlier send arrived; query it."""


class OrderNotFound(BrokerError):
    """The venue does not know the order (-2013): count the miss; three, seconds apart, make it lost."""


class WouldTriggerImmediately(OrderRejected):
    """A stop or take-profit was refused because the price is already past it (-2021, -4142): close now."""


class ExchangeUnavailable(BrokerError):
    """The venue did not answer (5xx, network): retry reads with backoff; writes go through UnknownOutcome."""


class RateLimited(BrokerError):
    """HTTP 429: wait `retry_after_s` before the next request."""

    def __init__(self, message: str, retry_after_s: float = 1.0):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class IpBanned(BrokerError):
    """HTTP 418: halt all REST until `until_ms` and alert."""

    def __init__(self, message: str, until_ms: int):
        super().__init__(message)
        self.until_ms = until_ms


class Broker(Protocol):
    """One venue. `submit` is required of every broker; the reads serve reconciliation and verification."""

    name: str

    def submit(self, intent: OrderIntent, *, reference_price: Decimal, ts_ms: int,
               tick_size: Decimal | None = None) -> ExecutionReport:
        """Send one order; return what the venue said about it."""
        ...

    def fetch_order(self, client_order_id: str, symbol: str, *, conditional: bool = False) -> VenueOrder:
        """Return the venue's view of one order by client id; raise OrderNotFound when it has none."""
        ...

    def cancel(self, client_order_id: str, symbol: str, *, conditional: bool = False) -> VenueOrder:
        """Cancel one order by client id; return its final state (a fill may have won the race)."""
        ...

    def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        """Return every open order, normal and conditional."""
        ...

    def positions(self) -> list[VenuePosition]:
        """Return every non-zero position."""
        ...

    def trades(self, symbol: str, since_ms: int) -> list[FillReport]:
        """Return the account's fills in `symbol` since `since_ms`."""
        ...

    def balance(self) -> VenueBalance:
        """Return the USDT wallet."""
        ...

    def funding_payments(self, symbol: str | None, since_ms: int) -> list[FundingReport]:
        """Return the funding the account paid or received since `since_ms` (every symbol when None), oldest first."""
        ...
