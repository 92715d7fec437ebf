from dataclasses import replace
from decimal import Decimal as D

from hypothesis import given, strategies as st

import pytest

from execution.brokers.paper import LadderExit, LadderPosition, Target, ladder_step

STEP = D("0.001")
LONG = LadderPosition("LONG", D("100"), D("1.000"), D("1.000"), D("98"),
                      (Target(D("102"), D("0.4")), Target(D("104"), D("0.4")), Target(D("110"), D("0.2"))),
                      trail_distance=D("1.5"))
SHORT = LadderPosition("SHORT", D("100"), D("1.000"), D("1.000"), D("102"),
                       (Target(D("98"), D("0.4")), Target(D("96"), D("0.4")), Target(D("90"), D("0.2"))),
                       trail_distance=D("1.5"))


def walk(pos, bars, **kwargs):
    """Return each bar's exits as (leg, price, quantity), the stop after each bar, and the last position."""
    exits, stops = [], []
    for bar in bars:
        bar_exits, pos = ladder_step(pos, *(D(v) for v in bar), STEP, **kwargs)
        exits += [(e.leg, str(e.price), str(e.quantity)) for e in bar_exits]
        stops.append(str(pos.stop_price))
    return exits, stops, pos


@pytest.mark.parametrize(
    "position, bars, expected_exits, expected_stops",
    [
        # long: TP1 at 102 (trail from that bar's high 102.5 -> 101.0), ratchet on a new high,
        # hold on a pullback, then the trailed stop is hit at its level
        (LONG, [("100", "102.5", "99.5"), ("102", "103.3", "101.8"), ("103", "103.2", "102"),
                ("102.5", "102.6", "101.5")],
         [("tp1", "102", "0.400"), ("sl", "101.8", "0.600")], ["101.0", "101.8", "101.8", "101.8"]),
        # long: the open gaps below the trailed stop and fills there
        (LONG, [("100", "102.5", "99.5"), ("102", "103.3", "101.8"), ("101", "101.2", "100.5")],
         [("tp1", "102", "0.400"), ("sl", "101", "0.600")], ["101.0", "101.8", "101.8"]),
        # long: the TP1 bar's own high cannot tighten a stop that its own low then hits
        (LONG, [("100", "103.5", "99.5"), ("102.5", "102.8", "101.5")],
         [("tp1", "102", "0.400"), ("sl", "102.0", "0.600")], ["102.0", "102.0"]),
        # long: breakeven wins while the trail is still below entry
        (replace(LONG, trail_distance=D("5")), [("100", "102.5", "99.5"), ("102", "106", "101")],
         [("tp1", "102", "0.400"), ("tp2", "104", "0.400")], ["100", "101"]),
        # short mirrored: TP1 at 98 (trail from the low 97.5 -> 99.0), ratchet, hold, hit
        (SHORT, [("100", "100.5", "97.5"), ("98", "98.2", "96.7"), ("97", "98", "96.8"),
                 ("97.5", "98.5", "97.4")],
         [("tp1", "98", "0.400"), ("sl", "98.2", "0.600")], ["99.0", "98.2", "98.2", "98.2"]),
        # short: the open gaps above the trailed stop and fills there
        (SHORT, [("100", "100.5", "97.5"), ("98", "98.2", "96.7"), ("99", "99.5", "98.5")],
         [("tp1", "98", "0.400"), ("sl", "99", "0.600")], ["99.0", "98.2", "98.2"]),
    ],
)
def test_ladder_step_trail_sequence_exits_and_stops(position, bars, expected_exits, expected_stops):
    exits, stops, _ = walk(position, bars)

    assert exits == expected_exits
    assert [D(s) for s in stops] == [D(s) for s in expected_stops]


@pytest.mark.parametrize(
    "position, bar, tick, expected_stop",
    [
        # long rounds down to the tick, short rounds up: never closer than the trail
        (LONG, ("100", "103.37", "99.5"), D("0.1"), D("101.8")),
        (LONG, ("100", "103.37", "99.5"), D("0.5"), D("101.5")),
        (LONG, ("100", "103.37", "99.5"), None, D("101.87")),
        (SHORT, ("100", "100.5", "96.63"), D("0.1"), D("98.2")),
        (SHORT, ("100", "100.5", "96.63"), None, D("98.13")),
    ],
)
def test_ladder_step_trail_tick_rounds_away_from_price(position, bar, tick, expected_stop):
    _, after = ladder_step(position, *(D(v) for v in bar), STEP, tick_size=tick)

    assert after.stop_price == expected_stop


def test_ladder_step_trail_before_tp1_keeps_stop_and_no_best_price():
    _, stops, after = walk(LONG, [("100", "101.9", "99"), ("101", "101.95", "100")])

    assert stops == ["98", "98"]
    assert after.best_price is None


def test_ladder_step_trail_without_breakeven_keeps_stop_until_trail_passes_it():
    pos = replace(LONG, trail_distance=D("5"))

    _, stops, _ = walk(pos, [("100", "102.5", "99.5"), ("102", "103.5", "101")], breakeven_after_first=False)

    assert stops == ["98", "98.5"]


def test_ladder_step_no_trail_no_breakeven_keeps_stop():
    pos = replace(LONG, trail_distance=None)

    _, stops, after = walk(pos, [("100", "102.5", "99.5"), ("102", "103.5", "101")], breakeven_after_first=False)

    assert stops == ["98", "98"]
    assert after.best_price == D("103.5")


def test_ladder_step_trail_resumed_without_best_price_starts_from_bar():
    resumed = replace(LONG, quantity=D("0.600"), stop_price=D("100"),
                      targets=(replace(LONG.targets[0], filled=True), *LONG.targets[1:]))

    _, after = ladder_step(resumed, D("102"), D("103"), D("101.8"), STEP)

    assert (after.best_price, after.stop_price) == (D("103"), D("101.5"))


def test_ladder_step_trail_keeps_a_stop_already_tighter_than_trail_and_breakeven():
    resumed = replace(LONG, quantity=D("0.600"), stop_price=D("102.5"), best_price=D("103"),
                      targets=(replace(LONG.targets[0], filled=True), *LONG.targets[1:]))

    _, after = ladder_step(resumed, D("103"), D("103.5"), D("102.8"), STEP)

    assert (after.best_price, after.stop_price) == (D("103.5"), D("102.5"))


@pytest.mark.parametrize("distance", [D("0"), D("-1")])
def test_ladder_position_non_positive_trail_raises(distance):
    with pytest.raises(ValueError, match="trail_distance must be positive"):
        replace(LONG, trail_distance=distance)


# Properties over random bar sequences around the entry, long and short, with and without a tick grid.
BARS = st.lists(st.tuples(st.decimals(min_value=D("90"), max_value=D("112"), places=1),
                          st.decimals(min_value=D("0"), max_value=D("6"), places=1),
                          st.decimals(min_value=D("0"), max_value=D("6"), places=1)),
                min_size=1, max_size=25)
POSITIONS = st.sampled_from([LONG, SHORT])
TRAILS = st.decimals(min_value=D("0.1"), max_value=D("5"), places=2)
TICKS = st.sampled_from([None, D("0.01"), D("0.1"), D("0.5")])


def bar_prices(bar):
    bar_open, up, down = bar
    return bar_open, bar_open + up, bar_open - down


@given(POSITIONS, TRAILS, TICKS, st.booleans(), BARS)
def test_ladder_step_trail_never_loosens_and_stays_behind_best(position, trail, tick, breakeven, bars):
    pos = replace(position, trail_distance=trail)
    tighter_or_equal = (lambda new, old: new >= old) if pos.side == "LONG" else (lambda new, old: new <= old)

    for bar in bars:
        before = pos.stop_price
        _, pos = ladder_step(pos, *bar_prices(bar), STEP, breakeven_after_first=breakeven, tick_size=tick)
        if pos.quantity == 0:
            break

        assert tighter_or_equal(pos.stop_price, before)
        if pos.best_price is not None:
            assert pos.stop_price < pos.best_price if pos.side == "LONG" else pos.stop_price > pos.best_price


@given(POSITIONS, st.none() | TRAILS, TICKS, st.booleans(), BARS)
def test_ladder_step_trail_exits_never_exceed_initial_quantity(position, trail, tick, breakeven, bars):
    pos, closed = replace(position, trail_distance=trail), D(0)

    for bar in bars:
        exits, pos = ladder_step(pos, *bar_prices(bar), STEP, breakeven_after_first=breakeven, tick_size=tick)
        closed += sum((e.quantity for e in exits), D(0))

    assert closed <= position.initial_quantity
    assert closed + pos.quantity == position.initial_quantity


def previous_ladder_step(pos, bar_open, bar_high, bar_low, step_size, breakeven):
    """Return the exits and (quantity, stop, filled flags) of the breakeven-only ladder before the trail."""
    below = pos.side == "LONG"

    def reached(level, against):
        if against:
            return bar_open if bar_open <= level else (level if bar_low <= level else None)
        return bar_open if bar_open >= level else (level if bar_high >= level else None)

    stop_fill = reached(pos.stop_price, against=below)
    if stop_fill is not None:
        return [LadderExit("sl", "stop", stop_fill, pos.quantity)], (D(0), pos.stop_price, pos.targets)
    exits, remaining, targets = [], pos.quantity, list(pos.targets)
    for i, target in enumerate(targets):
        if target.filled or remaining <= 0:
            continue
        fill = reached(target.price, against=not below)
        if fill is None:
            break
        last = all(t.filled for t in targets[i + 1:])
        share = (pos.initial_quantity * target.share / step_size).to_integral_value(rounding="ROUND_DOWN") * step_size
        quantity = remaining if last else min(remaining, share)
        targets[i] = replace(target, filled=True)
        if quantity > 0:
            exits.append(LadderExit(f"tp{i + 1}", "target", fill, quantity))
            remaining -= quantity
    stop = pos.stop_price
    if exits and breakeven:
        stop = max(stop, pos.entry_price) if below else min(stop, pos.entry_price)
    return exits, (remaining, stop, tuple(targets))


@given(POSITIONS, TICKS, st.booleans(), BARS)
def test_ladder_step_without_trail_matches_breakeven_only_ladder(position, tick, breakeven, bars):
    pos = old = replace(position, trail_distance=None)

    for bar in bars:
        exits, pos = ladder_step(pos, *bar_prices(bar), STEP, breakeven_after_first=breakeven, tick_size=tick)
        old_exits, (quantity, stop, targets) = previous_ladder_step(old, *bar_prices(bar), STEP, breakeven)
        old = replace(old, quantity=quantity, stop_price=stop, targets=targets)

        assert exits == old_exits
        assert (pos.quantity, pos.stop_price, pos.targets) == (old.quantity, old.stop_price, old.targets)
        if pos.quantity == 0:
            break
