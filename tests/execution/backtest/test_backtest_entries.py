"""Limit entries in the backtester: post-only one tick inside, maker fills capped by the bar's volume, the chase.

Real USD-M BTCUSDT 1m bars of 2025-06-10 with 15m candles resampled from them; mode ON with
`entry_order_type` "limit". At 05:30 the rule shorts; with the participation cut to 0.1 % of each 1m
bar's volume the resting sell fills only in part before the next cycle, which then ends the chase
(the default 5 s interval is long past at a 15m cycle): the rest at market, or given up, or, with a
300 s interval, a re-price.
"""
from datetime import datetime, timezone
from decimal import ROUND_DOWN, Decimal as D

import numpy as np
import pandas as pd
import pytest

from decisions.models import Mode, TradingConfig
from execution.backtest.engine import backtest_run
from execution.backtest.world import Candles, InstrumentSpec, to_decimal
from execution.chase import passive_price
from market.resample import resample
from market.services import KNOWN_FILTERS

MINUTES_FILE = "binance_usdm_BTCUSDT_1m_2025-06-06_2025-06-16.csv.gz"
START, END = datetime(2025, 6, 10, 1, tzinfo=timezone.utc), datetime(2025, 6, 10, 9, tzinfo=timezone.utc)
ENTRY_AT = datetime(2025, 6, 10, 5, 30, tzinfo=timezone.utc)
USDT = D("0.00000001")


@pytest.fixture
def candles(market_data_dir):
    frame = pd.read_csv(market_data_dir / MINUTES_FILE)
    numbers = frame.astype({c: float for c in frame.columns if c != "open_time_ms"})
    return {"1m": Candles.from_frame("1m", frame), "15m": Candles.from_frame("15m", resample(numbers, "1m", "15m"))}


def _run(candles, **fields):
    filters = {k: D(v) for k, v in KNOWN_FILTERS["BTCUSDT"].items()}
    spec = InstrumentSpec.of(type("Row", (), dict(pk=1, symbol="BTC/USDT:USDT", exchange_symbol="BTCUSDT",
                                                  base="BTC", **filters)))
    config = TradingConfig(mode=Mode.ON, edge_threshold=0.5, entry_order_type="limit",
                           paper_fill_participation=D("0.001"))
    for name, value in fields.items():
        setattr(config, name, value)
    result = backtest_run(candles=candles, instrument=spec, config=config, starting_equity=D("10000"), start=START,
                          end=END)
    return result, config, spec


def _entries(result):
    return [o for o in result.orders if o.leg.startswith("entry") and o.created_at >= ENTRY_AT]


def test_limit_entry_rests_one_tick_inside_and_fills_as_maker_within_the_bar_volume_share(candles):
    result, config, spec = _run(candles)

    decision = next(d for d in result.decisions if d.as_of == ENTRY_AT)
    first = _entries(result)[0]
    assert (decision.outcome, first.side, first.type) == ("executed", "sell", "limit_maker")
    assert first.price == passive_price("sell", decision.entry_price, spec.tick_size) == decision.entry_price + D("0.1")
    fills = [f for f in result.fills if f.client_order_id == first.client_order_id]
    minutes = candles["1m"]
    assert len(fills) > 1 and first.filled_quantity == sum(f.quantity for f in fills) < first.quantity
    for fill in fills:
        i = int(np.searchsorted(minutes.open_time_ms, fill.ts.timestamp() * 1000))
        # Only bars after the order was placed, trading through its price, and at most 0.1 % of their volume.
        assert fill.ts >= ENTRY_AT and to_decimal(minutes.high[i]) > first.price
        cap = (config.paper_fill_participation * to_decimal(minutes.volume[i]) / spec.step_size).to_integral_value(
            rounding=ROUND_DOWN) * spec.step_size
        assert (fill.price, fill.liquidity) == (first.price, "maker") and fill.quantity <= cap
        assert fill.fee_usdt == (fill.price * fill.quantity * config.maker_fee_fraction).quantize(USDT)


def test_limit_entry_rest_goes_at_market_when_the_chase_ends_and_the_position_holds_both_fills(candles):
    result, config, _ = _run(candles)

    first, fallback = _entries(result)[:2]
    assert (first.status, fallback.leg, fallback.type) == ("canceled", "entrymkt", "market")
    assert fallback.created_at == datetime(2025, 6, 10, 5, 45, tzinfo=timezone.utc)
    assert fallback.quantity == first.quantity - first.filled_quantity and fallback.status == "filled"
    position = result.trades[0]
    entry_fills = [f for f in result.fills if f.client_order_id in (first.client_order_id, fallback.client_order_id)]
    # The position opened at the first fill's cycle and grew to the whole entry, at the volume-weighted price
    # (kept to 10 decimal places, as the row stores it).
    assert position.initial_quantity == first.quantity
    vwap = sum((f.quantity * f.price for f in entry_fills), D(0)) / first.quantity
    assert position.entry_price == vwap.quantize(D("1E-10")) != vwap
    assert position.entry_fees_usdt == sum((f.fee_usdt for f in entry_fills), D(0))


def test_limit_entry_rest_is_given_up_past_the_drift_limit(candles):
    result, _, _ = _run(candles, entry_chase_max_drift_bps=D("0"))

    first, *later = _entries(result)
    assert first.status == "canceled" and not [o for o in later if o.created_at < datetime(2025, 6, 10, 6,
                                                                                          tzinfo=timezone.utc)]
    assert result.trades[0].initial_quantity == first.filled_quantity < first.quantity


def test_limit_entry_reprices_to_the_market_while_the_chase_has_time(candles):
    result, _, spec = _run(candles, entry_chase_interval_seconds=300)

    first, repriced = _entries(result)[:2]
    market = to_decimal(candles["15m"].close[np.searchsorted(candles["15m"].open_time_ms,
                                                             repriced.created_at.timestamp() * 1000 - 900_000)])
    assert (repriced.leg, repriced.type, repriced.status) == ("entry1", "limit_maker", "filled")
    assert repriced.price == passive_price("sell", market, spec.tick_size) < first.price
    assert repriced.quantity == first.quantity - first.filled_quantity
