"""The broker port: what the OMS needs from any venue, paper or real. Pure: no Django."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from execution.oms import OrderIntent


@dataclass(frozen=True, slots=True)
class FillReport:
    client_order_id: str
    trade_id: str
    ts_ms: int
    price: Decimal
    quantity: Decimal
    fee_usdt: Decimal
    liquidity: str = "taker"


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    client_order_id: str
    status: str                  # "filled", "accepted", "rejected"
    fills: tuple[FillReport, ...] = ()
    exchange_order_id: str = ""
    reason: str = ""


class Broker(Protocol):
    name: str

    def submit(self, intent: OrderIntent, *, reference_price: Decimal, ts_ms: int,
               tick_size: Decimal | None = None) -> ExecutionReport:
        """Send one order; return what the venue said about it."""
        ...
