"""Accounting of the pipeline backtester, hand-checked to the cent: fees, slippage, funding, PnL, liquidation.

Synthetic 15m BTCUSDT bars (tick 0.1, step 0.001) from 2025-01-01 05:00 UTC. The decision is forced
the way the live cycle tests force one (they replace `execution.engine.decision_run`): the
backtest's `decision_step` is replaced by one that sends a hand-written decision at a given close
through the real `decision_execute` (expiry, precision, `PaperBroker.submit`, position, liquidation
price). Everything after it, exits, funding, fees and the equity points, is the backtester's own.
Default costs: taker 0.0004, slippage 1 bps, maintenance margin 0.004.
"""
from datetime import datetime, timezone
from decimal import Decimal as D

import pandas as pd
import pytest

from decisions.models import Mode, TradingConfig
from execution.backtest import engine
from execution.backtest.entries import decision_execute
from execution.backtest.metrics import summarize
from execution.backtest.records import DecisionRecord
from execution.backtest.runs import closed_trades
from execution.backtest.state import dt
from execution.backtest.world import Candles, FundingRates, InstrumentSpec
from market.services import KNOWN_FILTERS

STEP_MS = 900_000
T0_MS = int(datetime(2025, 1, 1, 5, tzinfo=timezone.utc).timestamp() * 1000)
FUNDING_MS = int(datetime(2025, 1, 1, 8, tzinfo=timezone.utc).timestamp() * 1000)
START = datetime(2025, 1, 1, 5, 15, tzinfo=timezone.utc)


def _at(hour: int, minute: int = 0) -> int:
    return int(datetime(2025, 1, 1, hour, minute, tzinfo=timezone.utc).timestamp() * 1000)


def _candles(bars: list[tuple[str, str, str, str]]) -> dict[str, Candles]:
    frame = pd.DataFrame([(T0_MS + i * STEP_MS, o, h, low, c, "50") for i, (o, h, low, c) in enumerate(bars)],
                         columns=["open_time_ms", "open", "high", "low", "close", "volume"])
    return {"15m": Candles.from_frame("15m", frame)}


def _spec() -> InstrumentSpec:
    filters = {k: D(v) for k, v in KNOWN_FILTERS["BTCUSDT"].items()}
    return InstrumentSpec.of(type("Row", (), dict(pk=1, symbol="BTC/USDT:USDT", exchange_symbol="BTCUSDT",
                                                  base="BTC", **filters)))


def _forced(monkeypatch, decisions: dict[int, tuple[str, str, str, str]]) -> None:
    """Decide only at the given closes: {now_ms: (action, quantity, stop, target)}, entered at the last close."""
    def decision_step(run, sym, now_ms):
        if now_ms not in decisions:
            return
        action, quantity, stop, target = decisions[now_ms]
        price = sym.market.last_close(now_ms)
        record = DecisionRecord(dt(now_ms), action, "executed", Mode.ON, "forced", price, D(stop), D(target), (),
                                D(quantity), 0.7, None, None, sym.spec.exchange_symbol)
        run.decisions.append(decision_execute(run, sym, record, now_ms, 100.0, price))
    monkeypatch.setattr(engine, "decision_step", decision_step)


def _run(bars, config, funding=None):
    return engine.backtest_run(candles=_candles(bars), instrument=_spec(), funding=funding, config=config,
                               starting_equity=D("10000"), start=START)


FLAT_60K = ("60000.0", "60020.0", "59980.0", "60000.3")
# 05:00-05:45: flat; the 05:45 close 60000.3 is the long's reference price at the 06:00 close.
# 06:00-07:45: inside 59800..60600, closing at 60500.0 by 08:00 (the funding mark).
# 08:00-08:45: below the target; 09:00: high 61050 reaches the 61000 target (opened below it).
# 09:15-09:45: flat at 61200; the 09:45 close 61200.0 is the short's reference at the 10:00 close.
# 10:00-10:45: inside 61100..61350; 11:00: opens 61300, high 61600 crosses the short's 61500 stop.
# 11:15-13:45: calm, no position.
ROUND_TRIP_BARS = (
    [FLAT_60K] * 4
    + [("60000.0", "60300.0", "59800.0", "60200.0")] * 7 + [("60200.0", "60600.0", "60100.0", "60500.0")]
    + [("60500.0", "60800.0", "60400.0", "60700.0")] * 4
    + [("60900.0", "61050.0", "60850.0", "61000.0")]
    + [("61200.0", "61250.0", "61150.0", "61200.0")] * 3
    + [("61200.0", "61350.0", "61100.0", "61250.0")] * 4
    + [("61300.0", "61600.0", "61250.0", "61550.0")]
    + [("61550.0", "61600.0", "61500.0", "61550.0")] * 11
)


@pytest.fixture
def round_trip(monkeypatch):
    _forced(monkeypatch, {_at(6): ("LONG", "0.1", "59000.0", "61000.0"),
                          _at(10): ("SHORT", "0.1", "61500.0", "60000.0")})
    funding = FundingRates.of([FUNDING_MS], ["0.000125"])
    return _run(ROUND_TRIP_BARS, TradingConfig(mode=Mode.ON), funding)


def _fills(result) -> list[tuple]:
    return [(f.ts, f.price, f.quantity, f.fee_usdt, f.liquidity) for f in result.fills]


def test_round_trip_long_through_funding_to_target_and_short_stopped_match_the_hand_figures(round_trip):
    result = round_trip
    long_, short = result.trades

    # Long entry, market at the 06:00 close: 60000.3 x (1 + 0.0001) = 60006.30003, up to the tick: 60006.4.
    #   fee 60006.4 x 0.1 x 0.0004 = 2.400256
    # Long exit at the target 61000.0 (TAKE_PROFIT_MARKET: taker, no slippage), in the 09:00 bar:
    #   fee 61000.0 x 0.1 x 0.0004 = 2.44
    # Short entry at the 10:00 close: 61200.0 x (1 - 0.0001) = 61193.88, down to the tick: 61193.8.
    #   fee 61193.8 x 0.1 x 0.0004 = 2.447752
    # Short stop 61500.0 reached in the 11:00 bar (opened below it): buy at 61500.0 x 1.0001 = 61506.15,
    #   up to the tick: 61506.2; fee 61506.2 x 0.1 x 0.0004 = 2.460248
    assert _fills(result) == [
        (dt(_at(6)), D("60006.4"), D("0.1"), D("2.400256"), "taker"),
        (dt(_at(9)), D("61000.0"), D("0.1"), D("2.44"), "taker"),
        (dt(_at(10)), D("61193.8"), D("0.1"), D("2.447752"), "taker"),
        (dt(_at(11)), D("61506.2"), D("0.1"), D("2.460248"), "taker"),
    ]
    # Funding at 08:00, rate 0.000125 (positive: longs pay), mark = last close by 08:00 = 60500.0:
    #   -(0.1 x 60500.0 x 0.000125) = -0.75625
    [payment] = result.funding
    assert (payment.position_id, payment.ts, payment.rate, payment.mark_price, payment.amount_usdt) == (
        long_.id, dt(FUNDING_MS), D("0.000125"), D("60500.0"), D("-0.75625"))
    # Long: gross (61000.0 - 60006.4) x 0.1 = 99.36; fees 2.400256 + 2.44 = 4.840256;
    #   net 99.36 - 4.840256 - 0.75625 = 93.763494
    assert (long_.side, long_.status, long_.exit_reason) == ("LONG", "closed", "target")
    assert (long_.entry_price, long_.exit_price, long_.initial_quantity) == (D("60006.4"), D("61000.0"), D("0.1"))
    assert (long_.fees_usdt, long_.funding_usdt, long_.realized_pnl_usdt) == (D("4.840256"), D("-0.75625"),
                                                                               D("93.763494"))
    # Short: gross (61193.8 - 61506.2) x 0.1 = -31.24; fees 2.447752 + 2.460248 = 4.908; no funding
    #   (10:00 to 11:00 holds no settlement); net -31.24 - 4.908 = -36.148
    assert (short.side, short.status, short.exit_reason) == ("SHORT", "closed", "stop")
    assert (short.entry_price, short.exit_price, short.initial_quantity) == (D("61193.8"), D("61506.2"), D("0.1"))
    assert (short.fees_usdt, short.funding_usdt, short.realized_pnl_usdt) == (D("4.908"), D("0"), D("-36.148"))


def test_round_trip_final_equity_is_the_start_plus_every_trade_pnl(round_trip):
    result = round_trip

    # 10000 + 93.763494 - 36.148 = 10057.615494, nothing open at the end.
    last = result.equity[-1]
    assert (last.ts, last.balance_usdt, last.unrealized_pnl_usdt, last.equity_usdt) == (
        dt(_at(14)), D("10057.615494"), D("0"), D("10057.615494"))
    assert sum((p.realized_pnl_usdt for p in result.trades), D(0)) == last.equity_usdt - D("10000")
    # The fees and funding of the fills and settlements are all the trades carry, and nothing else moved.
    assert sum((f.fee_usdt for f in result.fills), D(0)) == sum((p.fees_usdt for p in result.trades), D(0))
    assert sum((f.amount_usdt for f in result.funding), D(0)) == sum((p.funding_usdt for p in result.trades), D(0))
    # While the long was open the equity point marks it at the close: at 08:00, after paying funding,
    #   balance 10000 - 2.400256 - 0.75625 = 9996.843494, unrealised (60500.0 - 60006.4) x 0.1 = 49.36.
    at_eight = next(e for e in result.equity if e.ts == dt(FUNDING_MS))
    assert (at_eight.balance_usdt, at_eight.unrealized_pnl_usdt) == (D("9996.843494"), D("49.36"))


# Liquidation at 20x: the long enters as above (60006.4 x 0.1) with its stop at 57000.0, beyond the
# liquidation price; 06:00-07:45 calm, then the 08:00 bar opens 58000.0 and falls to 56900.0.
LIQUIDATION_BARS = (
    [FLAT_60K] * 4
    + [("60000.0", "60300.0", "59800.0", "60000.0")] * 7 + [("60000.0", "60100.0", "57900.0", "58000.0")]
    + [("58000.0", "58200.0", "56900.0", "57100.0")]
    + [("57100.0", "57300.0", "57000.0", "57200.0")] * 11
)
# Isolated margin = min(notional / max_leverage, wallet at the decision) = min(6000.64 / 20, 10000) = 300.032.
MARGIN = D("300.032")
# Liquidation price of the long (paper_model.liquidation_price, one bracket, MMR 0.004):
#   (WB - Q x EP) / (Q x MMR - Q) = (300.032 - 6000.64) / (0.0004 - 0.1) = 5700.608 / 0.0996
#   = 57235.020080321..., up (towards the entry) to 1e-8 then to the tick: 57235.1
LIQUIDATION_PRICE = D("57235.1")


@pytest.fixture
def liquidated(monkeypatch):
    _forced(monkeypatch, {_at(6): ("LONG", "0.1", "57000.0", "63000.0")})
    config = TradingConfig(mode=Mode.ON, max_leverage=D("20"))
    # A zero rate at 08:00: the settlement at the liquidation bar's open is booked and moves nothing.
    funding = FundingRates.of([FUNDING_MS], ["0"])
    return _run(LIQUIDATION_BARS, config, funding), config


def test_liquidation_before_a_stop_beyond_it_closes_at_the_liquidation_price_with_the_clearance_fee(liquidated):
    result, _ = liquidated
    [position] = result.trades

    assert position.liquidation_price == LIQUIDATION_PRICE
    exit_order = next(o for o in result.orders if o.leg == "liq")
    assert (exit_order.side, exit_order.type, exit_order.reduce_only) == ("sell", "market", True)
    # The 08:00 bar's low 56900.0 reaches both 57235.1 and the stop 57000.0; the stop lies beyond the
    # liquidation price, so the venue liquidates first, at the liquidation price, without slippage.
    #   exit fee (taker) 57235.1 x 0.1 x 0.0004 = 2.289404
    assert _fills(result)[1] == (dt(_at(8)), LIQUIDATION_PRICE, D("0.1"), D("2.289404"), "taker")
    assert (position.status, position.exit_reason, position.exit_price, position.closed_ms) == (
        "closed", "liquidation", LIQUIDATION_PRICE, _at(8))
    # gross (57235.1 - 60006.4) x 0.1 = -277.13; clearance = the margin left there: 300.032 - 277.13 = 22.902
    # fees 2.400256 + 2.289404 + 22.902 = 27.59166; funding 0 (rate 0)
    # net -277.13 - 27.59166 = -304.72166
    assert (position.fees_usdt, position.funding_usdt, position.realized_pnl_usdt) == (
        D("27.59166"), D("0"), D("-304.72166"))
    assert position.margin_usdt == 0        # all of it went: to the price loss and the clearance fee
    assert result.equity[-1].balance_usdt == D("10000") - D("304.72166") == D("9695.27834")


def test_liquidation_counts_as_a_liquidation_hit_in_the_metrics(liquidated):
    result, _ = liquidated

    trades = closed_trades(result)
    metrics = summarize(trades, [int(e.ts.timestamp() * 1000) for e in result.equity],
                        [e.equity_usdt for e in result.equity], start_ms=int(START.timestamp() * 1000) - STEP_MS,
                        end_ms=int(result.equity[-1].ts.timestamp() * 1000), starting_equity=D("10000"))

    assert [t.exit_reason for t in trades] == ["liquidation"]
    assert (metrics.liquidation_hits, metrics.stop_hits, metrics.exit_reasons) == (1, 0, {"liquidation": 1})
    assert metrics.net_pnl_usdt == D("-304.72166")


def test_liquidation_loses_the_whole_isolated_margin_to_the_cent(liquidated):
    result, config = liquidated
    [position] = result.trades

    # Docs (EXECUTION.md, paper venue): "liquidated and the remaining margin goes as the clearance fee".
    # Margin left at the fill: 300.032 + (57235.1 - 60006.4) x 0.1 = 300.032 - 277.13 = 22.902, all of it
    # charged; the price loss and the clearance come to the whole margin, to the last unit. (Before the
    # margin was stored the fee was 0.1 x 57235.1 x 0.004 = 22.89404, 0.00796 short of it.)
    clearance = position.fees_usdt - D("2.400256") - D("2.289404")
    loss = (position.entry_price - position.exit_price) * position.initial_quantity + clearance
    assert clearance == D("22.902")
    assert loss == MARGIN
