"""Writes for the analytics stage."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from django.db import transaction

from analytics.flow import DEFAULT_PARAMS, build_flow
from analytics.flow.sentiment import NewsScoreSource
from analytics.flow.types import FlowParams, FlowResult
from analytics.inputs import flow_inputs_load
from analytics.models import Flow, Snapshot
from analytics.snapshot import MarketSnapshot
from market.models import Instrument


def ms_to_datetime(ms: int) -> datetime:
    """Return the aware UTC datetime of epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def snapshot_record(*, instrument: Instrument, timeframe: str, snapshot: MarketSnapshot) -> Snapshot:
    """Store the snapshot; a second call for the same bar replaces the first."""
    row, _ = Snapshot.objects.update_or_create(
        instrument=instrument,
        timeframe=timeframe,
        as_of=ms_to_datetime(snapshot.as_of_ms),
        defaults={
            "close": Decimal(repr(snapshot.close)),
            "atr": snapshot.atr,
            "trend": snapshot.trend,
            "momentum": snapshot.momentum,
            "features": snapshot.features(),
        },
    )
    return row


def flow_record(*, instrument: Instrument, flow: FlowResult) -> Flow:
    """Store the flow in one transaction; a second call for the same as_of replaces the first."""
    with transaction.atomic():
        row, _ = Flow.objects.update_or_create(
            instrument=instrument,
            as_of=ms_to_datetime(flow.as_of_ms),
            defaults={
                "crowd_bias": flow.crowd_bias.value,
                "trap_index": flow.trap_index.value,
                "global_risk_score": flow.global_risk.value,
                "warnings": flow.warnings_json(),
                "parts": flow.parts_json(),
                "inputs": flow.inputs_json(),
            },
        )
    return row


def flow_run(*, instrument: Instrument, as_of: datetime, params: FlowParams = DEFAULT_PARAMS,
             news: NewsScoreSource | None = None, candle_timeframe: str = "1h") -> Flow:
    """Build the flow from what was known at `as_of` (aware UTC) and store it; nothing is stored on error."""
    inputs = flow_inputs_load(instrument=instrument, as_of=as_of, params=params, candle_timeframe=candle_timeframe)
    return flow_record(instrument=instrument, flow=build_flow(inputs, params, news))
