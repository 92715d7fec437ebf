"""The emulated account: orders, conditional (algo) orders, fills, positions, funding, settings and prices.

Plain mutable dataclasses that round-trip through JSON (Decimals as strings), so the whole account can
be saved after every change and reloaded after a restart. Times are epoch ms; money is Decimal USDT.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from decimal import Decimal

OPEN_STATUSES = frozenset({"NEW", "PARTIALLY_FILLED"})
ALGO_OPEN_STATUSES = frozenset({"NEW"})


@dataclass
class Order:
    """A normal (matching-engine) order, as GET /fapi/v1/order reports it."""

    order_id: int
    client_order_id: str
    symbol: str
    side: str                    # BUY or SELL
    position_side: str           # BOTH in one-way mode, LONG or SHORT in hedge mode
    type: str                    # LIMIT or MARKET
    orig_type: str               # the type as placed (STOP_MARKET etc. for a triggered algo order)
    time_in_force: str           # GTC, IOC, GTX (post-only)
    quantity: Decimal
    price: Decimal               # 0 for market orders
    reduce_only: bool
    time_ms: int
    update_ms: int
    status: str = "NEW"          # NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED
    executed_qty: Decimal = Decimal(0)
    cum_quote: Decimal = Decimal(0)
    stop_price: Decimal = Decimal(0)
    close_position: bool = False
    working_type: str = "CONTRACT_PRICE"
    price_protect: bool = False
    stp_mode: str = "NONE"
    algo_id: int = 0             # the algo order that placed it, 0 for none

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.executed_qty

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def avg_price(self) -> Decimal:
        return self.cum_quote / self.executed_qty if self.executed_qty else Decimal(0)


@dataclass
class AlgoOrder:
    """A conditional order in the Algo Order API (Binance moved stops there on 2025-12-09)."""

    algo_id: int
    client_algo_id: str
    symbol: str
    side: str
    position_side: str
    order_type: str              # STOP_MARKET, TAKE_PROFIT_MARKET, STOP, TAKE_PROFIT, TRAILING_STOP_MARKET
    time_in_force: str
    quantity: Decimal            # 0 with closePosition
    price: Decimal               # limit price of STOP/TAKE_PROFIT, else 0
    trigger_price: Decimal       # 0 for trailing stops until they trigger
    working_type: str            # MARK_PRICE or CONTRACT_PRICE
    reduce_only: bool
    close_position: bool
    create_ms: int
    update_ms: int
    status: str = "NEW"          # NEW, CANCELED, TRIGGERED, FINISHED, REJECTED, EXPIRED
    trigger_ms: int = 0
    actual_order_id: int = 0
    price_protect: bool = False
    activate_price: Decimal = Decimal(0)
    callback_rate: Decimal = Decimal(0)  # percent, trailing stops only
    extreme_price: Decimal = Decimal(0)  # best price seen since a trailing stop activated, 0 before
    stp_mode: str = "NONE"
    reason: str = ""

    @property
    def is_open(self) -> bool:
        return self.status in ALGO_OPEN_STATUSES


@dataclass
class Trade:
    """One fill of one order, as /fapi/v1/userTrades reports it."""

    trade_id: int
    order_id: int
    symbol: str
    side: str
    position_side: str
    price: Decimal
    qty: Decimal
    realized_pnl: Decimal
    commission: Decimal
    maker: bool
    time_ms: int

    @property
    def quote_qty(self) -> Decimal:
        return self.price * self.qty


@dataclass
class Income:
    """One row of the income history (/fapi/v1/income): a stored funding settlement, or a fill's PnL or fee."""

    symbol: str
    income_type: str             # FUNDING_FEE here; REALIZED_PNL and COMMISSION rows come from the trades
    amount: Decimal              # received (+) or paid (-)
    time_ms: int
    tran_id: int
    asset: str = "USDT"
    trade_id: str = ""           # the fill behind a REALIZED_PNL or COMMISSION row


@dataclass
class Position:
    """One position leg. amount is signed: > 0 long, < 0 short (SHORT legs are always <= 0)."""

    symbol: str
    position_side: str
    amount: Decimal = Decimal(0)
    entry_price: Decimal = Decimal(0)
    realized_pnl: Decimal = Decimal(0)  # accumulated, before fees ("cr" in ACCOUNT_UPDATE)
    update_ms: int = 0


@dataclass
class Price:
    last: Decimal
    mark: Decimal
    time_ms: int = 0


@dataclass
class AccountState:
    """Everything the emulator persists."""

    wallet_usdt: Decimal
    dual_side: bool = False
    leverage: dict[str, int] = field(default_factory=dict)
    margin_type: dict[str, str] = field(default_factory=dict)      # CROSSED or ISOLATED
    positions: dict[str, Position] = field(default_factory=dict)   # key "SYMBOL:SIDE"
    orders: dict[str, Order] = field(default_factory=dict)         # key str(order_id)
    algo_orders: dict[str, AlgoOrder] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    income: list[Income] = field(default_factory=list)             # funding; absent from older state files
    prices: dict[str, Price] = field(default_factory=dict)
    listen_keys: dict[str, int] = field(default_factory=dict)      # key -> expiry ms
    next_id: int = 1_000_000
    update_ms: int = 0

    def new_id(self) -> int:
        """Return a fresh id shared by orders, algo orders and trades."""
        self.next_id += 1
        return self.next_id

    def position(self, symbol: str, position_side: str) -> Position:
        """Return the position leg, creating a flat one."""
        key = f"{symbol}:{position_side}"
        if key not in self.positions:
            self.positions[key] = Position(symbol, position_side)
        return self.positions[key]


def to_jsonable(obj) -> object:
    """Return `obj` as JSON-ready values: dataclasses as dicts, Decimals as strings."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {key: to_jsonable(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [to_jsonable(value) for value in obj]
    if isinstance(obj, Decimal):
        return f"{obj:f}"
    return obj


def from_jsonable(cls, data):
    """Return an instance of `cls` (a dataclass or a typing generic of them) built from `data`."""
    origin = typing.get_origin(cls)
    if origin is dict:
        _, value_type = typing.get_args(cls)
        return {key: from_jsonable(value_type, value) for key, value in data.items()}
    if origin is list:
        (item_type,) = typing.get_args(cls)
        return [from_jsonable(item_type, value) for value in data]
    if cls is Decimal:
        return Decimal(data)
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{name: from_jsonable(hints[name], value) for name, value in data.items() if name in known})
    return data
