from decimal import Decimal as D

import pytest
from hypothesis import given, strategies as st

from execution.oms import (CLIENT_ID_PATTERN, TERMINAL_STATES, VENUE_STATES, IllegalTransition, OrderIntent,
                           OrderRejected, OrderState, OutcomeQueries, Precision, UnknownOutcomeAction,
                           UnknownOutcomePolicy, apply_precision, apply_venue_state, client_order_id, is_ours,
                           make_intent_id, split_client_order_id, transition)


def _intent(**overrides) -> OrderIntent:
    base = dict(intent_id=make_intent_id("paper", 1, "5m", "2025-07-05T00:00"), leg="entry",
                symbol="BTC/USDT:USDT", side="buy", type="market", quantity=D("0.0127"))
    return OrderIntent(**(base | overrides))


def test_client_order_id_is_deterministic_and_binance_valid():
    a, b = _intent(), _intent()

    assert a.client_order_id == b.client_order_id
    assert CLIENT_ID_PATTERN.match(a.client_order_id)
    assert len(a.client_order_id) <= 36


def test_make_intent_id_differs_per_bar():
    assert make_intent_id("paper", 1, "5m", "a") != make_intent_id("paper", 1, "5m", "b")


def test_apply_precision_rounds_quantity_down_to_step():
    rounded = apply_precision(_intent(), Precision(D("0.1"), D("0.001"), D("5")), D("60000"))

    assert rounded.quantity == D("0.012")


def test_apply_precision_below_min_notional_rejected_with_reason():
    with pytest.raises(OrderRejected, match="below the minimum 100"):
        apply_precision(_intent(quantity=D("0.001")), Precision(D("0.1"), D("0.001"), D("100")), D("60000"))


def test_apply_precision_reduce_only_exit_may_be_small():
    intent = _intent(quantity=D("0.001"), reduce_only=True, side="sell", leg="exit")

    assert apply_precision(intent, Precision(D("0.1"), D("0.001"), D("100")), D("60000")).quantity == D("0.001")


def test_on_tick_shows_the_ticks_decimals():
    from execution.engine import on_tick

    assert str(on_tick(D("111008.7000000000"), D("0.1000000000"))) == "111008.7"
    assert str(on_tick(D("3.1400000000"), D("1.0000000000"))) == "3"


# --- order state machine -------------------------------------------------------------------------

S = OrderState


@pytest.mark.parametrize("current, target", [
    # the ordinary life of an order
    (S.NEW, S.SUBMITTED), (S.SUBMITTED, S.ACCEPTED), (S.ACCEPTED, S.TRIGGERED), (S.TRIGGERED, S.FILLED),
    (S.ACCEPTED, S.PARTIALLY_FILLED), (S.PARTIALLY_FILLED, S.PARTIALLY_FILLED), (S.PARTIALLY_FILLED, S.FILLED),
    # a market order fills before its ack is processed
    (S.SUBMITTED, S.FILLED),
    # cancels: confirmed, refused (back to working), or beaten by a fill
    (S.ACCEPTED, S.PENDING_CANCEL), (S.PENDING_CANCEL, S.CANCELED), (S.PENDING_CANCEL, S.ACCEPTED),
    (S.PENDING_CANCEL, S.FILLED),
    # a fill raced the cancel or the expiry and is reported after it
    (S.CANCELED, S.FILLED), (S.CANCELED, S.PARTIALLY_FILLED), (S.EXPIRED, S.FILLED),
    # unknown outcome: the one resend, the venue's answer, or lost
    (S.SUBMITTED, S.UNKNOWN), (S.UNKNOWN, S.SUBMITTED), (S.UNKNOWN, S.REJECTED), (S.UNKNOWN, S.LOST),
    # a lost order found again
    (S.ACCEPTED, S.LOST), (S.LOST, S.FILLED), (S.LOST, S.PARTIALLY_FILLED), (S.LOST, S.CANCELED),
    # repeated reports are no-ops
    (S.FILLED, S.FILLED), (S.REJECTED, S.REJECTED),
])
def test_transition_legal_returns_target(current, target):
    assert transition(current, target) == target


@pytest.mark.parametrize("current, target", [
    # terminal states stay terminal (except for late fills)
    (S.FILLED, S.CANCELED), (S.FILLED, S.PARTIALLY_FILLED), (S.REJECTED, S.ACCEPTED), (S.REJECTED, S.FILLED),
    (S.CANCELED, S.ACCEPTED), (S.EXPIRED, S.CANCELED),
    # no skipping the send, no going back
    (S.NEW, S.ACCEPTED), (S.NEW, S.FILLED), (S.ACCEPTED, S.SUBMITTED), (S.PARTIALLY_FILLED, S.ACCEPTED),
    # unknown is about a send; lost is not rejected after the fact
    (S.ACCEPTED, S.UNKNOWN), (S.LOST, S.REJECTED), (S.LOST, S.UNKNOWN),
])
def test_transition_illegal_raises_naming_both_states(current, target):
    with pytest.raises(IllegalTransition, match=f"{current.value} -> {target.value}"):
        transition(current, target)


def test_illegal_transition_is_a_value_error_carrying_both_states():
    with pytest.raises(ValueError, match="filled -> canceled") as info:
        transition("filled", "canceled")

    assert (info.value.current, info.value.target) == (S.FILLED, S.CANCELED)


def test_order_state_values_are_exactly_the_issue_list():
    assert [s.value for s in OrderState] == ["new", "submitted", "accepted", "triggered", "partially_filled",
                                             "filled", "pending_cancel", "canceled", "rejected", "expired",
                                             "unknown", "lost"]


@pytest.mark.parametrize("venue_state", sorted(VENUE_STATES))
def test_transition_unknown_reaches_every_venue_state(venue_state):
    assert transition(S.UNKNOWN, venue_state) == venue_state


@given(st.sampled_from(list(OrderState)), st.sampled_from(list(OrderState)))
def test_transition_from_terminal_only_reaches_fills(current, target):
    try:
        result = transition(current, target)
    except IllegalTransition:
        return

    assert result == target
    if current in TERMINAL_STATES and target != current:
        assert target in (S.PARTIALLY_FILLED, S.FILLED)


@pytest.mark.parametrize("current, venue_state, ours, venue, expected", [
    (S.ACCEPTED, "partially_filled", D("0"), D("0.4"), (S.PARTIALLY_FILLED, True)),
    (S.PARTIALLY_FILLED, "filled", D("1"), D("1"), (S.FILLED, False)),
    (S.CANCELED, "canceled", D("0.2"), D("0.5"), (S.CANCELED, True)),   # fills booked late
    (S.LOST, "filled", D("0"), D("1"), (S.FILLED, True)),
])
def test_apply_venue_state_returns_state_and_missing_fills(current, venue_state, ours, venue, expected):
    change = apply_venue_state(current, venue_state, ours, venue)

    assert (change.state, change.fills_missing) == expected


def test_apply_venue_state_book_only_state_refused():
    with pytest.raises(ValueError, match="'lost' is not a state a venue reports"):
        apply_venue_state(S.ACCEPTED, "lost", D("0"), D("0"))


def test_apply_venue_state_illegal_raises():
    with pytest.raises(IllegalTransition, match="filled -> accepted"):
        apply_venue_state(S.FILLED, "accepted", D("1"), D("1"))


# --- unknown outcome policy ----------------------------------------------------------------------

A = UnknownOutcomeAction


def _misses(*times_ms: int, **fields) -> OutcomeQueries:
    queries = OutcomeQueries(**fields)
    for ts_ms in times_ms:
        queries = queries.with_miss(ts_ms)
    return queries


@pytest.mark.parametrize("queries, expected", [
    # found: the venue's state is the truth
    (OutcomeQueries().with_found("accepted"), A.APPLY_FOUND),
    (_misses(0, 2000).with_found("filled"), A.APPLY_FOUND),
    # not enough spaced misses yet
    (OutcomeQueries(), A.QUERY_AGAIN),
    (_misses(0, 2000), A.QUERY_AGAIN),
    (_misses(0, 1999, 3998), A.QUERY_AGAIN),                       # the second is too soon: two count
    # three misses at least 2 s apart, never acknowledged: one resend with the same id
    (_misses(0, 2000, 4000), A.RESEND_SAME_ID),
    (_misses(0, 500, 2000, 4100), A.RESEND_SAME_ID),
    # acknowledged earlier and now missing three times: lost
    (_misses(0, 2000, 4000, acknowledged=True), A.DECLARE_LOST),
    # after the resend only misses after it count; three more and it is lost
    (_misses(0, 2000, 4000).with_resend(5000), A.QUERY_AGAIN),
    (_misses(0, 2000, 4000).with_resend(5000).with_miss(5000).with_miss(7000), A.QUERY_AGAIN),
    (_misses(0, 2000, 4000).with_resend(5000).with_miss(5000).with_miss(7000).with_miss(9000), A.DECLARE_LOST),
    # -4116 on the resend: it exists after all; query afresh
    (_misses(0, 2000, 4000).with_resend(5000).with_duplicate(), A.QUERY_AGAIN),
    (_misses(0, 2000, 4000).with_resend(5000).with_duplicate().with_miss(6000).with_miss(8000).with_miss(10000),
     A.DECLARE_LOST),
])
def test_unknown_outcome_policy_next_action(queries, expected):
    assert UnknownOutcomePolicy().next_action(queries) == expected


def test_unknown_outcome_policy_min_gap_configurable():
    assert UnknownOutcomePolicy(min_gap_ms=500).next_action(_misses(0, 500, 1000)) == A.RESEND_SAME_ID


def test_unknown_outcome_lost_order_found_later_moves_on():
    queries = _misses(0, 2000, 4000, acknowledged=True)
    assert UnknownOutcomePolicy().next_action(queries) == A.DECLARE_LOST

    found = queries.with_miss(60_000).with_found("filled")

    assert UnknownOutcomePolicy().next_action(found) == A.APPLY_FOUND
    assert transition(S.LOST, found.found) == S.FILLED


def test_outcome_queries_miss_after_found_clears_found():
    assert OutcomeQueries().with_found("accepted").with_miss(1).found is None


# --- client order ids ----------------------------------------------------------------------------

LEGS = ["entry", "sl", "exit", *(f"tp{i}" for i in range(1, 10)), *(f"chase{i}" for i in range(1, 10))]
PARTS = st.lists(st.one_of(st.text(max_size=30), st.integers(), st.sampled_from(["5m", "2025-07-05T00:00"])),
                 min_size=1, max_size=5).map(tuple)


@given(PARTS, st.sampled_from(LEGS), PARTS, st.sampled_from(LEGS))
def test_client_order_id_always_valid_and_distinct(parts_a, leg_a, parts_b, leg_b):
    a = client_order_id(make_intent_id(*parts_a), leg_a)
    b = client_order_id(make_intent_id(*parts_b), leg_b)

    assert CLIENT_ID_PATTERN.match(a) and len(a) <= 36
    assert is_ours(a)
    assert split_client_order_id(a) == (make_intent_id(*parts_a), leg_a)
    if (tuple(map(str, parts_a)), leg_a) != (tuple(map(str, parts_b)), leg_b):
        assert a != b


def test_make_intent_id_separator_inside_a_part_is_not_a_separator():
    assert make_intent_id("a|b") != make_intent_id("a", "b")


def test_make_intent_id_unchanged_for_plain_parts():
    # Ids of orders already in the database must not change.
    assert make_intent_id("paper", 1, "5m", "a") == "ec053ece1c9f00d3d41a"


@pytest.mark.parametrize("client_id, ours", [
    ("tb-0123abcd-sl", True), ("autoclose-1700000000000", False), ("adl_autoclose", False),
    ("web_AbC123", False), ("x-xcKtGhcu0123456789abcdef012345", False), ("", False),
])
def test_is_ours_by_prefix(client_id, ours):
    assert is_ours(client_id) is ours


def test_split_client_order_id_not_ours_returns_none():
    assert split_client_order_id("autoclose-1700000000000") is None


def test_client_order_id_refused_when_binance_would_refuse():
    with pytest.raises(ValueError, match="does not match"):
        client_order_id("x" * 40, "entry")


# --- precision gate: LOT_SIZE and PERCENT_PRICE ---------------------------------------------------

BTC = Precision(D("0.1"), D("0.001"), D("5"), min_quantity=D("0.002"), max_quantity=D("1000"),
                percent_price_up=D("1.05"), percent_price_down=D("0.95"))


@pytest.mark.parametrize("quantity, accepted", [
    # min_quantity 0.002: at, just inside, just outside
    (D("0.002"), True), (D("0.003"), True), (D("0.001"), False),
    # max_quantity 1000
    (D("1000"), True), (D("999.999"), True), (D("1000.001"), False),
])
def test_apply_precision_quantity_bounds(quantity, accepted):
    intent = _intent(quantity=quantity, reduce_only=True, side="sell", leg="exit")

    if accepted:
        assert apply_precision(intent, BTC, D("60000")).quantity == quantity
    else:
        with pytest.raises(OrderRejected, match="(below the minimum|above the maximum)"):
            apply_precision(intent, BTC, D("60000"))


@pytest.mark.parametrize("side, price, accepted", [
    # a buy may not exceed mark * 1.05 = 105.00: at, just inside, just outside
    ("buy", D("105.0"), True), ("buy", D("104.9"), True), ("buy", D("105.1"), False),
    # a sell may not go below mark * 0.95 = 95.00
    ("sell", D("95.0"), True), ("sell", D("95.1"), True), ("sell", D("94.9"), False),
    # passive orders far from the mark are the venue's business, not this filter's
    ("buy", D("50.0"), True), ("sell", D("200.0"), True),
])
def test_apply_precision_percent_price(side, price, accepted):
    intent = _intent(type="limit", side=side, price=price, quantity=D("1"))

    if accepted:
        assert apply_precision(intent, BTC, D("100"), mark_price=D("100")).price == price
    else:
        with pytest.raises(OrderRejected, match=r"outside the PERCENT_PRICE band \[95\.00, 105\.00\]"):
            apply_precision(intent, BTC, D("100"), mark_price=D("100"))


def test_apply_precision_percent_price_uses_mark_over_reference():
    intent = _intent(type="limit", side="buy", price=D("105.1"), quantity=D("1"))

    assert apply_precision(intent, BTC, D("100"), mark_price=D("101")).price == D("105.1")


def test_apply_precision_percent_price_ignores_market_and_stop_orders():
    intent = _intent(type="stop_market", side="buy", trigger_price=D("200"), quantity=D("1"))

    assert apply_precision(intent, BTC, D("100"), mark_price=D("100")).trigger_price == D("200")


def test_apply_precision_defaults_keep_old_behaviour():
    intent = _intent(type="limit", side="buy", price=D("1000"), quantity=D("0.0001"), reduce_only=True)

    assert apply_precision(intent, Precision(D("0.1"), D("0.0001"), D("5")), D("100")).price == D("1000")
