"""The latest snapshot and flow of an instrument as the analysts' JSON documents."""
from __future__ import annotations

from analytics.models import Flow, Snapshot
from market.models import Instrument


def _instrument_head(instrument: Instrument) -> dict:
    return {"exchange": instrument.exchange, "symbol": instrument.symbol,
            "exchange_symbol": instrument.exchange_symbol, "data_source": instrument.data_source}


def snapshot_export(instrument: Instrument) -> dict | None:
    """Return the latest snapshot as the btc_snapshot.json document, or None when there is none."""
    row = Snapshot.objects.filter(instrument=instrument).order_by("-as_of").first()
    if row is None:
        return None
    return {**_instrument_head(instrument), "timeframe": row.timeframe, "as_of": row.as_of.isoformat(),
            "close": str(row.close), "atr": row.atr, "trend": row.trend, "momentum": row.momentum,
            "features": row.features}


def flow_export(instrument: Instrument) -> dict | None:
    """Return the latest flow view as the btc_flow.json document, or None when there is none."""
    row = Flow.objects.filter(instrument=instrument).order_by("-as_of").first()
    if row is None:
        return None
    return {**_instrument_head(instrument), "as_of": row.as_of.isoformat(), "crowd_bias": row.crowd_bias,
            "trap_index": row.trap_index, "risk": {"global_score": row.global_risk_score},
            "warnings": row.warnings, "parts": row.parts, "inputs": row.inputs}


def export_name(instrument: Instrument, kind: str) -> str:
    """Return the file name the analysts used, e.g. btc_snapshot.json."""
    return f"{instrument.base.lower()}_{kind}.json"
