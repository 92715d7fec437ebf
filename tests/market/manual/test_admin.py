from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.urls import reverse

from market.manual import services
from market.manual.schemas import ETF_FLOWS_EXAMPLE
from market.models import SentimentInput
from tests.market.manual.cases import NOW, encode

pytestmark = pytest.mark.django_db
T1 = datetime(2024, 3, 12, 8, tzinfo=UTC)


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("boss", password="pw")


@pytest.fixture
def reading(admin_user):
    return services.sentiment_record(asset="BTC", score=Decimal("0.5"), source="fear&greed", note="first",
                                     known_at=T1, user=admin_user, now=NOW)


def _form(reading, **changes):
    data = {"asset": reading.asset, "score": str(reading.score), "source": reading.source, "note": reading.note,
            "known_at_0": "2024-03-12", "known_at_1": "08:00:00", "valid_until_0": "", "valid_until_1": ""}
    return data | changes


def test_sentiment_admin_change_creates_correction_and_keeps_old(admin_client, reading, admin_user):
    url = reverse("admin:market_sentimentinput_change", args=[reading.pk])

    response = admin_client.post(url, _form(reading, score="-0.25"))

    assert response.status_code == 302
    old, new = SentimentInput.objects.order_by("pk")
    assert (old.score, old.note) == (Decimal("0.5"), "first") and old.superseded_at is not None
    # The correction is known from the moment it was made; before that the original counts.
    assert (new.score, new.supersedes, new.created_by) == (Decimal("-0.25"), old, admin_user)
    assert new.known_at == old.superseded_at > T1


def test_sentiment_admin_change_without_changes_adds_no_row(admin_client, reading):
    admin_client.post(reverse("admin:market_sentimentinput_change", args=[reading.pk]), _form(reading))

    assert SentimentInput.objects.count() == 1


def test_sentiment_admin_future_known_at_is_refused(admin_client, reading):
    response = admin_client.post(reverse("admin:market_sentimentinput_change", args=[reading.pk]),
                                 _form(reading, known_at_0="2099-01-01"))

    assert response.status_code == 200
    assert "in the future" in response.content.decode()
    assert SentimentInput.objects.count() == 1


def test_sentiment_admin_shows_history_and_locks_superseded(admin_client, reading, admin_user):
    correction = services.sentiment_correct(original=reading, user=admin_user, now=NOW, score=Decimal("0.1"))

    page = admin_client.get(reverse("admin:market_sentimentinput_change", args=[correction.pk])).content.decode()
    old_post = admin_client.post(reverse("admin:market_sentimentinput_change", args=[reading.pk]),
                                 _form(reading, score="0.9"))

    assert "History (newest first)" in page and "superseded 2024-03-12 14:00" in page and f"#{reading.pk}" in page
    assert old_post.status_code == 403
    assert SentimentInput.objects.count() == 2


def test_sentiment_admin_changelist_filters_current(admin_client, reading, admin_user):
    services.sentiment_correct(original=reading, user=admin_user, now=NOW, note="fixed")

    response = admin_client.get(reverse("admin:market_sentimentinput_changelist") + "?status=current")

    assert response.context["cl"].result_count == 1


def test_manual_upload_admin_lists_and_downloads_original(admin_client, admin_user):
    content = encode(ETF_FLOWS_EXAMPLE)
    upload = services.etf_flows_upload(content=content, filename="flows.json", user=admin_user, now=NOW).upload

    listing = admin_client.get(reverse("admin:market_manualupload_changelist"))
    detail = admin_client.get(reverse("admin:market_manualupload_change", args=[upload.pk]))
    download = admin_client.get(reverse("admin:market_manualupload_download", args=[upload.pk]))

    assert listing.status_code == 200 and "flows.json" in listing.content.decode()
    assert detail.status_code == 200 and "Save" not in detail.content.decode()
    assert download.content == content
    assert download["Content-Disposition"] == 'attachment; filename="flows.json"'


def test_manual_upload_admin_cannot_add_or_delete(admin_client, admin_user):
    upload = services.etf_flows_upload(content=encode(ETF_FLOWS_EXAMPLE), filename="f", user=admin_user,
                                       now=NOW).upload

    assert admin_client.get(reverse("admin:market_manualupload_add")).status_code == 403
    assert admin_client.post(reverse("admin:market_manualupload_delete", args=[upload.pk])).status_code == 403
