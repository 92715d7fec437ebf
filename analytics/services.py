"""Writes for the analytics stage."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from analytics.models import Snapshot
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
