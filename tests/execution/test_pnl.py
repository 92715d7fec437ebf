"""FIFO lots, realised and unrealised PnL, fees and round trips of a one-way position (pure, Decimal)."""
from decimal import Decimal as D

import pytest
from hypothesis import given, strategies as st

from execution.pnl import Book, Fill, Lot, book_apply, fifo, in_time_order, round_trip_at, round_trips


def fill(side: str, quantity: str, price: str, fee: str = "0", ts_ms: int = 0) -> Fill:
    return Fill(side, D(price), D(quantity), D(fee), ts_ms)


def numbered(*fills: Fill) -> list[Fill]:
    """Stamp the fills 1, 2, 3 ... ms in the given order."""
    return [Fill(f.side, f.price, f.quantity, f.fee_usdt, n) for n, f in enumerate(fills, start=1)]


@pytest.mark.parametrize(("fills", "realized", "lots"), [
    # adding to one side opens lots, realises nothing
    ([fill("buy", "1", "100"), fill("buy", "2", "110")], "0", [("1", "100"), ("2", "110")]),
    # the oldest lot closes first: 1 * 20 + 0.5 * 10
    ([fill("buy", "1", "100"), fill("buy", "1", "110"), fill("sell", "1.5", "120")], "25", [("0.5", "110")]),
    # shorts gain when the price falls
    ([fill("sell", "2", "100"), fill("buy", "1", "90")], "10", [("-1", "100")]),
    ([fill("sell", "1", "100"), fill("sell", "1", "90"), fill("buy", "2", "95")], "0", []),
    # closing across two lots at a loss
    ([fill("buy", "1", "100"), fill("buy", "1", "110"), fill("sell", "2", "99")], "-12", []),
    # crossing zero closes the long, then opens the rest short at the fill's price
    ([fill("buy", "1", "100"), fill("sell", "3", "105")], "5", [("-2", "105")]),
    ([fill("sell", "0.5", "200"), fill("buy", "1.5", "190")], "5", [("1", "190")]),
])
def test_fifo_table_realizes_oldest_lots_first(fills, realized, lots):
    book = fifo(numbered(*fills))

    assert book.realized_usdt == D(realized)
    assert [(lot.quantity, lot.price) for lot in book.lots] == [(D(q), D(p)) for q, p in lots]


def test_fifo_realized_per_closing_fill():
    buy_1, buy_2, sell_1, sell_2 = numbered(fill("buy", "1", "100"), fill("buy", "1", "110"),
                                            fill("sell", "1.5", "120"), fill("sell", "0.5", "100"))

    book = fifo([buy_1, buy_2, sell_1, sell_2])

    assert [(c.fill, c.quantity, c.realized_usdt) for c in book.closings] == [
        (sell_1, D("1.5"), D("25")), (sell_2, D("0.5"), D("-5"))]
    assert book.realized_usdt == D("20")


def test_fifo_fees_summed_and_net_realized_to_the_cent():
    book = fifo(numbered(fill("buy", "0.010", "60000", fee="0.30"), fill("sell", "0.010", "60123.45", fee="0.30")))

    assert (book.realized_usdt, book.fees_usdt, book.net_realized_usdt) == (D("1.2345"), D("0.60"), D("0.6345"))


@pytest.mark.parametrize(("fills", "mark", "average", "unrealized"), [
    # long 3 at an average of 106.666..., marked at 120
    ([fill("buy", "1", "100"), fill("buy", "2", "110")], "120", D(320) / D(3), "40"),
    # short 1 at 100, marked at 90
    ([fill("sell", "2", "100"), fill("buy", "1", "90")], "90", D("100"), "10"),
    # flat: no entry, nothing unrealised
    ([fill("buy", "1", "100"), fill("sell", "1", "90")], "500", None, "0"),
])
def test_book_average_entry_and_unrealized_at_mark(fills, mark, average, unrealized):
    book = fifo(numbered(*fills))

    assert (book.average_entry, book.unrealized_usdt(D(mark))) == (average, D(unrealized))


@pytest.mark.parametrize(("bad", "message"), [
    (fill("hold", "1", "100"), "side 'hold'"),
    (fill("buy", "0", "100"), "quantity 0 is not positive"),
    (fill("sell", "-1", "100"), "quantity -1 is not positive"),
])
def test_book_apply_invalid_fill_raises(bad, message):
    with pytest.raises(ValueError, match=message):
        book_apply(Book(), bad)


def test_in_time_order_same_ms_keeps_given_order():
    first, second = fill("buy", "1", "100", ts_ms=5), fill("sell", "1", "101", ts_ms=5)
    earlier = fill("buy", "2", "99", ts_ms=1)

    assert in_time_order([first, second, earlier]) == [earlier, first, second]


# -- round trips ----------------------------------------------------------------------------------

def test_round_trips_flat_to_flat_and_open_last():
    trips = round_trips(numbered(fill("buy", "1", "100"), fill("sell", "1", "110"),
                                 fill("sell", "2", "120"), fill("buy", "1", "100")))

    assert [(t.side, t.start_ms, t.end_ms, t.book.realized_usdt) for t in trips] == [
        ("long", 1, 2, D("10")), ("short", 3, None, D("20"))]
    assert trips[-1].book.lots == (Lot(D("-1"), D("120"), 3),)


def test_round_trips_crossing_fill_splits_its_fee_pro_rata():
    trips = round_trips(numbered(fill("buy", "1", "100", fee="0.1"), fill("sell", "3", "105", fee="0.3")))

    assert [(t.side, t.end_ms, t.book.realized_usdt, t.book.fees_usdt) for t in trips] == [
        ("long", 2, D("5"), D("0.2")), ("short", None, D("0"), D("0.2"))]
    assert trips[1].book.lots == (Lot(D("-2"), D("105"), 2),)


@pytest.mark.parametrize(("side", "opened_ms", "closed_ms", "tolerance_ms", "expected_start"), [
    # the long opened at 10 and closed at 20; the next long opened at 30
    ("long", 12, None, 0, 10),
    ("long", 35, None, 0, 30),
    ("long", 12, 20, 0, 10),
    # the books stamp the second long 2 ms before the venue's first fill: only the tolerance finds it
    ("long", 28, None, 0, 10),
    ("long", 28, None, 5, 30),
    # a closed position never matches the trip that is still open
    ("long", 35, 40, 0, 10),
    ("short", 35, None, 0, None),
])
def test_round_trip_at_table(side, opened_ms, closed_ms, tolerance_ms, expected_start):
    trips = round_trips([fill("buy", "1", "100", ts_ms=10), fill("sell", "1", "101", ts_ms=20),
                         fill("buy", "1", "102", ts_ms=30)])

    trip = round_trip_at(trips, side, opened_ms, closed_ms, tolerance_ms)

    assert (trip.start_ms if trip else None) == expected_start


# -- invariants -----------------------------------------------------------------------------------

prices = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)
quantities = st.decimals(min_value=D("0.001"), max_value=D("50"), places=3)
fees = st.decimals(min_value=D("0"), max_value=D("5"), places=4)
fills_strategy = st.lists(st.builds(Fill, st.sampled_from(["buy", "sell"]), prices, quantities, fees,
                                    st.integers(0, 20)), max_size=25)


def cash_flow(fills: list[Fill]) -> D:
    return sum(((f.price * f.quantity) if f.side == "sell" else -(f.price * f.quantity) for f in fills), D(0))


@given(fills_strategy, prices)
def test_fifo_realized_plus_unrealized_equals_full_close_cash_flow(fills, mark):
    book = fifo(fills)

    assert book.realized_usdt + book.unrealized_usdt(mark) == cash_flow(fills) + book.quantity * mark


@given(fills_strategy, prices)
def test_fifo_closing_everything_leaves_no_lots(fills, mark):
    open_quantity = fifo(fills).quantity
    side = "sell" if open_quantity > 0 else "buy"
    closing = [Fill(side, mark, abs(open_quantity), ts_ms=99)] if open_quantity else []

    book = fifo(fills + closing)

    assert book.lots == () and book.quantity == 0
    assert book.realized_usdt == cash_flow(fills + closing)


def interleave(fills: list[Fill], random) -> list[Fill]:
    """Return `fills` shuffled across timestamps, each timestamp's fills still in their given order."""
    shuffled = list(fills)
    random.shuffle(shuffled)
    in_order = {ts: iter([f for f in fills if f.ts_ms == ts]) for ts in {f.ts_ms for f in fills}}
    return [next(in_order[f.ts_ms]) for f in shuffled]


@given(fills_strategy, st.randoms(use_true_random=False))
def test_fifo_interleaving_of_timestamps_does_not_change_the_book(fills, random):
    assert fifo(interleave(fills, random)) == fifo(fills)


@given(fills_strategy)
def test_in_time_order_equal_timestamps_keep_their_order(fills):
    ordered = in_time_order(fills)

    assert [f.ts_ms for f in ordered] == sorted(f.ts_ms for f in fills)
    for ts in {f.ts_ms for f in fills}:
        assert [f for f in ordered if f.ts_ms == ts] == [f for f in fills if f.ts_ms == ts]


@given(fills_strategy)
def test_round_trips_add_up_to_the_whole_book(fills):
    trips = round_trips(fills)
    whole = fifo(fills)

    assert sum((t.book.realized_usdt for t in trips), D(0)) == whole.realized_usdt
    assert sum((t.book.fees_usdt for t in trips), D(0)) == whole.fees_usdt
    assert all(t.end_ms is not None for t in trips[:-1])
