"""Position and margin accounting for a USDT-margined account. Pure: values in, values out.

Cross margin only (an ISOLATED setting is stored and reported but accounted as cross). Entry prices are
volume-weighted and kept to 8 decimals; commissions are rounded half-up to 8 decimals, as Binance prints
them, and so are funding payments. Every other amount is exact Decimal arithmetic, so
wallet = start + realised PnL - commissions + funding.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from execution.emulator.state import AccountState, Income, Order, Position
from execution.emulator.symbols import SYMBOLS

EIGHT_PLACES = Decimal("0.00000001")


def signed_qty(side: str, qty: Decimal) -> Decimal:
    """Return `qty` signed by side: + for BUY, - for SELL."""
    return qty if side == "BUY" else -qty


def commission(notional_usdt: Decimal, rate: Decimal) -> Decimal:
    """Return the fee of a fill, rounded half-up to 8 decimals."""
    return (notional_usdt * rate).quantize(EIGHT_PLACES, rounding=ROUND_HALF_UP)


def apply_fill(position: Position, side: str, qty: Decimal, price: Decimal, now_ms: int) -> Decimal:
    """Move `position` by a fill of `qty` at `price`; return the realised PnL (before fees)."""
    delta = signed_qty(side, qty)
    amount, entry = position.amount, position.entry_price
    position.update_ms = now_ms
    if amount == 0 or (amount > 0) == (delta > 0):
        new_amount = amount + delta
        position.entry_price = ((abs(amount) * entry + qty * price) / abs(new_amount)).quantize(EIGHT_PLACES)
        position.amount = new_amount
        return Decimal(0)
    closed = min(qty, abs(amount))
    pnl = (price - entry) * closed * (1 if amount > 0 else -1)
    new_amount = amount + delta
    if new_amount == 0:
        position.entry_price = Decimal(0)
    elif (new_amount > 0) != (amount > 0):
        position.entry_price = price  # flipped: the remainder opened at this fill's price
    position.amount = new_amount
    position.realized_pnl += pnl
    return pnl


def closable_qty(position: Position, side: str) -> Decimal:
    """Return how much an order on `side` can close of `position` (0 when it would add to it)."""
    if position.amount > 0 and side == "SELL":
        return position.amount
    if position.amount < 0 and side == "BUY":
        return -position.amount
    return Decimal(0)


def unrealized_pnl(position: Position, mark: Decimal) -> Decimal:
    """Return the PnL of `position` marked at `mark`."""
    return (mark - position.entry_price) * position.amount if position.amount else Decimal(0)


@dataclass(frozen=True, slots=True)
class MarginSummary:
    wallet_usdt: Decimal
    unrealized_usdt: Decimal
    position_initial_usdt: Decimal
    open_order_initial_usdt: Decimal
    maint_usdt: Decimal

    @property
    def margin_balance_usdt(self) -> Decimal:
        return self.wallet_usdt + self.unrealized_usdt

    @property
    def initial_usdt(self) -> Decimal:
        return self.position_initial_usdt + self.open_order_initial_usdt

    @property
    def available_usdt(self) -> Decimal:
        return self.margin_balance_usdt - self.initial_usdt


def mark_of(state: AccountState, symbol: str) -> Decimal:
    """Return the mark price of `symbol`, 0 when none was set."""
    price = state.prices.get(symbol)
    return price.mark if price else Decimal(0)


def leverage_of(state: AccountState, symbol: str, default: int) -> int:
    return state.leverage.get(symbol, default)


def position_initial_margin(state: AccountState, position: Position, default_leverage: int) -> Decimal:
    """Return the initial margin of one position at its mark."""
    notional = abs(position.amount) * mark_of(state, position.symbol)
    return notional / leverage_of(state, position.symbol, default_leverage)


def order_initial_margin(state: AccountState, order: Order, default_leverage: int) -> Decimal:
    """Return the margin an open order holds: its unfilled notional over leverage (0 when reducing)."""
    if order.reduce_only or order.close_position or not order.is_open:
        return Decimal(0)
    price = order.price or mark_of(state, order.symbol)
    return order.remaining * price / leverage_of(state, order.symbol, default_leverage)


def summarize(state: AccountState, default_leverage: int) -> MarginSummary:
    """Return the account's wallet, unrealised PnL and margin totals at current marks."""
    positions = [p for p in state.positions.values() if p.amount]
    return MarginSummary(
        wallet_usdt=state.wallet_usdt,
        unrealized_usdt=sum((unrealized_pnl(p, mark_of(state, p.symbol)) for p in positions), Decimal(0)),
        position_initial_usdt=sum((position_initial_margin(state, p, default_leverage) for p in positions),
                                  Decimal(0)),
        open_order_initial_usdt=sum((order_initial_margin(state, o, default_leverage)
                                     for o in state.orders.values() if o.is_open), Decimal(0)),
        maint_usdt=sum((maint_margin(state, p) for p in positions), Decimal(0)),
    )


def maint_margin(state: AccountState, position: Position) -> Decimal:
    """Return the maintenance margin of one position (single-bracket rate)."""
    rate = SYMBOLS[position.symbol].maint_margin_rate if position.symbol in SYMBOLS else Decimal("0.004")
    return abs(position.amount) * mark_of(state, position.symbol) * rate


def liquidation_price(state: AccountState, position: Position) -> Decimal:
    """Return the mark at which cross margin would be exhausted by this position alone (0 if never).

    Solves wallet' + (P - entry) * amount = rate * |amount| * P, where wallet' holds the wallet and
    the other positions' PnL less their maintenance margin, frozen at current marks. An approximation.
    """
    if not position.amount:
        return Decimal(0)
    others = [p for p in state.positions.values() if p.amount and p is not position]
    wallet = state.wallet_usdt + sum(
        (unrealized_pnl(p, mark_of(state, p.symbol)) - maint_margin(state, p) for p in others), Decimal(0))
    rate = SYMBOLS[position.symbol].maint_margin_rate if position.symbol in SYMBOLS else Decimal("0.004")
    amount = position.amount
    price = (position.entry_price * amount - wallet) / (amount - rate * abs(amount))
    return max(price, Decimal(0)).quantize(EIGHT_PLACES)


def settle_funding(state: AccountState, symbol: str, rate: Decimal, mark_price: Decimal, ts_ms: int) -> list[Income]:
    """Book one funding settlement of `symbol` to the wallet; return the income row of each open leg.

    Each leg pays -amount * mark * rate (longs pay a positive rate, shorts receive it), rounded
    half-up to 8 decimals; a flat symbol, or a payment that rounds to 0, books nothing.
    """
    rows = []
    for position in state.positions.values():
        if position.symbol != symbol or not position.amount:
            continue
        payment = (-position.amount * mark_price * rate).quantize(EIGHT_PLACES, rounding=ROUND_HALF_UP)
        if payment == 0:
            continue
        state.wallet_usdt += payment
        rows.append(Income(symbol, "FUNDING_FEE", payment, ts_ms, state.new_id()))
    state.income.extend(rows)
    return rows


def income_history(state: AccountState) -> list[Income]:
    """Return every wallet booking other than transfers, oldest first.

    Funding rows are stored; a REALIZED_PNL row (when a fill realised PnL) and a COMMISSION row (when
    it paid a fee) are read off each trade, with the trade id as their tranId (unique per type, as on Binance).
    """
    rows = list(state.income)
    for trade in state.trades:
        if trade.realized_pnl:
            rows.append(Income(trade.symbol, "REALIZED_PNL", trade.realized_pnl, trade.time_ms, trade.trade_id,
                               trade_id=str(trade.trade_id)))
        if trade.commission:
            rows.append(Income(trade.symbol, "COMMISSION", -trade.commission, trade.time_ms, trade.trade_id,
                               trade_id=str(trade.trade_id)))
    return sorted(rows, key=lambda row: (row.time_ms, row.tran_id, row.income_type))
