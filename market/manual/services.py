"""Writes of manual inputs: ETF-flow and liquidation-zone uploads, sentiment readings and corrections.

Each upload is checked completely (market.manual.parse, then against stored rows) before anything
is written, then written in one transaction together with its ManualUpload row, which keeps the
file's bytes. The same bytes uploaded again are recognised by their SHA-256 and write nothing.
The views call preview_* first to show what an upload would do, then *_upload to save it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Min, Q

from market.manual.parse import (
    DEFAULT_MAX_BYTES,
    EtfFlowsFile,
    LiquidationZonesFile,
    parse_etf_flows,
    parse_liquidation_zones,
)
from market.manual.schemas import Problem
from market.models import EtfFlow, Instrument, LiquidationZone, ManualUpload, SentimentInput

Kind = ManualUpload.Kind


@dataclass(frozen=True)
class PlannedRow:
    """One row of an upload as it would be written: display values and what happens to it."""

    values: tuple[str, ...]     # in the order of Preview.columns
    action: str                 # "new", "revision" or "unchanged"
    note: str = ""


@dataclass(frozen=True)
class Preview:
    """What an upload would write, or why it cannot be written; nothing is saved."""

    kind: str
    sha256: str
    size_bytes: int
    problems: tuple[Problem, ...] = ()
    duplicate_of: ManualUpload | None = None
    summary: tuple[tuple[str, str], ...] = ()   # (label, value) about the whole file
    columns: tuple[str, ...] = ()
    rows: tuple[PlannedRow, ...] = ()
    rows_superseded: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems and self.duplicate_of is None

    def count(self, action: str) -> int:
        """Return how many rows would get `action`."""
        return sum(1 for row in self.rows if row.action == action)

    @property
    def counts(self) -> dict[str, int]:
        """Return the number of rows per action: new, revision, unchanged."""
        return {action: self.count(action) for action in ("new", "revision", "unchanged")}


@dataclass(frozen=True)
class UploadResult:
    """The outcome of an upload: saved (with its counts), duplicate (the earlier upload) or invalid."""

    status: str                 # "saved", "duplicate" or "invalid"
    upload: ManualUpload | None = None
    problems: tuple[Problem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.status == "saved"


@dataclass
class _Plan:
    preview: Preview
    creates: list = field(default_factory=list)             # unsaved model rows
    closes: list[tuple[int, datetime]] = field(default_factory=list)   # (pk, valid_until)
    header: dict = field(default_factory=dict)


def max_upload_bytes() -> int:
    """Return the size limit of one upload (settings.MANUAL_UPLOAD_MAX_BYTES, default 1 MiB)."""
    return getattr(settings, "MANUAL_UPLOAD_MAX_BYTES", DEFAULT_MAX_BYTES)


def sha256_hex(content: bytes) -> str:
    """Return the hex SHA-256 of `content`."""
    return hashlib.sha256(content).hexdigest()


def _iso(moment: datetime | None) -> str:
    return moment.isoformat().replace("+00:00", "Z") if moment else "-"


def _money(value: Decimal) -> str:
    return f"{value:f}"


def _price(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _parse_new(kind: str, content: bytes, now: datetime, parse) -> tuple[dict, object, "_Plan | None"]:
    """Return (preview base, parsed file, None), or a finished plan for a duplicate or invalid file."""
    sha = sha256_hex(content)
    base = dict(kind=kind, sha256=sha, size_bytes=len(content))
    duplicate = _upload_existing(kind, sha)
    if duplicate:
        return base, None, _Plan(Preview(**base, duplicate_of=duplicate))
    parsed = parse(content, now=now, max_bytes=max_upload_bytes())
    if not parsed.ok:
        return base, parsed, _Plan(Preview(**base, problems=parsed.problems))
    return base, parsed, None


def _etf_plan(content: bytes, *, now: datetime, lock: bool = False) -> _Plan:
    base, parsed, early = _parse_new(Kind.ETF_FLOWS, content, now, parse_etf_flows)
    if early is not None:
        return early
    doc: EtfFlowsFile = parsed.value
    current = _etf_current(doc, lock=lock)
    plan, planned, problems = _Plan(None), [], []
    for row in doc.rows:
        stored = current.get((row.fund, row.date))
        stated = doc.known_at_stated or row.known_at != doc.known_at
        values = (row.date.isoformat(), row.fund, _money(row.net_flow_usd),
                  _iso(row.known_at) if stated else "the upload moment")
        if stored is None:
            planned.append(PlannedRow(values, "new"))
        elif stored.net_flow_usd == row.net_flow_usd:
            planned.append(PlannedRow(values, "unchanged", f"stored, known at {_iso(stored.known_at)}"))
            continue
        elif row.known_at <= stored.known_at:
            problems.append(Problem(row.path + "/net_flow_usd", (
                f"{row.fund} {row.date} is stored as {_money(stored.net_flow_usd)} known at {_iso(stored.known_at)}; "
                f"a revision must be known later than that (this row: {_iso(row.known_at)})")))
            continue
        else:
            planned.append(PlannedRow(values, "revision", f"replaces {_money(stored.net_flow_usd)} "
                                                          f"known at {_iso(stored.known_at)}"))
            plan.closes.append((stored.pk, row.known_at))
        plan.creates.append(EtfFlow(asset=row.asset, fund=row.fund, date=row.date, net_flow_usd=row.net_flow_usd,
                                    known_at=row.known_at, source=doc.source))
    summary = (("asset", doc.asset), ("source", doc.source),
               ("known at", _iso(doc.known_at) if doc.known_at_stated else "the upload moment"))
    plan.preview = Preview(**base, problems=tuple(problems), summary=summary,
                           columns=("date", "fund", "net_flow_usd", "known_at"), rows=tuple(planned),
                           rows_superseded=len(plan.closes))
    plan.header = dict(source=doc.source, known_at=doc.known_at)
    return plan


def _etf_current(doc: EtfFlowsFile, *, lock: bool) -> dict:
    days = [row.date for row in doc.rows]
    rows = EtfFlow.objects.filter(asset=doc.asset, valid_until__isnull=True, fund__in={r.fund for r in doc.rows},
                                  date__gte=min(days), date__lte=max(days))
    if lock:
        rows = rows.select_for_update()
    return {(row.fund, row.date): row for row in rows}


def _zones_plan(content: bytes, *, now: datetime, lock: bool = False) -> _Plan:
    base, parsed, early = _parse_new(Kind.LIQUIDATION_ZONES, content, now, parse_liquidation_zones)
    if early is not None:
        return early
    doc: LiquidationZonesFile = parsed.value
    instrument, problems = _instrument_resolve(doc)
    if problems:
        return _Plan(Preview(**base, problems=problems))
    same = LiquidationZone.objects.filter(instrument=instrument, source=doc.source)
    if lock:
        same = same.select_for_update()
    if same.filter(known_at=doc.known_at).exists():
        return _Plan(Preview(**base, problems=(Problem("/known_at", (
            f"zones of {instrument} from {doc.source!r} known at {_iso(doc.known_at)} are already stored; "
            "a new map needs its own known_at")),)))
    # Out-of-order history: a map entered late ends where the next stored map begins.
    following = same.filter(known_at__gt=doc.known_at).aggregate(first=Min("known_at"))["first"]
    valid_until = min(filter(None, [doc.valid_until, following]), default=None)
    closing = same.filter(Q(valid_until__isnull=True) | Q(valid_until__gt=doc.known_at), known_at__lt=doc.known_at)
    plan = _Plan(None, closes=[(pk, doc.known_at) for pk in closing.values_list("pk", flat=True)])
    planned = []
    for row in doc.rows:
        planned.append(PlannedRow((row.side, _price(row.price_low), _price(row.price_high), _money(row.size_usd),
                                   _iso(valid_until)), "new"))
        plan.creates.append(LiquidationZone(instrument=instrument, side=row.side, price_low=row.price_low,
                                            price_high=row.price_high, size_usd=row.size_usd,
                                            known_at=doc.known_at, valid_until=valid_until, source=doc.source))
    summary = (("instrument", str(instrument)), ("source", doc.source),
               ("known at", _iso(doc.known_at) if doc.known_at_stated else "the upload moment"),
               ("valid until", _iso(valid_until) if valid_until else "the next upload of this instrument and source"))
    plan.preview = Preview(**base, summary=summary, rows=tuple(planned), rows_superseded=len(plan.closes),
                           columns=("side", "price_low", "price_high", "size_usd", "valid_until"))
    plan.header = dict(source=doc.source, known_at=doc.known_at)
    return plan


def _instrument_resolve(doc: LiquidationZonesFile) -> tuple[Instrument | None, tuple[Problem, ...]]:
    found = list(Instrument.objects.filter(Q(symbol=doc.symbol) | Q(exchange_symbol=doc.symbol),
                                           exchange=doc.exchange, data_source=doc.data_source)[:2])
    if len(found) == 1:
        return found[0], ()
    reason = ("matches more than one instrument; use the ccxt symbol, e.g. BTC/USDT:USDT" if found else
              f"no instrument {doc.exchange} {doc.symbol} ({doc.data_source}) is stored; add it in the admin "
              "or check exchange, symbol and data_source")
    return None, (Problem("/symbol", reason),)


def _upload_existing(kind: str, sha: str) -> ManualUpload | None:
    return (ManualUpload.objects.defer("content").select_related("uploaded_by")
            .filter(kind=kind, sha256=sha).first())


def etf_flows_preview(*, content: bytes, now: datetime) -> Preview:
    """Return what uploading `content` as ETF flows at `now` would write; write nothing."""
    return _etf_plan(content, now=now).preview


def liquidation_zones_preview(*, content: bytes, now: datetime) -> Preview:
    """Return what uploading `content` as liquidation zones at `now` would write; write nothing."""
    return _zones_plan(content, now=now).preview


def etf_flows_upload(*, content: bytes, filename: str, user, now: datetime) -> UploadResult:
    """Check and save an ETF-flows file uploaded by `user` at `now` (aware UTC): all rows or none."""
    return _upload(_etf_plan, Kind.ETF_FLOWS, content=content, filename=filename, user=user, now=now)


def liquidation_zones_upload(*, content: bytes, filename: str, user, now: datetime) -> UploadResult:
    """Check and save a liquidation-zones file uploaded by `user` at `now` (aware UTC): all rows or none."""
    return _upload(_zones_plan, Kind.LIQUIDATION_ZONES, content=content, filename=filename, user=user, now=now)


class _Rejected(Exception):
    def __init__(self, preview: Preview):
        self.preview = preview


def _upload(planner, kind: str, *, content: bytes, filename: str, user, now: datetime) -> UploadResult:
    try:
        with transaction.atomic():
            # Planned again inside the transaction, with the stored rows locked, so the rows it
            # replaces cannot change between the check and the write.
            plan = planner(content, now=now, lock=True)
            if not plan.preview.ok:
                raise _Rejected(plan.preview)
            upload = _write(plan, kind, content=content, filename=filename, user=user, now=now)
    except _Rejected as rejected:
        if rejected.preview.duplicate_of:
            return UploadResult("duplicate", rejected.preview.duplicate_of)
        return UploadResult("invalid", problems=rejected.preview.problems)
    except IntegrityError:
        # A concurrent upload of the same file won the unique (kind, sha256) race.
        duplicate = _upload_existing(kind, sha256_hex(content))
        if duplicate:
            return UploadResult("duplicate", duplicate)
        return UploadResult("invalid", problems=(Problem("", "stored rows changed while saving; upload again"),))
    return UploadResult("saved", upload)


def _write(plan: _Plan, kind: str, *, content: bytes, filename: str, user, now: datetime) -> ManualUpload:
    preview = plan.preview
    upload = ManualUpload.objects.create(
        kind=kind, sha256=preview.sha256, content=content, filename=filename[:255], size_bytes=len(content),
        source=plan.header["source"], known_at=plan.header["known_at"], uploaded_by=user, uploaded_at=now,
        rows_created=len(plan.creates), rows_updated=len(plan.closes), rows_unchanged=preview.count("unchanged"))
    model = EtfFlow if kind == Kind.ETF_FLOWS else LiquidationZone
    by_end: dict[datetime, list[int]] = {}
    for pk, end in plan.closes:
        by_end.setdefault(end, []).append(pk)
    for end, pks in by_end.items():
        model.objects.filter(pk__in=pks).update(valid_until=end)
    for row in plan.creates:
        row.upload, row.uploaded_by = upload, user
    model.objects.bulk_create(plan.creates, batch_size=1000)
    return upload


def sentiment_record(*, asset: str, score: Decimal, source: str, note: str = "", known_at: datetime | None,
                     valid_until: datetime | None = None, user, now: datetime) -> SentimentInput:
    """Store a new sentiment reading (score in [-1, 1]); known_at defaults to `now` and may not be later."""
    known_at = known_at or now
    _sentiment_check(score=score, known_at=known_at, valid_until=valid_until, now=now)
    return SentimentInput.objects.create(asset=asset.upper(), score=score, source=source, note=note,
                                         known_at=known_at, valid_until=valid_until, created_by=user)


def sentiment_correct(*, original: SentimentInput, user, now: datetime, **changes) -> SentimentInput:
    """Replace `original` by a corrected copy known from `now`; the original stays, superseded at `now`."""
    with transaction.atomic():
        locked = SentimentInput.objects.select_for_update().get(pk=original.pk)
        if locked.superseded_at is not None:
            raise ValueError(f"reading #{locked.pk} was already corrected at {_iso(locked.superseded_at)}; "
                             "edit its latest version")
        fields = {name: getattr(locked, name) for name in
                  ("asset", "score", "source", "note", "known_at", "valid_until")} | changes
        # Point in time: the corrected values became known now. Before `now` the original still
        # counts (it is superseded at `now`), so a replay never sees the correction early.
        fields["known_at"] = now
        if fields["valid_until"] is not None and fields["valid_until"] <= now:
            raise ValueError(f"valid_until {_iso(fields['valid_until'])} has passed; record a new reading instead")
        _sentiment_check(score=fields["score"], known_at=fields["known_at"], valid_until=fields["valid_until"],
                         now=now)
        locked.superseded_at = now
        locked.save(update_fields=["superseded_at"])
        return SentimentInput.objects.create(**fields, created_by=user, supersedes=locked)


def _sentiment_check(*, score: Decimal, known_at: datetime, valid_until: datetime | None, now: datetime) -> None:
    if not -1 <= score <= 1:
        raise ValueError(f"score must be between -1 and 1, got {score}")
    if known_at > now:
        raise ValueError(f"known_at {_iso(known_at)} is in the future (now is {_iso(now)})")
    if valid_until is not None and valid_until <= known_at:
        raise ValueError(f"valid_until {_iso(valid_until)} must be after known_at {_iso(known_at)}")
