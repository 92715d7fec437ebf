"""Writes for the analytics stage."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal

import numpy as np

from analytics.flow import DEFAULT_PARAMS, build_flow
from analytics.flow.sentiment import NewsScoreSource
from analytics.flow.types import FlowInputs, FlowParams, FlowResult
from analytics.inputs import flow_inputs_load
from analytics.models import Flow, Snapshot
from analytics.snapshot import MarketSnapshot
from market.coverage import SeriesGapError, require_complete
from market.models import Instrument
from market.timeframes import timeframe_ms
from tradingbot.upsert import row_upsert


def ms_to_datetime(ms: int) -> datetime:
    """Return the aware UTC datetime of epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def snapshot_record(*, instrument: Instrument, timeframe: str, snapshot: MarketSnapshot,
                    features: dict | None = None) -> Snapshot:
    """Store the snapshot; a second call for the same bar replaces the first.

    `features` is `snapshot.features()` when the caller has made it already (it is not cheap).
    """
    return row_upsert(Snapshot, keys={"instrument": instrument, "timeframe": timeframe,
                                      "as_of": ms_to_datetime(snapshot.as_of_ms)}, values={
        "close": Decimal(repr(snapshot.close)),
        "atr": snapshot.atr,
        "trend": snapshot.trend,
        "momentum": snapshot.momentum,
        "features": features if features is not None else snapshot.features(),
    })


def flow_record(*, instrument: Instrument, flow: FlowResult, extra_warnings: list | tuple = ()) -> Flow:
    """Store the flow (with `extra_warnings` after its own) in one statement; a second call for the same as_of replaces the first."""
    return row_upsert(Flow, keys={"instrument": instrument, "as_of": ms_to_datetime(flow.as_of_ms)}, values={
        "crowd_bias": flow.crowd_bias.value,
        "trap_index": flow.trap_index.value,
        "global_risk_score": flow.global_risk.value,
        "warnings": [*flow.warnings_json(), *extra_warnings],
        "parts": flow.parts_json(),
        "inputs": flow.inputs_json(),
    })


def flow_run(*, instrument: Instrument, as_of: datetime, params: FlowParams = DEFAULT_PARAMS,
             news: NewsScoreSource | None = None, candle_timeframe: str = "1h", allow_gaps: bool = False) -> Flow:
    """Build the flow from what was known at `as_of` (aware UTC) and store it; nothing is stored on error.

    A derivatives series or the candles with a hole in the last day (the window the changes and
    the CVD need) is left out unless `allow_gaps`, and a `gap_in_input:<name>` warning names the gap.
    """
    inputs = flow_inputs_load(instrument=instrument, as_of=as_of, params=params, candle_timeframe=candle_timeframe)
    gap_warnings = []
    if not allow_gaps:
        inputs, gap_warnings = without_gappy_series(inputs, timeframe_ms(candle_timeframe))
    return flow_record(instrument=instrument, flow=build_flow(inputs, params, news), extra_warnings=gap_warnings)


GAP_CHECK_WINDOW_MS = 24 * 3_600_000


def without_gappy_series(inputs: FlowInputs, candle_step_ms: int) -> tuple[FlowInputs, list[dict]]:
    """Return the inputs without any series that has a gap in the last day, and a warning for each."""
    series = {
        "funding": ([p.ts_ms for p in inputs.funding], 8 * 3_600_000),
        "open_interest": ([p.ts_ms for p in inputs.open_interest], None),
        "candles": ([p.open_time_ms for p in inputs.candles], candle_step_ms),
    }
    end = inputs.as_of_ms
    drop, warnings = {}, []
    for name, (times, step) in series.items():
        if len(times) < 2:
            continue  # missing or single: the engine already reports it as missing or stale
        step = step or int(np.min(np.diff(times)))
        start = max(end - GAP_CHECK_WINDOW_MS, times[0])
        try:
            # Up to the last sample: a missing newest sample is staleness, which the engine reports.
            last = end - (end - times[-1]) % step
            require_complete(name, np.array(times, dtype="int64"), step, start, last)
        except SeriesGapError as exc:
            drop[name] = ()
            warnings.append({"name": f"gap_in_input:{name}", "detail": str(exc)})
    return (replace(inputs, **drop) if drop else inputs), warnings
