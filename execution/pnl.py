"""FIFO profit and loss of a one-way position from its fills. Pure: Decimal in, Decimal out; no Django, no clock.

One-way mode: the account holds one net quantity per symbol. A fill against the open lots closes the
oldest first; a fill larger than the open quantity closes every lot and opens the rest on the other
side. Realised PnL is gross (price differences only); fees are summed beside it, and funding is not a
fill, so it is left to the caller.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal

ZERO = Decimal(0)
SIDES = ("buy", "sell")
FEE_STEP = Decimal("0.0000000001")     # the books' money precision (10 places): a split fee is rounded to it


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution: `quantity` > 0 in base units, `fee_usdt` paid (>= 0), `ts_ms` epoch ms."""

    side: str                    # "buy" or "sell"
    price: Decimal
    quantity: Decimal
    fee_usdt: Decimal = ZERO
    ts_ms: int = 0

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity if self.side == "buy" else -self.quantity


@dataclass(frozen=True, slots=True)
class Lot:
    """Open quantity at one entry price: > 0 long, < 0 short."""

    quantity: Decimal
    price: Decimal
    ts_ms: int


@dataclass(frozen=True, slots=True)
class Closing:
    """What one fill closed: `quantity` (> 0) of the oldest lots, for `realized_usdt` before fees."""

    fill: Fill
    quantity: Decimal
    realized_usdt: Decimal


@dataclass(frozen=True, slots=True)
class Book:
    """The open lots (oldest first), the closings so far and the fees of every fill applied."""

    lots: tuple[Lot, ...] = ()
    closings: tuple[Closing, ...] = ()
    fees_usdt: Decimal = ZERO

    @property
    def quantity(self) -> Decimal:
        """Return the open quantity, signed."""
        return sum((lot.quantity for lot in self.lots), ZERO)

    @property
    def realized_usdt(self) -> Decimal:
        """Return the realised PnL before fees."""
        return sum((closing.realized_usdt for closing in self.closings), ZERO)

    @property
    def net_realized_usdt(self) -> Decimal:
        """Return the realised PnL after the fees of every fill (opening ones included)."""
        return self.realized_usdt - self.fees_usdt

    @property
    def average_entry(self) -> Decimal | None:
        """Return the quantity-weighted entry price of the open lots, None when flat."""
        size = sum((abs(lot.quantity) for lot in self.lots), ZERO)
        if size == 0:
            return None
        return sum((abs(lot.quantity) * lot.price for lot in self.lots), ZERO) / size

    def unrealized_usdt(self, mark_price: Decimal) -> Decimal:
        """Return the PnL of the open lots marked at `mark_price`."""
        return sum(((mark_price - lot.price) * lot.quantity for lot in self.lots), ZERO)


def _check(fill: Fill) -> None:
    if fill.side not in SIDES:
        raise ValueError(f"fill side {fill.side!r} is not one of {SIDES}")
    if fill.quantity <= 0:
        raise ValueError(f"fill quantity {fill.quantity} is not positive")


def book_apply(book: Book, fill: Fill) -> Book:
    """Return `book` after `fill`: close the oldest opposite lots first, open what is left over."""
    _check(fill)
    delta = fill.signed_quantity
    lots, fees = list(book.lots), book.fees_usdt + fill.fee_usdt
    if not lots or (lots[0].quantity > 0) == (delta > 0):
        return Book((*lots, Lot(delta, fill.price, fill.ts_ms)), book.closings, fees)
    remaining, closed, realized = fill.quantity, ZERO, ZERO
    while lots and remaining > 0:
        lot = lots[0]
        take = min(remaining, abs(lot.quantity))
        direction = 1 if lot.quantity > 0 else -1
        realized += (fill.price - lot.price) * take * direction
        remaining, closed = remaining - take, closed + take
        if take == abs(lot.quantity):
            lots.pop(0)
        else:
            lots[0] = replace(lot, quantity=lot.quantity - take * direction)
    if remaining > 0:
        # Crossed zero: the rest opens on the fill's side at the fill's price.
        lots.append(Lot(remaining if delta > 0 else -remaining, fill.price, fill.ts_ms))
    return Book(tuple(lots), (*book.closings, Closing(fill, closed, realized)), fees)


def in_time_order(fills: Iterable[Fill]) -> list[Fill]:
    """Return `fills` by time; fills of the same ms keep their given order (the venue's trade order)."""
    return sorted(fills, key=lambda fill: fill.ts_ms)


def fifo(fills: Iterable[Fill]) -> Book:
    """Return the book after every fill, applied in time order."""
    book = Book()
    for fill in in_time_order(fills):
        book = book_apply(book, fill)
    return book


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """One position from flat to flat: "long" or "short", its book, and when it opened and closed (None: open)."""

    side: str
    start_ms: int
    end_ms: int | None
    book: Book


def _split(fill: Fill, first_quantity: Decimal) -> tuple[Fill, Fill]:
    # The fee is shared pro rata; the second part takes the remainder so the parts add up exactly.
    first_fee = (fill.fee_usdt * first_quantity / fill.quantity).quantize(FEE_STEP)
    return (replace(fill, quantity=first_quantity, fee_usdt=first_fee),
            replace(fill, quantity=fill.quantity - first_quantity, fee_usdt=fill.fee_usdt - first_fee))


def round_trips(fills: Iterable[Fill]) -> list[RoundTrip]:
    """Return the positions the fills made, oldest first; a fill that crosses zero ends one and starts the next."""
    trips: list[RoundTrip] = []
    book, start_ms, side = Book(), 0, ""
    for fill in in_time_order(fills):
        if not book.lots:
            book, start_ms, side = Book(), fill.ts_ms, "long" if fill.side == "buy" else "short"
        open_quantity = abs(book.quantity)
        if book.lots and (book.quantity > 0) != (fill.side == "buy") and fill.quantity > open_quantity:
            closing, fill = _split(fill, open_quantity)
            trips.append(RoundTrip(side, start_ms, fill.ts_ms, book_apply(book, closing)))
            book, start_ms, side = Book(), fill.ts_ms, "long" if fill.side == "buy" else "short"
        book = book_apply(book, fill)
        if not book.lots:
            trips.append(RoundTrip(side, start_ms, fill.ts_ms, book))
    if book.lots:
        trips.append(RoundTrip(side, start_ms, None, book))
    return trips


def round_trip_at(trips: Iterable[RoundTrip], side: str, opened_ms: int, closed_ms: int | None = None,
                  tolerance_ms: int = 0) -> RoundTrip | None:
    """Return the last `side` round trip that started by `opened_ms`, or None.

    With `closed_ms`, only a trip that ended by then qualifies. `tolerance_ms` allows for clock skew
    between the venue, which stamps fills, and the books, which stamp positions.
    """
    found = None
    for trip in trips:
        ended = closed_ms is None or (trip.end_ms is not None and trip.end_ms <= closed_ms + tolerance_ms)
        if trip.side == side and trip.start_ms <= opened_ms + tolerance_ms and ended:
            found = trip
    return found
