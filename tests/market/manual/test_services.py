from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from market.manual import selectors, services
from market.manual.schemas import ETF_FLOWS_EXAMPLE, LIQUIDATION_ZONES_EXAMPLE
from market.models import EtfFlow, LiquidationZone, ManualUpload, SentimentInput
from tests.dashboard.factories import InstrumentFactory
from tests.market.manual.cases import BAD_FILES, NOW, encode, etf, with_row, zones

pytestmark = pytest.mark.django_db

UPLOADS = {"etf": services.etf_flows_upload, "zones": services.liquidation_zones_upload}
T1 = datetime(2024, 3, 12, 8, tzinfo=UTC)
T2 = datetime(2024, 3, 12, 12, tzinfo=UTC)


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("analyst", is_staff=True)


@pytest.fixture
def btc():
    return InstrumentFactory(data_source="exchange")


def flow(fund="IBIT", day="2024-03-11", amount="100", **extra):
    return {"date": day, "fund": fund, "net_flow_usd": amount, **extra}


def written() -> tuple[int, int, int]:
    return ManualUpload.objects.count(), EtfFlow.objects.count(), LiquidationZone.objects.count()


@pytest.mark.parametrize(("kind", "content", "path", "words"), [c[1:] for c in BAD_FILES],
                         ids=[c[0] for c in BAD_FILES])
def test_upload_bad_file_writes_nothing(kind, content, path, words, user, btc):
    result = UPLOADS[kind](content=content, filename="bad.json", user=user, now=NOW)

    assert result.status == "invalid" and not result.ok
    assert any(p.path == path and words in p.reason for p in result.problems), result.problems
    assert written() == (0, 0, 0)


def test_etf_flows_upload_example_saves_rows_and_original_file(user):
    content = encode(ETF_FLOWS_EXAMPLE)

    result = services.etf_flows_upload(content=content, filename="flows.json", user=user, now=NOW)

    assert result.ok
    upload = ManualUpload.objects.get()
    assert bytes(upload.content) == content
    assert (upload.kind, upload.filename, upload.size_bytes, upload.uploaded_by, upload.uploaded_at) == (
        "etf_flows", "flows.json", len(content), user, NOW)
    assert upload.sha256 == services.sha256_hex(content)
    assert (upload.rows_created, upload.rows_updated, upload.rows_unchanged) == (4, 0, 0)
    ibit = EtfFlow.objects.get(fund="IBIT", date="2024-03-11")
    assert (ibit.net_flow_usd, ibit.source, ibit.uploaded_by, ibit.upload, ibit.valid_until) == (
        Decimal("562900000.00"), "issuer websites", user, upload, None)
    assert EtfFlow.objects.get(fund="IBIT", date="2024-03-08").known_at == datetime(2024, 3, 9, 13, 30, tzinfo=UTC)


def test_etf_flows_upload_same_file_again_is_a_no_op(user, django_user_model):
    content = encode(ETF_FLOWS_EXAMPLE)
    first = services.etf_flows_upload(content=content, filename="a.json", user=user, now=NOW)
    other = django_user_model.objects.create_user("other", is_staff=True)

    again = services.etf_flows_upload(content=content, filename="b.json", user=other, now=NOW + timedelta(hours=1))

    assert again.status == "duplicate"
    assert again.upload.pk == first.upload.pk and again.upload.uploaded_by == user
    assert written() == (1, 4, 0)


def test_etf_flows_upload_without_known_at_uses_upload_moment(user):
    services.etf_flows_upload(content=encode(etf(known_at=None, flows=[flow()])), filename="f", user=user, now=NOW)

    assert EtfFlow.objects.get().known_at == NOW
    assert ManualUpload.objects.get().known_at == NOW


def test_etf_flows_upload_later_revision_keeps_old_value_until_revision_known(user):
    services.etf_flows_upload(content=encode(etf(known_at=T1.isoformat(), flows=[flow(amount="100")])),
                              filename="a", user=user, now=NOW)

    result = services.etf_flows_upload(content=encode(etf(known_at=T2.isoformat(), flows=[flow(amount="90")])),
                                       filename="b", user=user, now=NOW)

    assert (result.upload.rows_created, result.upload.rows_updated) == (1, 1)
    old, new = EtfFlow.objects.order_by("known_at")
    assert (old.net_flow_usd, old.valid_until, new.net_flow_usd, new.valid_until) == (
        Decimal("100"), T2, Decimal("90"), None)
    seen = {t: [f.net_flow_usd for f in selectors.etf_flows_known_as_of(asset="BTC", as_of=t)]
            for t in (T1 - timedelta(seconds=1), T1, T2 - timedelta(seconds=1), T2)}
    assert seen == {T1 - timedelta(seconds=1): [], T1: [Decimal("100")], T2 - timedelta(seconds=1): [Decimal("100")],
                    T2: [Decimal("90")]}


def test_etf_flows_upload_revision_not_later_than_stored_is_rejected(user):
    services.etf_flows_upload(content=encode(etf(known_at=T2.isoformat(), flows=[flow(amount="100")])),
                              filename="a", user=user, now=NOW)

    result = services.etf_flows_upload(content=encode(etf(known_at=T1.isoformat(), flows=[flow(amount="90")])),
                                       filename="b", user=user, now=NOW)

    assert result.status == "invalid"
    assert result.problems[0].path == "/flows/0/net_flow_usd"
    assert "a revision must be known later" in result.problems[0].reason
    assert written() == (1, 1, 0)


def test_etf_flows_upload_same_values_in_new_file_are_unchanged(user):
    services.etf_flows_upload(content=encode(etf(flows=[flow()])), filename="a", user=user, now=NOW)

    result = services.etf_flows_upload(content=encode(etf(source="other", flows=[flow(), flow(fund="FBTC")])),
                                       filename="b", user=user, now=NOW)

    assert (result.upload.rows_created, result.upload.rows_updated, result.upload.rows_unchanged) == (1, 0, 1)
    assert EtfFlow.objects.count() == 2


def test_etf_flows_upload_failing_write_leaves_nothing(user, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")
    monkeypatch.setattr(EtfFlow.objects, "bulk_create", broken)

    with pytest.raises(RuntimeError):
        services.etf_flows_upload(content=encode(ETF_FLOWS_EXAMPLE), filename="a", user=user, now=NOW)

    assert written() == (0, 0, 0)


def test_etf_flows_preview_writes_nothing_and_shows_actions(user):
    services.etf_flows_upload(content=encode(etf(known_at=T1.isoformat(), flows=[flow(amount="100")])),
                              filename="a", user=user, now=NOW)
    content = encode(etf(known_at=T2.isoformat(), flows=[flow(amount="90"), flow(fund="FBTC")]))

    preview = services.etf_flows_preview(content=content, now=NOW)

    assert preview.ok and preview.sha256 == services.sha256_hex(content)
    assert preview.columns == ("date", "fund", "net_flow_usd", "known_at")
    assert [(r.values[1], r.action) for r in preview.rows] == [("IBIT", "revision"), ("FBTC", "new")]
    assert preview.rows[0].note.startswith("replaces 100.00 known at 2024-03-12T08:00:00Z")
    assert preview.counts == {"new": 1, "revision": 1, "unchanged": 0}
    assert written() == (1, 1, 0)


def test_etf_flows_preview_of_uploaded_file_names_the_upload(user):
    content = encode(ETF_FLOWS_EXAMPLE)
    first = services.etf_flows_upload(content=content, filename="a", user=user, now=NOW)

    preview = services.etf_flows_preview(content=content, now=NOW)

    assert not preview.ok and preview.duplicate_of.pk == first.upload.pk


def test_liquidation_zones_upload_example_saves_zones(user, btc):
    result = services.liquidation_zones_upload(content=encode(LIQUIDATION_ZONES_EXAMPLE), filename="z.json",
                                               user=user, now=NOW)

    assert result.ok and result.upload.rows_created == 2
    zone = LiquidationZone.objects.get(side="short")
    assert (zone.instrument, zone.price_low, zone.size_usd, zone.known_at, zone.valid_until, zone.upload) == (
        btc, Decimal("73200.5"), Decimal("275000000"), datetime(2024, 3, 12, 8, tzinfo=UTC),
        datetime(2024, 3, 13, 8, tzinfo=UTC), result.upload)


def test_liquidation_zones_upload_unknown_instrument_writes_nothing(user, btc):
    result = services.liquidation_zones_upload(content=encode(zones(symbol="DOGEUSDT")), filename="z", user=user,
                                               now=NOW)

    assert result.status == "invalid"
    assert result.problems[0].path == "/symbol" and "no instrument binanceusdm DOGEUSDT" in result.problems[0].reason
    assert written() == (0, 0, 0)


def test_liquidation_zones_upload_ccxt_symbol_finds_instrument(user, btc):
    result = services.liquidation_zones_upload(content=encode(zones(symbol="BTC/USDT:USDT")), filename="z",
                                               user=user, now=NOW)

    assert result.ok


def test_liquidation_zones_upload_new_map_supersedes_open_zones_of_same_source(user, btc):
    first = zones(known_at=T1.isoformat(), valid_until=None)
    services.liquidation_zones_upload(content=encode(first), filename="a", user=user, now=NOW)
    services.liquidation_zones_upload(content=encode(zones(source="other", known_at=T1.isoformat(),
                                                           valid_until=None)), filename="o", user=user, now=NOW)

    result = services.liquidation_zones_upload(content=encode(zones(known_at=T2.isoformat(), valid_until=None)),
                                               filename="b", user=user, now=NOW)

    assert result.upload.rows_updated == 2
    ends = sorted((z.source, z.known_at, z.valid_until) for z in LiquidationZone.objects.all())
    assert ends.count(("heatmap, 24h window", T1, T2)) == 2
    assert ends.count(("other", T1, None)) == 2
    at_t2 = selectors.liquidation_zones_known_as_of(instrument=btc, as_of=T2)
    assert sorted((z.source, z.known_at) for z in at_t2) == [("heatmap, 24h window", T2)] * 2 + [("other", T1)] * 2


def test_liquidation_zones_upload_older_map_ends_where_stored_map_begins(user, btc):
    services.liquidation_zones_upload(content=encode(zones(known_at=T2.isoformat(), valid_until=None)),
                                      filename="a", user=user, now=NOW)

    services.liquidation_zones_upload(content=encode(zones(known_at=T1.isoformat(), valid_until=None)),
                                      filename="b", user=user, now=NOW)

    assert set(LiquidationZone.objects.filter(known_at=T1).values_list("valid_until", flat=True)) == {T2}
    assert set(LiquidationZone.objects.filter(known_at=T2).values_list("valid_until", flat=True)) == {None}


def test_liquidation_zones_upload_same_known_at_and_source_is_rejected(user, btc):
    services.liquidation_zones_upload(content=encode(zones()), filename="a", user=user, now=NOW)

    result = services.liquidation_zones_upload(content=encode(with_row(zones(), "zones", 0, size_usd=1)),
                                               filename="b", user=user, now=NOW)

    assert result.status == "invalid" and result.problems[0].path == "/known_at"
    assert written() == (1, 0, 2)


def test_sentiment_record_defaults_known_at_to_now(user):
    reading = services.sentiment_record(asset="btc", score=Decimal("0.4"), source="fear&greed", known_at=None,
                                        user=user, now=NOW)

    assert (reading.asset, reading.known_at, reading.created_by, reading.superseded_at) == ("BTC", NOW, user, None)


@pytest.mark.parametrize(("changes", "words"), [
    ({"known_at": NOW + timedelta(seconds=1)}, "in the future"),
    ({"score": Decimal("1.5")}, "between -1 and 1"),
    ({"known_at": T1, "valid_until": T1}, "must be after known_at"),
])
def test_sentiment_record_bad_values_raise_and_write_nothing(user, changes, words):
    values = dict(asset="BTC", score=Decimal("0.1"), source="s", known_at=None) | changes

    with pytest.raises(ValueError, match=words):
        services.sentiment_record(**values, user=user, now=NOW)

    assert SentimentInput.objects.count() == 0


def test_sentiment_correct_keeps_old_version_and_reads_only_correction(user):
    original = services.sentiment_record(asset="BTC", score=Decimal("0.5"), source="s", known_at=T1, user=user,
                                         now=T1)

    correction = services.sentiment_correct(original=original, user=user, now=T2, score=Decimal("-0.5"))

    original.refresh_from_db()
    assert (original.score, original.superseded_at) == (Decimal("0.5"), T2)
    assert (correction.score, correction.known_at, correction.supersedes) == (Decimal("-0.5"), T2, original)
    # Before the correction was made the original counted; from then on only the correction.
    assert list(selectors.sentiment_known_as_of(asset="BTC", as_of=T1)) == [original]
    assert list(selectors.sentiment_known_as_of(asset="BTC", as_of=T2)) == [correction]
    assert selectors.sentiment_history(original) == [correction, original]


def test_sentiment_correct_superseded_version_raises(user):
    original = services.sentiment_record(asset="BTC", score=Decimal("0.5"), source="s", known_at=T1, user=user,
                                         now=T1)
    services.sentiment_correct(original=original, user=user, now=T2, score=Decimal("0.1"))

    with pytest.raises(ValueError, match="already corrected"):
        services.sentiment_correct(original=original, user=user, now=T2, score=Decimal("0.2"))

    assert SentimentInput.objects.count() == 2


def test_upload_history_is_newest_first_without_content(user, btc):
    services.etf_flows_upload(content=encode(ETF_FLOWS_EXAMPLE), filename="a", user=user, now=NOW)
    services.liquidation_zones_upload(content=encode(LIQUIDATION_ZONES_EXAMPLE), filename="b", user=user,
                                      now=NOW + timedelta(minutes=1))

    history = list(selectors.upload_history())

    assert [u.filename for u in history] == ["b", "a"]
    assert "content" in history[0].get_deferred_fields()
    assert [u.filename for u in selectors.upload_history(kind="etf_flows")] == ["a"]
