from datetime import datetime, time, timedelta, timezone
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from decisions.risk.gates import GateResult
from decisions.risk.limits import ClosedTrade, OpenPosition, RecentOrder, RiskLimits, RiskState
from decisions.risk.wall import GATE_ORDER, combine, day_bounds, evaluate_gates, format_local, to_ms, week_bounds

WARSAW = ZoneInfo("Europe/Warsaw")
UTC = timezone.utc
MIN = 60_000
ALL_DAY = RiskLimits(trading_start=time(0), trading_end=time(0))   # hours tested on their own


def local(*args, fold=0) -> datetime:
    return datetime(*args, tzinfo=WARSAW, fold=fold)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def make_state(**overrides) -> RiskState:
    base = dict(equity_now=D("10000"), day_start_equity=D("10000"), week_start_equity=D("10000"),
                peak_equity=D("10000"))
    return RiskState(**(base | overrides))


def gates_at(now, state=None, limits=ALL_DAY, side="LONG", symbol="BTCUSDT", **kwargs) -> dict[str, GateResult]:
    return {r.name: r for r in evaluate_gates(state or make_state(), limits, now, side, symbol, **kwargs)}


def trade(closed, pnl="-10", reason="stop", opened=None, symbol="BTCUSDT") -> ClosedTrade:
    closed_ms = to_ms(closed)
    return ClosedTrade(symbol, "LONG", D(pnl), reason, closed_ms - 10 * MIN if opened is None else to_ms(opened),
                       closed_ms)


def state_from_equity(points: list[tuple[datetime, str]], now: datetime, limits=ALL_DAY) -> RiskState:
    """Build the state the way the shell does: equity at the local day/week start and the lows since."""
    marks = [(to_ms(t), D(e)) for t, e in points if to_ms(t) <= to_ms(now)]
    day_start, _ = day_bounds(now, limits)
    week_start, _ = week_bounds(now, limits)

    def start_equity(boundary):
        before = [e for t, e in marks if t <= boundary]
        return before[-1] if before else marks[0][1]

    def low_since(boundary):
        return min([e for t, e in marks if t >= boundary] or [marks[-1][1]])

    return make_state(equity_now=marks[-1][1], day_start_equity=start_equity(day_start),
                      week_start_equity=start_equity(week_start), peak_equity=max(e for _, e in marks),
                      day_low_equity=low_since(day_start), week_low_equity=low_since(week_start))


# --- order and the calm case ------------------------------------------------------------------

def test_evaluate_gates_returns_every_gate_in_gate_order():
    results = evaluate_gates(make_state(), ALL_DAY, local(2026, 11, 25, 12), "LONG", "BTCUSDT")

    assert tuple(r.name for r in results) == GATE_ORDER


def test_evaluate_gates_calm_state_allows_full_size():
    verdict = combine(evaluate_gates(make_state(), ALL_DAY, local(2026, 11, 25, 12), "SHORT", "BTCUSDT"))

    assert verdict == (True, 1.0, None)


def test_evaluate_gates_epoch_ms_and_datetime_agree():
    now = local(2025, 10, 26, 2, 30, fold=1)

    assert evaluate_gates(make_state(), RiskLimits(), now, "LONG", "X") == evaluate_gates(
        make_state(), RiskLimits(), to_ms(now), "LONG", "X")


@pytest.mark.parametrize("side, now, message", [
    ("BUY", local(2026, 1, 1), "side"),                 # Signal actions only
    ("LONG", datetime(2026, 1, 1), "naive"),            # wall time without a zone is ambiguous
])
def test_evaluate_gates_bad_input_raises(side, now, message):
    with pytest.raises(ValueError, match=message):
        evaluate_gates(make_state(), ALL_DAY, now, side, "X")


# --- calendar ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "now, start, end, hours",
    [
        # an ordinary winter day (CET, UTC+1)
        (utc(2026, 11, 25, 23, 30), utc(2026, 11, 25, 23), utc(2026, 11, 26, 23), 24),
        # 2025-03-30: clocks jump 02:00 -> 03:00, the day has 23 hours
        (local(2025, 3, 30, 12), utc(2025, 3, 29, 23), utc(2025, 3, 30, 22), 23),
        (utc(2025, 3, 30, 22), utc(2025, 3, 30, 22), utc(2025, 3, 31, 22), 24),   # its end starts the next
        # 2025-10-26: clocks fall back 03:00 -> 02:00, the day has 25 hours
        (local(2025, 10, 26, 2, 30, fold=1), utc(2025, 10, 25, 22), utc(2025, 10, 26, 23), 25),
        (utc(2025, 10, 26, 22, 59), utc(2025, 10, 25, 22), utc(2025, 10, 26, 23), 25),
    ],
)
def test_day_bounds_are_local_midnights(now, start, end, hours):
    bounds = day_bounds(now, RiskLimits())

    assert bounds == (to_ms(start), to_ms(end))
    assert bounds[1] - bounds[0] == hours * 3_600_000


@pytest.mark.parametrize(
    "now, monday",
    [
        (local(2025, 10, 26, 23, 59), local(2025, 10, 20)),   # Sunday night of the DST week
        (local(2025, 10, 27, 0, 0), local(2025, 10, 27)),     # Monday 00:00 starts a new week
        (local(2025, 10, 20, 0, 0), local(2025, 10, 20)),
        (utc(2025, 10, 26, 23, 0), local(2025, 10, 27)),      # Sunday 23:00 UTC is already Monday in Warsaw
    ],
)
def test_week_bounds_start_monday_midnight_local(now, monday):
    start, end = week_bounds(now, RiskLimits())

    assert start == to_ms(monday)
    assert end == to_ms(datetime.combine(monday.date() + timedelta(days=7), time(0), WARSAW))


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)))
def test_day_bounds_hold_now_and_are_midnights(now):
    start, end = day_bounds(now, RiskLimits())

    assert start <= to_ms(now) < end
    assert end - start in (23 * 3_600_000, 24 * 3_600_000, 25 * 3_600_000)
    assert datetime.fromtimestamp(start / 1000, WARSAW).time() == time(0)


# --- daily loss circuit breaker ---------------------------------------------------------------

@pytest.mark.parametrize(
    "day_low, verdict",
    [
        (D("9801"), "allow"),    # -1.99 %
        (D("9800"), "block"),    # exactly -2 %
        (D("9799"), "block"),    # -2.01 %
    ],
)
def test_daily_loss_breaker_trips_at_two_percent(day_low, verdict):
    gate = gates_at(local(2026, 11, 25, 12), make_state(equity_now=day_low, day_low_equity=day_low))["daily_loss"]

    assert gate.verdict == verdict


def test_daily_loss_breaker_stays_tripped_after_a_rebound():
    state = make_state(equity_now=D("10000"), day_low_equity=D("9790"))

    assert gates_at(local(2026, 11, 25, 12), state)["daily_loss"].blocked


@pytest.mark.parametrize(
    "now, until",
    [
        (local(2026, 11, 25, 23, 59), "2026-11-26 00:00"),
        (local(2025, 3, 30, 12), "2025-03-31 00:00"),       # 23-hour day
        (local(2025, 10, 26, 12), "2025-10-27 00:00"),      # 25-hour day
        (utc(2025, 10, 26, 23, 30), "2025-10-28 00:00"),    # 00:30 local on the 27th
    ],
)
def test_daily_loss_breaker_paused_until_next_local_midnight(now, until):
    gate = gates_at(now, make_state(equity_now=D("9750")))["daily_loss"]

    assert gate.reason.startswith(f"paused until {until} Europe/Warsaw by daily_loss: daily loss limit hit")
    assert format_local(gate.until_ms, ALL_DAY) == f"{until} Europe/Warsaw"
    assert gate.as_dict()["until_ms"] == gate.until_ms


@pytest.mark.parametrize(
    "loss_at, probe, blocked",
    [
        # 25-hour day 2025-10-26 (midnight = 23:00 UTC): a 24-hour clock would reset at 22:00 UTC
        (utc(2025, 10, 26, 12), utc(2025, 10, 26, 22, 30), True),    # 23:30 local: still the same day
        (utc(2025, 10, 26, 12), utc(2025, 10, 26, 22, 59, 59), True),
        (utc(2025, 10, 26, 12), utc(2025, 10, 26, 23, 0), False),    # local midnight: reset
        # 23-hour day 2025-03-30 (midnight = 22:00 UTC): a 24-hour clock would still be tripped
        (utc(2025, 3, 30, 12), utc(2025, 3, 30, 21, 59), True),
        (utc(2025, 3, 30, 12), utc(2025, 3, 30, 22, 0), False),
        (utc(2025, 3, 30, 12), utc(2025, 3, 30, 22, 30), False),
        # an ordinary winter day: UTC midnight is 01:00 local, not a reset
        (utc(2026, 11, 25, 12), utc(2026, 11, 26, 0, 30), False),
        (utc(2026, 11, 25, 12), utc(2026, 11, 25, 22, 59), True),
    ],
)
def test_daily_loss_breaker_resets_at_local_day_boundary(loss_at, probe, blocked):
    points = [(loss_at - timedelta(days=3), "10000"), (loss_at, "9750")]   # -2.5 % and flat after it

    gate = gates_at(probe, state_from_equity(points, probe))["daily_loss"]

    assert gate.blocked is blocked


# --- weekly and all-time drawdown -------------------------------------------------------------

def test_weekly_drawdown_paused_until_next_monday_local():
    gate = gates_at(local(2025, 10, 26, 20), make_state(week_low_equity=D("9500")))["weekly_drawdown"]

    assert gate.blocked
    assert gate.until_ms == to_ms(local(2025, 10, 27))
    assert "paused until 2025-10-27 00:00 Europe/Warsaw by weekly_drawdown" in gate.reason


@pytest.mark.parametrize(
    "probe, blocked",
    [
        (local(2025, 10, 26, 23, 59), True),    # Sunday: the week of the loss
        (local(2025, 10, 27, 0, 0), False),     # Monday 00:00 local: new week
    ],
)
def test_weekly_drawdown_resets_monday_midnight_local(probe, blocked):
    points = [(local(2025, 10, 19), "10000"), (local(2025, 10, 21, 12), "9400"),   # -6 % on Tuesday
              (local(2025, 10, 23, 12), "9900")]                                    # rebound: -1 % now

    gates = gates_at(probe, state_from_equity(points, probe))

    assert gates["weekly_drawdown"].blocked is blocked
    assert not gates["daily_loss"].blocked


def test_max_drawdown_needs_an_operator():
    gate = gates_at(local(2026, 1, 5, 12), make_state(equity_now=D("8900"), day_start_equity=D("8900"),
                                                     week_start_equity=D("8900")))["max_drawdown"]

    assert gate.blocked and gate.until_ms is None
    assert gate.reason.startswith("paused until an operator overrides it by max_drawdown")


# --- counts over today's trades (local day) ---------------------------------------------------

NOON = local(2025, 10, 26, 12)


@pytest.mark.parametrize(
    "pnls, limits, blocked",
    [
        # default: three losses in a row
        (["-1", "-1"], ALL_DAY, False),
        (["-1", "-1", "-1"], ALL_DAY, True),
        (["-1", "-1", "-1", "-1"], ALL_DAY, True),
        (["-1", "-1", "-1", "5"], ALL_DAY, False),     # a win ends the streak
        (["-1", "0", "-1", "-1"], ALL_DAY, False),     # breakeven is no loss: streak 2
        # conservative profile: two
        (["-1"], RiskLimits.conservative().with_changes(trading_start=time(0), trading_end=time(0)), False),
        (["-1", "-1"], RiskLimits.conservative().with_changes(trading_start=time(0), trading_end=time(0)), True),
    ],
)
def test_loss_streak_counts_consecutive_losses_today(pnls, limits, blocked):
    trades = tuple(trade(NOON - timedelta(hours=len(pnls) - i), pnl, "target") for i, pnl in enumerate(pnls))

    gate = gates_at(NOON, make_state(closed_trades=trades[::-1]), limits)["loss_streak"]   # order-free input

    assert gate.blocked is blocked


@pytest.mark.parametrize(
    "reasons, blocked",
    [
        (["stop", "stop"], False),
        (["stop", "stop", "stop"], True),
        (["stop", "stop", "target"], False),
        (["target", "stop", "stop", "stop"], True),
    ],
)
def test_sl_streak_counts_consecutive_stop_exits_today(reasons, blocked):
    trades = tuple(trade(NOON - timedelta(hours=len(reasons) - i), "1", r) for i, r in enumerate(reasons))

    assert gates_at(NOON, make_state(closed_trades=trades))["sl_streak"].blocked is blocked


def test_streaks_ignore_trades_before_local_midnight():
    # 23:10, 23:20, 23:30 on 2025-10-26 (CET): yesterday once local midnight (23:00 UTC) passes
    trades = tuple(trade(local(2025, 10, 26, 23, m)) for m in (10, 20, 30))

    before = gates_at(local(2025, 10, 26, 23, 50), make_state(closed_trades=trades))
    after = gates_at(local(2025, 10, 27, 0, 10), make_state(closed_trades=trades))

    assert before["loss_streak"].blocked and before["trades_per_day"].blocked
    assert "2025-10-27 00:00" in before["loss_streak"].reason
    assert not after["loss_streak"].blocked and not after["trades_per_day"].blocked


@pytest.mark.parametrize(
    "closed, still_open, blocked",
    [
        (2, 0, False),
        (3, 0, True),     # three entries today: the 4th is blocked
        (2, 1, True),     # an open position opened today counts too
        (1, 1, False),
    ],
)
def test_trades_per_day_counts_entries_today(closed, still_open, blocked):
    trades = tuple(trade(NOON - timedelta(hours=i + 1), "5", "target") for i in range(closed))
    positions = tuple(OpenPosition("ETHUSDT", "LONG", to_ms(NOON) - MIN) for _ in range(still_open))

    gate = gates_at(NOON, make_state(closed_trades=trades, open_positions=positions))["trades_per_day"]

    assert gate.blocked is blocked


def test_trades_per_day_skips_a_trade_opened_yesterday_and_closed_today():
    old = trade(NOON - timedelta(hours=1), "5", "target", opened=NOON - timedelta(days=1))
    today = tuple(trade(NOON - timedelta(hours=h), "5", "target") for h in (2, 3))

    assert not gates_at(NOON, make_state(closed_trades=(old, *today)))["trades_per_day"].blocked


@pytest.mark.parametrize(
    "wins, losses, blocked",
    [
        # PF = wins x 10 / losses x 10 over wins + losses trades
        (4, 5, False),    # 9 trades, PF 0.8: not judged yet
        (4, 6, True),     # 10 trades, PF 0.67
        (5, 5, False),    # PF exactly 1.0
        (6, 5, False),
        (0, 10, True),
    ],
)
def test_profit_factor_stop_after_ten_trades(wins, losses, blocked):
    pnls = ["10"] * wins + ["-10"] * losses
    trades = tuple(trade(NOON - timedelta(minutes=5 * (i + 1)), p, "x") for i, p in enumerate(pnls))
    limits = ALL_DAY.with_changes(loss_streak=50, max_trades_per_day=50)

    assert gates_at(NOON, make_state(closed_trades=trades), limits)["profit_factor"].blocked is blocked


# --- trading hours and quiet periods ----------------------------------------------------------

@pytest.mark.parametrize(
    "now, start, end, until",
    [
        # default 07:00-23:00 Warsaw
        (local(2026, 11, 25, 6, 59), time(7), time(23), local(2026, 11, 25, 7)),
        (local(2026, 11, 25, 7, 0), time(7), time(23), None),
        (local(2026, 11, 25, 22, 59), time(7), time(23), None),
        (local(2026, 11, 25, 23, 0), time(7), time(23), local(2026, 11, 26, 7)),
        (local(2025, 3, 30, 1, 0), time(7), time(23), local(2025, 3, 30, 7)),   # 07:00 CEST on the DST day
        # across midnight 22:00-06:00
        (local(2026, 11, 25, 12, 0), time(22), time(6), local(2026, 11, 25, 22)),
        (local(2026, 11, 25, 23, 0), time(22), time(6), None),
        (local(2026, 11, 26, 5, 59), time(22), time(6), None),
        (local(2026, 11, 26, 6, 0), time(22), time(6), local(2026, 11, 26, 22)),
    ],
)
def test_trading_hours_in_local_time(now, start, end, until):
    gate = gates_at(now, limits=RiskLimits(trading_start=start, trading_end=end))["trading_hours"]

    assert gate.blocked is (until is not None)
    assert gate.until_ms == (None if until is None else to_ms(until))


@pytest.mark.parametrize(
    "field, name, minutes_ago, blocked",
    [
        # hard news: 15 min mute
        ("last_hard_news_ms", "news_mute", 14.99, True),
        ("last_hard_news_ms", "news_mute", 15, False),
        ("last_hard_news_ms", "news_mute", 15.01, False),
        # cooldown after a trade: 15 min
        ("last_trade_ms", "cooldown", 14.99, True),
        ("last_trade_ms", "cooldown", 15, False),
    ],
)
def test_quiet_periods_after_news_and_trades(field, name, minutes_ago, blocked):
    since = to_ms(NOON) - int(minutes_ago * MIN)

    gate = gates_at(NOON, make_state(**{field: since}))[name]

    assert gate.blocked is blocked
    if blocked:
        assert gate.until_ms == since + 15 * MIN


# --- exposure ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "positions, correlations, side, blocked_by",
    [
        ((), {}, "LONG", None),
        ((("BTCUSDT", "LONG"),), {}, "LONG", "one_position"),
        ((("ETHUSDT", "SHORT"),), {"ETHUSDT": 0.5}, "LONG", None),
        # max 2 open positions
        ((("ETHUSDT", "SHORT"), ("SOLUSDT", "SHORT")), {}, "LONG", "max_positions"),
        # correlation: same direction above 0.8
        ((("ETHUSDT", "LONG"),), {"ETHUSDT": 0.85}, "LONG", "correlation"),
        ((("ETHUSDT", "LONG"),), {"ETHUSDT": 0.80}, "LONG", None),
        ((("ETHUSDT", "SHORT"),), {"ETHUSDT": 0.85}, "LONG", None),
        ((("ETHUSDT", "LONG"),), {}, "LONG", None),       # unknown correlation: not judged
    ],
)
def test_exposure_gates(positions, correlations, side, blocked_by):
    state = make_state(open_positions=tuple(OpenPosition(s, d, 0) for s, d in positions), correlations=correlations)

    verdict = combine(evaluate_gates(state, ALL_DAY, NOON, side, "BTCUSDT"))

    assert (verdict.first_block.name if verdict.first_block else None) == blocked_by


# --- order rate and turnover per 5 minutes ----------------------------------------------------

@pytest.mark.parametrize(
    "ages_s, blocked",
    [
        ([10 * i for i in range(9)], False),     # 9 orders
        ([10 * i for i in range(10)], True),     # the 10th reaches the cap
        ([10 * i for i in range(9)] + [300], False),   # exactly 5 min old: outside the window
        ([10 * i for i in range(9)] + [299], True),
    ],
)
def test_order_rate_ten_per_five_minutes(ages_s, blocked):
    orders = tuple(RecentOrder(to_ms(NOON) - a * 1000, D("1")) for a in ages_s)

    gate = gates_at(NOON, make_state(recent_orders=orders))["order_rate"]

    assert gate.blocked is blocked
    if blocked:   # lifts when the oldest of the ten leaves the window
        assert gate.until_ms == to_ms(NOON) - max(ages_s) * 1000 + 5 * MIN


@pytest.mark.parametrize(
    "notionals, blocked, until_age_s",
    [
        (["49999"], False, None),
        (["50000"], True, 60),
        (["30000", "30000"], True, 60),        # lifts once the older one (60 s ago) leaves
        (["10000", "60000"], True, 30),        # the newer one alone reaches the cap: both must leave
    ],
)
def test_turnover_five_times_equity_per_five_minutes(notionals, blocked, until_age_s):
    orders = tuple(RecentOrder(to_ms(NOON) - (60 - 30 * i) * 1000, D(n)) for i, n in enumerate(notionals))

    gate = gates_at(NOON, make_state(recent_orders=orders))["turnover"]

    assert gate.blocked is blocked
    if blocked:
        assert gate.until_ms == to_ms(NOON) - until_age_s * 1000 + 5 * MIN


# --- market gates, overrides, combine ---------------------------------------------------------

def test_volatility_throttle_halves_the_size_and_allows():
    gates = evaluate_gates(make_state(atr_percentile=95.0), ALL_DAY, NOON, "LONG", "BTCUSDT")

    assert combine(gates) == (True, 0.5, None)


@pytest.mark.parametrize("overrides, blocked_by", [
    ((), "spread"),
    ({"spread"}, "min_volume"),
    (["spread", "min_volume"], None),
])
def test_overridden_gates_allow_and_keep_the_reason(overrides, blocked_by):
    state = make_state(spread_bps=9.0, volume_24h_usdt=D("5"))

    results = evaluate_gates(state, ALL_DAY, NOON, "LONG", "BTCUSDT", overridden=overrides)
    verdict = combine(results)

    assert (verdict.first_block.name if verdict.first_block else None) == blocked_by
    assert all(r.reason.startswith("overridden by an operator: ") for r in results if r.name in set(overrides))


gate_results = st.builds(
    GateResult,
    name=st.sampled_from(GATE_ORDER),
    verdict=st.sampled_from(["allow", "block", "shrink"]),
    reason=st.just(""),
    size_factor=st.floats(min_value=0, max_value=1, exclude_min=True),
)


@given(st.lists(gate_results, max_size=20))
def test_combine_never_allows_a_block_and_keeps_factor_in_unit_interval(results):
    allowed, factor, first = combine(results)

    blocks = [r for r in results if r.blocked]
    shrinks = [r.size_factor for r in results if r.verdict == "shrink"]
    assert allowed is (not blocks)
    assert first is (blocks[0] if blocks else None)
    assert factor == min(shrinks, default=1.0)
    assert 0 < factor <= 1


@given(st.decimals(min_value=D("9000"), max_value=D("11000"), places=2))
def test_evaluate_gates_blocks_exactly_from_two_percent_down(equity):
    verdict = combine(evaluate_gates(make_state(equity_now=equity), ALL_DAY, NOON, "LONG", "BTCUSDT"))

    assert verdict.allowed is (equity > D("9800"))
