"""The pure step after the packet (decisions.pipeline): grid, gates, breaker, sizing and route from facts alone."""
from datetime import UTC, datetime, time
from decimal import Decimal as D

import pytest

from decisions.engine.packet import Context, PacketParams, packet_from_votes
from decisions.engine.rules import RuleParams, decide
from decisions.pipeline import AccountFacts, MarketRules, TradeLimits, decide_bar
from decisions.risk.limits import RiskLimits
from tests.decisions.engine.test_packet import BULLISH, _rules_vote, _snap
from tests.decisions.risk.test_wall import make_state

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)       # 13:00 in Warsaw: inside the default trading hours
MARKET = MarketRules("BTCUSDT", D("0.1"), D("0.001"), D("5"))
ALL_DAY = RiskLimits(trading_start=time(0), trading_end=time(0))   # hours tested on their own


def _trade(**overrides) -> TradeLimits:
    base = dict(rr_min=D("1.3"), taker_fee_fraction=D("0.0004"), slippage_bps=D("1"),
                max_cost_to_target_fraction=D("0.25"), risk_per_trade_fraction=D("0.005"), max_leverage=D("3"),
                max_margin_fraction=D("0.5"), max_open_positions=3, configured_mode="ON", paused=False,
                auto_approve_confidence=0.8)
    return TradeLimits(**(base | overrides))


def _long_packet():
    snapshot = _snap(trend="up", momentum="up", extra=BULLISH, close=60000.0, atr=300.0)
    return packet_from_votes((_rules_vote(snapshot),), snapshot, Context(), PacketParams(),
                             decide(snapshot, RuleParams()))


def _decide(trade=None, state=None, account=AccountFacts(D("10000"), D("0"), 0), flow_line=None):
    return decide_bar(_long_packet(), flow_line=flow_line, state=state or make_state(), limits=ALL_DAY,
                      trade=trade or _trade(), market=MARKET, account=account, now=NOON, overridden={})


def test_decide_bar_long_on_mode_on_executes_sized_on_the_tick_grid():
    bar = _decide(flow_line="flow: crowd bias +0.10")

    assert (bar.signal.action, bar.route.outcome, bar.mode) == ("LONG", "executed", "ON")
    # 0.5 % of 10 000 = 50 USDT at risk over the stop distance, on the 0.001 step.
    assert bar.sizing.quantity == (D("50") / (bar.signal.entry_price - bar.signal.stop_price)).quantize(
        D("0.001"), rounding="ROUND_DOWN")
    assert bar.signal.entry_price % MARKET.tick_size == 0 and bar.signal.stop_price % MARKET.tick_size == 0
    assert bar.signal.rationale[-1] == "flow: crowd bias +0.10"
    assert bar.breaker_until_ms is None


def test_decide_bar_daily_loss_trips_the_breaker_to_safe():
    bar = _decide(state=make_state(equity_now=D("9600"), day_start_equity=D("10000")))

    daily = next(g for g in bar.gates if g.name == "daily_loss")
    assert daily.blocked and bar.breaker_until_ms == daily.until_ms
    assert (bar.mode, bar.route.outcome) == ("SAFE", "blocked")


def test_decide_bar_breaker_already_holding_is_not_tripped_again():
    later_ms = int(datetime(2026, 11, 27, tzinfo=UTC).timestamp() * 1000)

    bar = _decide(trade=_trade(safe_until_ms=later_ms),
                  state=make_state(equity_now=D("9600"), day_start_equity=D("10000")))

    assert (bar.breaker_until_ms, bar.mode) == (None, "SAFE")


@pytest.mark.parametrize(("mode", "paused", "outcome"), [("SAFE", False, "logged"), ("HYBRID", False, "pending"),
                                                          ("ON", True, "paused")])
def test_decide_bar_routes_by_mode_and_pause(mode, paused, outcome):
    bar = _decide(trade=_trade(configured_mode=mode, paused=paused, auto_approve_confidence=1.0))

    assert bar.route.outcome == outcome


def test_decide_bar_size_zero_names_the_sizing_reason():
    bar = _decide(account=AccountFacts(D("10000"), D("0"), 3))      # max open positions reached

    assert bar.route.outcome == "skipped"
    assert bar.reason.endswith(bar.sizing.reason) and bar.sizing.quantity == 0
