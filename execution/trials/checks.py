"""Compare the books with the venue's own state after a restart. Pure: no Django, no I/O.

The venue side is the emulator's account state (orders, algo orders, trades, positions, as JSON
values); the books' side is the database's orders, fills and open positions as plain tuples. Each
check returns the problems it finds as sentences, keyed by the criterion of the crash trials:
- duplicate: two venue orders with one client id;
- orders: every venue order in the books with its state, size and filled size, and no live order
  in the books the venue never had;
- fills: every venue trade booked exactly once, to its order, at its price and size, and nothing else;
- positions: the books' open positions are the venue's, to the last step;
- protection: every venue position has exactly one reduce-only stop of ours of its size.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

CRITERIA = ("duplicate", "orders", "fills", "positions", "protection")
NORMAL_STATES = {"NEW": "accepted", "PARTIALLY_FILLED": "partially_filled", "FILLED": "filled",
                 "CANCELED": "canceled", "EXPIRED": "expired"}
# As CcxtBroker reads them (execution.brokers.ccxt.ALGO_STATES); the algo reply names no executed size.
ALGO_STATES = {"NEW": "accepted", "TRIGGERING": "triggered", "TRIGGERED": "triggered", "FINISHED": "filled",
               "CANCELED": "canceled", "REJECTED": "rejected", "EXPIRED": "expired"}
NEVER_SENT_OK = frozenset({"rejected"})    # a refused order leaves no trace at the venue


@dataclass(frozen=True, slots=True)
class VenueOrderRow:
    client_order_id: str
    status: str                  # as the books should say it
    quantity: Decimal
    filled: Decimal
    stop: bool = False           # one of our reduce-only stop-markets, still waiting to trigger
    side: str = ""
    symbol: str = ""


@dataclass(frozen=True, slots=True)
class Books:
    orders: tuple[tuple[str, str, Decimal, Decimal], ...]    # (client id, status, quantity, filled)
    fills: tuple[tuple[str, str, Decimal, Decimal], ...]     # (trade id, client id, quantity, price)
    positions: tuple[tuple[str, Decimal], ...]               # (venue symbol, signed quantity), open ones


@dataclass
class Problems:
    by_criterion: dict[str, list[str]] = field(default_factory=lambda: {c: [] for c in CRITERIA})

    def add(self, criterion: str, text: str) -> None:
        self.by_criterion[criterion].append(text)

    def __bool__(self) -> bool:
        return any(self.by_criterion.values())

    def failed(self) -> list[str]:
        return [c for c in CRITERIA if self.by_criterion[c]]


def _d(value) -> Decimal:
    return Decimal(str(value))


def venue_orders(state: dict) -> tuple[list[VenueOrderRow], list[str]]:
    """Return the venue's orders as the books should hold them, and the client ids used more than once."""
    orders = state["orders"]
    rows = [VenueOrderRow(o["client_order_id"], NORMAL_STATES[o["status"]], _d(o["quantity"]), _d(o["executed_qty"]))
            for o in orders.values() if not o["algo_id"]]
    for algo in state["algo_orders"].values():
        child = orders.get(str(algo["actual_order_id"])) if algo["actual_order_id"] else None
        filled = _d(child["executed_qty"]) if child else Decimal(0)
        stop = (algo["status"] == "NEW" and algo["order_type"] == "STOP_MARKET" and algo["reduce_only"]
                and algo["client_algo_id"].startswith("tb-"))
        rows.append(VenueOrderRow(algo["client_algo_id"], ALGO_STATES[algo["status"]], _d(algo["quantity"]), filled,
                                  stop, algo["side"], algo["symbol"]))
    normal = Counter(o["client_order_id"] for o in orders.values() if not o["algo_id"])
    algos = Counter(a["client_algo_id"] for a in state["algo_orders"].values())
    duplicates = sorted(cid for cid, n in (normal + algos).items() if n > 1)
    return rows, duplicates


def venue_positions(state: dict) -> dict[str, Decimal]:
    """Return the venue's non-zero positions, signed, by symbol."""
    held: dict[str, Decimal] = {}
    for position in state["positions"].values():
        if _d(position["amount"]):
            held[position["symbol"]] = held.get(position["symbol"], Decimal(0)) + _d(position["amount"])
    return held


def naked_positions(state: dict) -> dict[str, str]:
    """Return the venue's positions without exactly one working stop of ours of their size, and why."""
    rows, _ = venue_orders(state)
    naked = {}
    for symbol, amount in venue_positions(state).items():
        side = "SELL" if amount > 0 else "BUY"
        stops = [r for r in rows if r.stop and r.symbol == symbol and r.side == side]
        right = [r for r in stops if r.quantity == abs(amount)]
        if len(right) != 1 or len(stops) != 1:
            sizes = ", ".join(str(r.quantity) for r in stops) or "none"
            naked[symbol] = f"position {amount}, stops {sizes}"
    return naked


def _check_orders(rows: list[VenueOrderRow], books: Books, problems: Problems) -> None:
    booked = {cid: (status, qty, filled) for cid, status, qty, filled in books.orders}
    for row in rows:
        ours = booked.get(row.client_order_id)
        if ours is None:
            problems.add("orders", f"{row.client_order_id}: venue {row.status} {row.filled}/{row.quantity}, "
                                   "not in the books")
        elif ours != (row.status, row.quantity, row.filled):
            problems.add("orders", f"{row.client_order_id}: books {ours[0]} {ours[2]}/{ours[1]}, "
                                   f"venue {row.status} {row.filled}/{row.quantity}")
    at_venue = {r.client_order_id for r in rows}
    for cid, (status, qty, filled) in booked.items():
        if cid not in at_venue and status not in NEVER_SENT_OK:
            problems.add("orders", f"{cid}: books {status} {filled}/{qty}, the venue never had it")


def _check_fills(state: dict, books: Books, problems: Problems) -> None:
    orders = state["orders"]
    counts = Counter(trade_id for trade_id, *_ in books.fills)
    booked = {trade_id: rest for trade_id, *rest in books.fills}
    venue_ids = set()
    for trade in state["trades"]:
        trade_id = str(trade["trade_id"])
        venue_ids.add(trade_id)
        cid = orders[str(trade["order_id"])]["client_order_id"]
        if counts[trade_id] != 1:
            problems.add("fills", f"trade {trade_id} ({cid}) booked {counts[trade_id]} times")
        elif booked[trade_id] != [cid, _d(trade["qty"]), _d(trade["price"])]:
            problems.add("fills", f"trade {trade_id}: books {booked[trade_id]}, venue {cid} {trade['qty']}@"
                                  f"{trade['price']}")
    for trade_id in sorted(set(counts) - venue_ids):
        problems.add("fills", f"fill {trade_id} booked, the venue has no such trade")
    sums = Counter()
    for _, cid, qty, _ in books.fills:
        sums[cid] += qty
    for cid, _, _, filled in books.orders:
        if filled != sums.get(cid, Decimal(0)):
            problems.add("fills", f"{cid}: filled {filled} in the books, its fills sum to {sums.get(cid, 0)}")


def _check_positions(state: dict, books: Books, problems: Problems) -> None:
    held = venue_positions(state)
    booked = Counter()
    for symbol, quantity in books.positions:
        booked[symbol] += 1
        if held.get(symbol) != quantity:
            problems.add("positions", f"{symbol}: books {quantity}, venue {held.get(symbol, 0)}")
    for symbol, amount in held.items():
        if booked[symbol] == 0:
            problems.add("positions", f"{symbol}: venue {amount}, no open position in the books")
        elif booked[symbol] > 1:
            problems.add("positions", f"{symbol}: {booked[symbol]} open positions in the books")


def books_problems(state: dict, books: Books) -> Problems:
    """Return every difference between the books and the venue's state, by criterion."""
    problems = Problems()
    rows, duplicates = venue_orders(state)
    for cid in duplicates:
        problems.add("duplicate", f"{cid}: more than one venue order")
    _check_orders(rows, books, problems)
    _check_fills(state, books, problems)
    _check_positions(state, books, problems)
    for symbol, why in naked_positions(state).items():
        problems.add("protection", f"{symbol}: {why}")
    return problems
