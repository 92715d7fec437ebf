"""Reads of manual inputs: upload history, sentiment history and the rows valid at a moment."""
from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet

from market.models import EtfFlow, Instrument, LiquidationZone, ManualUpload, SentimentInput


def upload_history(*, kind: str | None = None, limit: int = 50) -> QuerySet[ManualUpload]:
    """Return the latest uploads, newest first, without their file bytes."""
    rows = ManualUpload.objects.defer("content").select_related("uploaded_by").order_by("-uploaded_at", "-id")
    if kind:
        rows = rows.filter(kind=kind)
    return rows[:limit]


def upload_get(pk: int) -> ManualUpload:
    """Return one upload with its file bytes; raise ManualUpload.DoesNotExist if missing."""
    return ManualUpload.objects.select_related("uploaded_by").get(pk=pk)


def sentiment_recent(*, limit: int = 20) -> QuerySet[SentimentInput]:
    """Return the latest sentiment readings, corrections and superseded versions included."""
    return SentimentInput.objects.select_related("created_by", "supersedes").order_by("-created_at", "-id")[:limit]


def sentiment_history(reading: SentimentInput) -> list[SentimentInput]:
    """Return every version of `reading`, newest first: its corrections and the rows it replaced."""
    latest = reading
    while (newer := SentimentInput.objects.filter(supersedes=latest).first()) is not None:
        latest = newer
    versions = [latest]
    while versions[-1].supersedes_id is not None:
        versions.append(SentimentInput.objects.get(pk=versions[-1].supersedes_id))
    return versions


def _valid_at(as_of: datetime) -> Q:
    return Q(known_at__lte=as_of) & (Q(valid_until__isnull=True) | Q(valid_until__gt=as_of))


def etf_flows_known_as_of(*, asset: str, as_of: datetime) -> QuerySet[EtfFlow]:
    """Return the ETF flows of `asset` as they were known at `as_of`: one row per fund and day."""
    return EtfFlow.objects.filter(_valid_at(as_of), asset=asset).order_by("date", "fund")


def liquidation_zones_known_as_of(*, instrument: Instrument, as_of: datetime) -> QuerySet[LiquidationZone]:
    """Return the liquidation zones of `instrument` that were known and still valid at `as_of`."""
    return LiquidationZone.objects.filter(_valid_at(as_of), instrument=instrument).order_by("price_low")


def sentiment_known_as_of(*, asset: str, as_of: datetime) -> QuerySet[SentimentInput]:
    """Return the sentiment readings of `asset` known and valid at `as_of`, as they stood then."""
    # A correction is known from the moment it was made (its known_at) and supersedes the original
    # from that same moment, so at any as_of exactly one version of a reading counts and a replay
    # never sees a correction before it was entered.
    return (SentimentInput.objects.filter(_valid_at(as_of), asset=asset)
            .filter(Q(superseded_at__isnull=True) | Q(superseded_at__gt=as_of))
            .order_by("known_at", "id"))
