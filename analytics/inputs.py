"""Point-in-time reads for the flow engine: only what was known at `as_of` (aware UTC).

Every loader cuts at `as_of` (samples by ts, closed candles by close time, manual rows by known_at
and valid_until), so a later upload or revision can never leak into an earlier flow. The live
cycle reads all five sources in one UNION ALL (flow_inputs_load); each *_load function reads its
own source alone, with the same filter.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import cache

from django.db.models import CharField, DateField, DateTimeField, DecimalField, F, Q, QuerySet, Value

from analytics.flow import DEFAULT_PARAMS
from analytics.flow.types import (
    BasisPoint, CandlePoint, CvdPoint, EtfFlowPoint, FlowInputs, FlowParams, FundingPoint, LiquidationZonePoint,
    OpenInterestPoint, SentimentPoint,
)
from market.models import (
    Candle, DerivativesKind, DerivativesSample, EtfFlow, Instrument, LiquidationZone, SentimentInput,
)
from market.timeframes import TIMEFRAME_MS, timeframe_ms
from tradingbot.compiled_reads import rows_compiled
from tradingbot.union import union_all

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MS = timedelta(milliseconds=1)

# The column layout every source's read is shaped to, so that all of them can run as one UNION ALL.
# A decimal slot holds values of one scale in every part, and the derivatives part (first in the
# union) has the widest column of each: SQLite converts a union's values by its first part's columns.
SLOT_TYPES = {
    "kind": CharField(), "label": CharField(), "ts": DateTimeField(), "until": DateTimeField(), "day": DateField(),
    "row_id": None, "d16": DecimalField(max_digits=16, decimal_places=10),
    "w1": DecimalField(max_digits=32, decimal_places=10), "w2": DecimalField(max_digits=32, decimal_places=10),
    "w3": DecimalField(max_digits=32, decimal_places=10), "p1": DecimalField(max_digits=28, decimal_places=10),
    "p2": DecimalField(max_digits=28, decimal_places=10), "usd": DecimalField(max_digits=20, decimal_places=2),
    "score": DecimalField(max_digits=4, decimal_places=3),
}
KIND, LABEL, TS, UNTIL, DAY, ROW_ID, D16, W1, W2, W3, P1, P2, USD, SCORE = range(len(SLOT_TYPES))
# Each derivatives kind's columns (a sample counts when its first one is set), and each column's slot.
DERIVATIVE_COLUMNS = {DerivativesKind.FUNDING: ["funding_rate"],
                      DerivativesKind.OPEN_INTEREST: ["open_interest", "open_interest_value"],
                      DerivativesKind.MARK_INDEX: ["mark_price", "index_price"], DerivativesKind.CVD: ["cvd"]}
DERIVATIVE_SLOTS = {"funding_rate": "d16", "open_interest": "w1", "open_interest_value": "w2", "cvd": "w3",
                    "mark_price": "p1", "index_price": "p2"}
SLOT_INDEX = {slot: k for k, slot in enumerate(SLOT_TYPES)}
CANDLE, ETF, LIQUIDATION, SENTIMENT = "candle", "etf", "liquidation", "sentiment"


def to_ms(value: datetime | None) -> int | None:
    """Return epoch milliseconds of an aware datetime (None stays None)."""
    return None if value is None else (value - EPOCH) // MS


def _fl(value) -> float | None:
    return None if value is None else float(value)


@cache
def _has_field(model, name: str) -> bool:
    # Revision fields come with the manual-upload work; honour them where the model has them.
    return any(f.name == name for f in model._meta.get_fields())


def _shaped(rows: QuerySet, kind, **fields: str) -> QuerySet:
    """Return `rows` as value tuples in SLOT_TYPES' layout: `fields` maps a slot to a field; other slots are NULL."""
    columns = {"s_kind": kind if isinstance(kind, F) else Value(kind, output_field=CharField()), "s_row_id": F("pk")}
    for slot, output in SLOT_TYPES.items():
        if slot in ("kind", "row_id"):
            continue
        columns[f"s_{slot}"] = F(fields[slot]) if slot in fields else Value(None, output_field=output)
    # Unordered: SQLite refuses ordered parts in a compound select; callers sort.
    return rows.order_by().annotate(**columns).values_list(*(f"s_{slot}" for slot in SLOT_TYPES))


def _finest_period(rows: list[tuple]) -> list[tuple]:
    """Keep the rows of the shortest sampling period (rows are (period, ts, ...)); '' sorts last."""
    periods = {r[0] for r in rows}
    if len(periods) <= 1:
        return rows
    best = min(periods, key=lambda p: TIMEFRAME_MS.get(p, float("inf")))
    return [r for r in rows if r[0] == best]


def _derivative_lookbacks(params: FlowParams) -> dict[str, timedelta]:
    """Return each derivatives kind's look-back."""
    hour = timedelta(hours=1)
    oi_window = max((*params.oi_windows_ms, params.oi_trend_window_ms, params.oi_spike_window_ms))
    return {
        DerivativesKind.FUNDING: timedelta(milliseconds=params.funding_z_window_ms + params.max_age("funding")) + hour,
        DerivativesKind.OPEN_INTEREST: timedelta(
            milliseconds=oi_window * (1 + params.oi_window_tolerance) + params.max_age("open_interest")),
        DerivativesKind.MARK_INDEX: timedelta(milliseconds=params.max_age("basis")),
        DerivativesKind.CVD: timedelta(milliseconds=params.cvd_window_ms + params.max_age("cvd")) + hour,
    }


def _bounds(instrument: Instrument, as_of: datetime, params: FlowParams, timeframe: str) -> dict:
    """Return the values the reads bind: the instrument, `as_of` and where each look-back starts."""
    step_ms = timeframe_ms(timeframe)
    candles_lookback = timedelta(milliseconds=params.cvd_window_ms + params.max_age("candles") + 2 * step_ms)
    manual_since = as_of - timedelta(milliseconds=params.manual_lookback_ms)
    bounds = {"instrument_id": instrument.pk, "asset": instrument.base, "as_of": as_of, "timeframe": timeframe,
              "candles_last_open": as_of - timedelta(milliseconds=step_ms), "candles_after": as_of - candles_lookback,
              "etf_since": manual_since.date(), "manual_since": manual_since}
    for kind, lookback in _derivative_lookbacks(params).items():
        bounds[f"{kind}_after"] = as_of - lookback
    return bounds


def _derivatives_part(v: dict) -> QuerySet:
    which = Q()
    for kind, columns in DERIVATIVE_COLUMNS.items():
        which |= Q(kind=kind, ts__gt=v[f"{kind}_after"], **{f"{columns[0]}__isnull": False})
    rows = DerivativesSample.objects.filter(which, instrument_id=v["instrument_id"], ts__lte=v["as_of"])
    return _shaped(rows, F("kind"), label="period", ts="ts",
                   **{slot: column for column, slot in DERIVATIVE_SLOTS.items()})


def _derivatives(rows: list[tuple]) -> dict[str, tuple]:
    """Return the derivatives part's rows as funding, open interest, basis and CVD points, oldest first."""
    found: dict[str, list] = {kind: [] for kind in DERIVATIVE_COLUMNS}
    for row in sorted(rows, key=lambda r: r[TS]):
        columns = DERIVATIVE_COLUMNS[row[KIND]]
        found[row[KIND]].append((row[LABEL], row[TS], *(row[SLOT_INDEX[DERIVATIVE_SLOTS[c]]] for c in columns)))
    funding, oi = (_finest_period(found[DerivativesKind.FUNDING]),
                   _finest_period(found[DerivativesKind.OPEN_INTEREST]))
    basis, cvd = _finest_period(found[DerivativesKind.MARK_INDEX]), _finest_period(found[DerivativesKind.CVD])
    return {
        "funding": tuple(FundingPoint(to_ms(r[1]), float(r[2])) for r in funding),
        "open_interest": tuple(OpenInterestPoint(to_ms(r[1]), float(r[2]), _fl(r[3])) for r in oi),
        "basis": tuple(BasisPoint(to_ms(r[1]), float(r[2]), float(r[3])) for r in basis if r[3] is not None),
        "cvd": tuple(CvdPoint(to_ms(r[1]), float(r[2])) for r in cvd),
    }


def derivatives_load(*, instrument: Instrument, as_of: datetime, params: FlowParams) -> dict[str, tuple]:
    """Return funding, open interest, basis and CVD samples with ts <= as_of inside each one's look-back."""
    return _derivatives(list(_derivatives_part(_bounds(instrument, as_of, params, "1h"))))


def _candles_part(v: dict) -> QuerySet:
    rows = Candle.objects.filter(instrument_id=v["instrument_id"], timeframe=v["timeframe"],
                                 open_time__lte=v["candles_last_open"], open_time__gt=v["candles_after"])
    return _shaped(rows, CANDLE, label="timeframe", ts="open_time", p1="close", w1="volume", w2="taker_buy_base")


def _candle_points(rows: list[tuple], timeframe: str) -> tuple[CandlePoint, ...]:
    step = timeframe_ms(timeframe)
    return tuple(CandlePoint(to_ms(r[TS]), to_ms(r[TS]) + step, float(r[P1]), float(r[W1]), _fl(r[W2]))
                 for r in sorted(rows, key=lambda r: r[TS]))


def candle_points_load(*, instrument: Instrument, timeframe: str, as_of: datetime,
                       params: FlowParams) -> tuple[CandlePoint, ...]:
    """Return the candles that had closed by as_of and cover the CVD window, oldest first."""
    return _candle_points(list(_candles_part(_bounds(instrument, as_of, params, timeframe))), timeframe)


def _etf_part(v: dict) -> QuerySet:
    rows = EtfFlow.objects.filter(asset=v["asset"], known_at__lte=v["as_of"], date__gte=v["etf_since"])
    if _has_field(EtfFlow, "valid_until"):
        rows = rows.filter(Q(valid_until__isnull=True) | Q(valid_until__gt=v["as_of"]))
    return _shaped(rows, ETF, label="fund", ts="known_at", day="date", usd="net_flow_usd")


def _etf_points(rows: list[tuple]) -> tuple[EtfFlowPoint, ...]:
    return tuple(EtfFlowPoint(r[DAY], r[LABEL], float(r[USD]), to_ms(r[TS]))
                 for r in sorted(rows, key=lambda r: (r[DAY], r[LABEL], r[TS])))


def etf_flows_load(*, asset: str, as_of: datetime, params: FlowParams) -> tuple[EtfFlowPoint, ...]:
    """Return the ETF flows known by as_of (known_at <= as_of, not yet replaced) for recent days."""
    since = as_of - timedelta(milliseconds=params.manual_lookback_ms)
    return _etf_points(list(_etf_part({"asset": asset, "as_of": as_of, "etf_since": since.date()})))


def _valid_at(v: dict) -> Q:
    # known_at <= as_of and (valid_until null or later); rows without valid_until only from the
    # look-back on, and the core ages those out itself so it can report them stale.
    return Q(known_at__lte=v["as_of"]) & (
        Q(valid_until__gt=v["as_of"]) | Q(valid_until__isnull=True, known_at__gte=v["manual_since"]))


def _liquidation_part(v: dict) -> QuerySet:
    rows = LiquidationZone.objects.filter(_valid_at(v), instrument_id=v["instrument_id"])
    return _shaped(rows, LIQUIDATION, label="side", ts="known_at", until="valid_until", p1="price_low",
                   p2="price_high", usd="size_usd")


def _liquidation_points(rows: list[tuple]) -> tuple[LiquidationZonePoint, ...]:
    # The row id last: zones known together at one low price keep the order they were stored in.
    return tuple(LiquidationZonePoint(r[LABEL], float(r[P1]), float(r[P2]), float(r[USD]), to_ms(r[TS]),
                                      to_ms(r[UNTIL]))
                 for r in sorted(rows, key=lambda r: (r[TS], r[P1], r[ROW_ID])))


def liquidation_zones_load(*, instrument: Instrument, as_of: datetime,
                           params: FlowParams) -> tuple[LiquidationZonePoint, ...]:
    """Return the zones known by as_of and still valid then (valid_until null or later)."""
    return _liquidation_points(list(_liquidation_part(_bounds(instrument, as_of, params, "1h"))))


def _sentiment_part(v: dict) -> QuerySet:
    rows = SentimentInput.objects.filter(_valid_at(v), asset=v["asset"])
    if _has_field(SentimentInput, "superseded_at"):
        rows = rows.filter(Q(superseded_at__isnull=True) | Q(superseded_at__gt=v["as_of"]))
    return _shaped(rows, SENTIMENT, label="source", ts="known_at", until="valid_until", score="score")


def _sentiment_points(rows: list[tuple]) -> tuple[SentimentPoint, ...]:
    return tuple(SentimentPoint(float(r[SCORE]), r[LABEL], to_ms(r[TS]), to_ms(r[UNTIL]))
                 for r in sorted(rows, key=lambda r: (r[TS], r[ROW_ID])))


def sentiment_load(*, asset: str, as_of: datetime, params: FlowParams) -> tuple[SentimentPoint, ...]:
    """Return the sentiment readings known by as_of and still valid then, not yet corrected."""
    since = as_of - timedelta(milliseconds=params.manual_lookback_ms)
    return _sentiment_points(list(_sentiment_part({"asset": asset, "as_of": as_of, "manual_since": since})))


def _inputs_union(**v) -> QuerySet:
    parts = (_derivatives_part(v), _candles_part(v), _etf_part(v), _liquidation_part(v), _sentiment_part(v))
    return union_all(parts)     # the derivatives first: its columns type the slots


def flow_inputs_load(*, instrument: Instrument, as_of: datetime, params: FlowParams = DEFAULT_PARAMS,
                     candle_timeframe: str = "1h") -> FlowInputs:
    """Return everything the flow engine may see for `instrument` as of `as_of` (aware UTC), in one query."""
    if as_of.tzinfo is None or as_of.utcoffset() != timedelta(0):
        raise ValueError(f"as_of must be aware UTC, got {as_of!r}")
    by_kind: dict[str, list[tuple]] = {CANDLE: [], ETF: [], LIQUIDATION: [], SENTIMENT: []}
    derivatives = []
    for row in rows_compiled("flow inputs", DerivativesSample, _inputs_union,
                             **_bounds(instrument, as_of, params, candle_timeframe)):
        by_kind.get(row[KIND], derivatives).append(row)
    return FlowInputs(
        as_of_ms=to_ms(as_of),
        asset=instrument.base,
        **_derivatives(derivatives),
        candles=_candle_points(by_kind[CANDLE], candle_timeframe),
        etf_flows=_etf_points(by_kind[ETF]),
        liquidation_zones=_liquidation_points(by_kind[LIQUIDATION]),
        sentiment=_sentiment_points(by_kind[SENTIMENT]),
    )
