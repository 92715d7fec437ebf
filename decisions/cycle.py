"""Pure helpers of the decision cycle, shared by the live shell (decisions.services) and the backtester.

No Django, no I/O, no clock: the configuration and the flow are read through their attributes, so a
TradingConfig row, a stored Flow row or the backtester's in-memory stand-ins all work.
"""
from __future__ import annotations

from decisions import pipeline
from market.coverage import SeriesGapError, require_complete


def trade_limits(config) -> pipeline.TradeLimits:
    """Return the configuration the steps after the packet read (`config` is a TradingConfig or alike)."""
    return pipeline.TradeLimits(
        config.rr_min, config.taker_fee_fraction, config.slippage_bps, config.max_cost_to_target_fraction,
        config.risk_per_trade_fraction, config.max_leverage, config.max_margin_fraction, config.max_open_positions,
        config.mode, config.paused, config.auto_approve_confidence,
        int(config.safe_until.timestamp() * 1000) if config.safe_until else None)


def flow_line(flow) -> str:
    """Return the flow's line of the decision's rationale (`flow` has crowd_bias, trap_index, risk, warnings)."""
    warnings = ", ".join(w["name"] for w in flow.warnings) or "no warnings"
    return (f"flow: crowd bias {flow.crowd_bias:+.2f}, trap {flow.trap_index:.2f}, "
            f"risk {flow.global_risk_score:.0f}/100 ({warnings})")


def window_gap(instrument, timeframe: str, bars) -> str | None:
    """Return why the analysed window cannot be trusted (a named gap), or None when complete.

    `instrument` is a row or anything with its `exchange_symbol` (the backtester's InstrumentSpec).
    """
    start = int(bars.open_time_ms[0])
    end = int(bars.open_time_ms[-1]) + bars.timeframe_ms
    try:
        require_complete(f"{instrument.exchange_symbol} {timeframe} candles", bars.open_time_ms,
                         bars.timeframe_ms, start, end)
    except SeriesGapError as exc:
        return str(exc)
    return None
