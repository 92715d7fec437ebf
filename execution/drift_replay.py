"""What a drift replay reads: the trading configuration as it was, and every stored input the live cycle could read.

`trading_config_at` rebuilds the configuration in force at a moment from the current row and the
audit chain; `candles_for_replay` and `gate_overrides_for_replay` load a window's candles (with the
warm-up each read of the cycle needs) and gate overrides in the backtester's forms (the funding
settlements and mark klines: `execution.backtest.runs`). Used by execution.drift.
"""
from __future__ import annotations

import copy
from datetime import datetime, timedelta

import pandas as pd

from decisions.models import AuditRecord, GateOverride, TradingConfig
from decisions.selectors import trading_config_get
from execution.backtest.runs import lookback_bars
from execution.backtest.state import GateOverrideSpec
from execution.backtest.world import Candles
from market.models import Candle, Instrument
from market.timeframes import timeframe_ms

CONFIG_KINDS = (AuditRecord.Kind.MODE_CHANGE, AuditRecord.Kind.LIMIT_CHANGE)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def config_changes_after(config: TradingConfig, after: datetime):
    """Return the audited changes of `config` recorded after `after`."""
    return AuditRecord.objects.filter(kind__in=CONFIG_KINDS, subject=f"config:{config.pk}", ts__gt=after)


def trading_config_at(moment: datetime) -> TradingConfig:
    """Return an unsaved copy of the trading configuration in force at `moment`.

    The current row with each audited field change recorded after `moment` undone, newest first
    (the audit body holds {"field": {"from", "to"}} per changed field). The circuit breaker's hold
    (safe_until) is the one its latest record at or before `moment` set, when a later one exists.
    """
    config = copy.copy(trading_config_get())
    later = list(config_changes_after(config, moment).order_by("-seq"))
    fields = {f.name: f for f in TradingConfig._meta.concrete_fields}
    for record in later:
        for name, change in record.body.items():
            if name in fields and isinstance(change, dict) and "from" in change:
                setattr(config, name, fields[name].to_python(change["from"]))
    if any("until" in r.body for r in later):
        held = (AuditRecord.objects.filter(kind=AuditRecord.Kind.MODE_CHANGE, subject=f"config:{config.pk}",
                                           ts__lte=moment, body__has_key="until").order_by("-seq").first())
        config.safe_until = fields["safe_until"].to_python(held.body["until"]) if held else None
    versions = [r.body["config_version"] for r in later if isinstance(r.body.get("config_version"), int)]
    if versions:
        config.version = max(1, min(versions) - 1)
    return config


def candles_for_replay(*, instrument: Instrument, config: TradingConfig, start: datetime,
                       end: datetime) -> dict[str, Candles]:
    """Return every stored timeframe of `instrument` that had closed by `end`, with the warm-up before `start`."""
    out = {}
    timeframes = set(Candle.objects.filter(instrument=instrument).values_list("timeframe", flat=True).distinct())
    for timeframe in sorted(timeframes, key=timeframe_ms):
        step = timedelta(milliseconds=timeframe_ms(timeframe))
        since = start - step * lookback_bars(timeframe, config)
        rows = list(Candle.objects.filter(instrument=instrument, timeframe=timeframe, open_time__gte=since,
                                          open_time__lte=end - step).order_by("open_time")
                    .values_list("open_time", "open", "high", "low", "close", "volume", "quote_volume",
                                 "taker_buy_base"))
        if rows:
            frame = pd.DataFrame(rows, columns=["open_time", "open", "high", "low", "close", "volume",
                                                "quote_volume", "taker_buy_base"])
            frame["open_time_ms"] = [_ms(t) for t in frame.pop("open_time")]
            out[timeframe] = Candles.from_frame(timeframe, frame)
    return out


def gate_overrides_for_replay() -> list[GateOverrideSpec]:
    """Return every stored gate override with its history (the backtest applies each while it held)."""
    return [GateOverrideSpec(o.gate, _ms(o.created_at), _ms(o.until), o.created_by, o.reason,
                             _ms(o.revoked_at) if o.revoked_at else None)
            for o in GateOverride.objects.order_by("created_at", "pk")]
