"""Point-in-time reads for the flow engine: only what was known at `as_of` (aware UTC).

Every loader cuts at `as_of` (samples by ts, closed candles by close time, manual rows by known_at
and valid_until), so a later upload or revision can never leak into an earlier flow.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from django.db.models import Q

from analytics.flow import DEFAULT_PARAMS
from analytics.flow.types import (
    BasisPoint, CandlePoint, CvdPoint, EtfFlowPoint, FlowInputs, FlowParams, FundingPoint, LiquidationZonePoint,
    OpenInterestPoint, SentimentPoint,
)
from market.models import (
    Candle, DerivativesKind, DerivativesSample, EtfFlow, Instrument, LiquidationZone, SentimentInput,
)
from market.timeframes import TIMEFRAME_MS, timeframe_ms

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MS = timedelta(milliseconds=1)


def to_ms(value: datetime | None) -> int | None:
    """Return epoch milliseconds of an aware datetime (None stays None)."""
    return None if value is None else (value - EPOCH) // MS


def _fl(value) -> float | None:
    return None if value is None else float(value)


def _has_field(model, name: str) -> bool:
    # Revision fields come with the manual-upload work; honour them where the model has them.
    return any(f.name == name for f in model._meta.get_fields())


def _finest_period(rows: list[tuple]) -> list[tuple]:
    """Keep the rows of the shortest sampling period (rows are (period, ts, ...)); '' sorts last."""
    periods = {r[0] for r in rows}
    if len(periods) <= 1:
        return rows
    best = min(periods, key=lambda p: TIMEFRAME_MS.get(p, float("inf")))
    return [r for r in rows if r[0] == best]


def _samples(instrument: Instrument, as_of: datetime, wanted: dict[str, tuple[timedelta, list[str]]]) -> dict:
    """Return {kind: rows (period, ts, *columns)} of each kind's look-back, oldest first, in one query.

    `wanted` maps a derivatives kind to (look-back, its columns); a row counts when its first column is set.
    """
    which = Q()
    for kind, (lookback, columns) in wanted.items():
        which |= Q(kind=kind, ts__gt=as_of - lookback, **{f"{columns[0]}__isnull": False})
    names = list(dict.fromkeys(c for _, columns in wanted.values() for c in columns))
    rows = (DerivativesSample.objects.filter(which, instrument=instrument, ts__lte=as_of)
            .order_by("ts").values_list("kind", "period", "ts", *names))
    found: dict[str, list] = {kind: [] for kind in wanted}
    for row in rows:
        values = dict(zip(names, row[3:]))
        found[row[0]].append((row[1], row[2], *(values[c] for c in wanted[row[0]][1])))
    return {kind: _finest_period(kind_rows) for kind, kind_rows in found.items()}


def derivatives_load(*, instrument: Instrument, as_of: datetime, params: FlowParams) -> dict[str, tuple]:
    """Return funding, open interest, basis and CVD samples with ts <= as_of inside each one's look-back."""
    hour = timedelta(hours=1)
    oi_window = max((*params.oi_windows_ms, params.oi_trend_window_ms, params.oi_spike_window_ms))
    samples = _samples(instrument, as_of, {
        DerivativesKind.FUNDING: (timedelta(milliseconds=params.funding_z_window_ms + params.max_age("funding")) + hour,
                                  ["funding_rate"]),
        DerivativesKind.OPEN_INTEREST: (
            timedelta(milliseconds=oi_window * (1 + params.oi_window_tolerance) + params.max_age("open_interest")),
            ["open_interest", "open_interest_value"]),
        DerivativesKind.MARK_INDEX: (timedelta(milliseconds=params.max_age("basis")), ["mark_price", "index_price"]),
        DerivativesKind.CVD: (timedelta(milliseconds=params.cvd_window_ms + params.max_age("cvd")) + hour, ["cvd"]),
    })
    funding, oi = samples[DerivativesKind.FUNDING], samples[DerivativesKind.OPEN_INTEREST]
    basis, cvd = samples[DerivativesKind.MARK_INDEX], samples[DerivativesKind.CVD]
    return {
        "funding": tuple(FundingPoint(to_ms(r[1]), float(r[2])) for r in funding),
        "open_interest": tuple(OpenInterestPoint(to_ms(r[1]), float(r[2]), _fl(r[3])) for r in oi),
        "basis": tuple(BasisPoint(to_ms(r[1]), float(r[2]), float(r[3])) for r in basis if r[3] is not None),
        "cvd": tuple(CvdPoint(to_ms(r[1]), float(r[2])) for r in cvd),
    }


def candle_points_load(*, instrument: Instrument, timeframe: str, as_of: datetime,
                       params: FlowParams) -> tuple[CandlePoint, ...]:
    """Return the candles that had closed by as_of and cover the CVD window, oldest first."""
    step = timeframe_ms(timeframe)
    lookback = timedelta(milliseconds=params.cvd_window_ms + params.max_age("candles") + 2 * step)
    rows = (Candle.objects.filter(instrument=instrument, timeframe=timeframe,
                                  open_time__lte=as_of - timedelta(milliseconds=step),
                                  open_time__gt=as_of - lookback)
            .order_by("open_time").values_list("open_time", "close", "volume", "taker_buy_base"))
    return tuple(CandlePoint(to_ms(t), to_ms(t) + step, float(c), float(v), _fl(tb)) for t, c, v, tb in rows)


def etf_flows_load(*, asset: str, as_of: datetime, params: FlowParams) -> tuple[EtfFlowPoint, ...]:
    """Return the ETF flows known by as_of (known_at <= as_of, not yet replaced) for recent days."""
    since = (as_of - timedelta(milliseconds=params.manual_lookback_ms)).date()
    rows = EtfFlow.objects.filter(asset=asset, known_at__lte=as_of, date__gte=since)
    if _has_field(EtfFlow, "valid_until"):
        rows = rows.filter(Q(valid_until__isnull=True) | Q(valid_until__gt=as_of))
    return tuple(EtfFlowPoint(d, fund, float(flow), to_ms(known))
                 for d, fund, flow, known in rows.order_by("date", "fund", "known_at")
                 .values_list("date", "fund", "net_flow_usd", "known_at"))


def _valid_at(as_of: datetime, lookback_ms: int) -> Q:
    # known_at <= as_of and (valid_until null or later); rows without valid_until only from the
    # look-back on, and the core ages those out itself so it can report them stale.
    return Q(known_at__lte=as_of) & (
        Q(valid_until__gt=as_of)
        | Q(valid_until__isnull=True, known_at__gte=as_of - timedelta(milliseconds=lookback_ms))
    )


def liquidation_zones_load(*, instrument: Instrument, as_of: datetime,
                           params: FlowParams) -> tuple[LiquidationZonePoint, ...]:
    """Return the zones known by as_of and still valid then (valid_until null or later)."""
    rows = LiquidationZone.objects.filter(
        _valid_at(as_of, params.manual_lookback_ms), instrument=instrument)
    return tuple(
        LiquidationZonePoint(side, float(low), float(high), float(size), to_ms(known), to_ms(until))
        for side, low, high, size, known, until in rows.order_by("known_at", "price_low").values_list(
            "side", "price_low", "price_high", "size_usd", "known_at", "valid_until"))


def sentiment_load(*, asset: str, as_of: datetime, params: FlowParams) -> tuple[SentimentPoint, ...]:
    """Return the sentiment readings known by as_of and still valid then, not yet corrected."""
    rows = SentimentInput.objects.filter(_valid_at(as_of, params.manual_lookback_ms), asset=asset)
    if _has_field(SentimentInput, "superseded_at"):
        rows = rows.filter(Q(superseded_at__isnull=True) | Q(superseded_at__gt=as_of))
    return tuple(SentimentPoint(float(score), source, to_ms(known), to_ms(until))
                 for score, source, known, until in rows.order_by("known_at", "id").values_list(
                     "score", "source", "known_at", "valid_until"))


def flow_inputs_load(*, instrument: Instrument, as_of: datetime, params: FlowParams = DEFAULT_PARAMS,
                     candle_timeframe: str = "1h") -> FlowInputs:
    """Return everything the flow engine may see for `instrument` as of `as_of` (aware UTC)."""
    if as_of.tzinfo is None or as_of.utcoffset() != timedelta(0):
        raise ValueError(f"as_of must be aware UTC, got {as_of!r}")
    return FlowInputs(
        as_of_ms=to_ms(as_of),
        asset=instrument.base,
        **derivatives_load(instrument=instrument, as_of=as_of, params=params),
        candles=candle_points_load(instrument=instrument, timeframe=candle_timeframe, as_of=as_of, params=params),
        etf_flows=etf_flows_load(asset=instrument.base, as_of=as_of, params=params),
        liquidation_zones=liquidation_zones_load(instrument=instrument, as_of=as_of, params=params),
        sentiment=sentiment_load(asset=instrument.base, as_of=as_of, params=params),
    )
