import json
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from market.manual import services
from market.manual.schemas import ETF_FLOWS_EXAMPLE, LIQUIDATION_ZONES_EXAMPLE, validate
from market.models import EtfFlow, LiquidationZone, ManualUpload, SentimentInput
from tests.dashboard.factories import InstrumentFactory
from tests.dashboard.conftest import user_with_role
from tests.market.manual.cases import BAD_FILES, NOW, encode

pytestmark = pytest.mark.django_db

SLUGS = {"etf": "etf-flows", "zones": "liquidation-zones"}
GETS = [("dashboard:inputs", []), ("dashboard:inputs-schema", ["etf-flows"]),
        ("dashboard:inputs-example", ["etf-flows"]), ("dashboard:inputs-original", [1])]
POSTS = [("dashboard:inputs-preview", ["etf-flows"]), ("dashboard:inputs-confirm", ["etf-flows"]),
         ("dashboard:inputs-cancel", ["etf-flows"]), ("dashboard:inputs-sentiment", [])]


@pytest.fixture(autouse=True)
def frozen_now():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def staff(django_user_model):
    return user_with_role(django_user_model, "analyst", "operator")


@pytest.fixture
def operator_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def btc():
    return InstrumentFactory(data_source="exchange")


def preview(client, slug, content, name="upload.json"):
    return client.post(reverse("dashboard:inputs-preview", args=[slug]),
                       {f"{slug}-file": SimpleUploadedFile(name, content, content_type="application/json")})


def confirm(client, slug, sha256):
    return client.post(reverse("dashboard:inputs-confirm", args=[slug]), {"sha256": sha256}, follow=True)


@pytest.mark.parametrize(("name", "args"), GETS + POSTS)
def test_inputs_anonymous_redirects_to_login(client, name, args):
    response = client.get(reverse(name, args=args)) if (name, args) in GETS else client.post(reverse(name, args=args))

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


@pytest.mark.parametrize(("name", "args"), POSTS)
def test_inputs_viewer_cannot_enter(client, django_user_model, name, args):
    client.force_login(django_user_model.objects.create_user("viewer", password="pw"))

    assert client.post(reverse(name, args=args)).status_code == 403


def test_inputs_page_shows_forms_nav_and_downloads(operator_client):
    html = operator_client.get(reverse("dashboard:inputs")).content.decode()

    assert 'aria-current="page">Inputs</a>' in html
    assert html.count('enctype="multipart/form-data"') == 2
    assert reverse("dashboard:inputs-schema", args=["liquidation-zones"]) in html
    assert "Record reading" in html and "No uploads yet." in html


def test_inputs_page_for_viewer_hides_forms(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("viewer", password="pw"))

    html = client.get(reverse("dashboard:inputs")).content.decode()

    assert "Only operators may upload" in html and "multipart/form-data" not in html


def test_etf_preview_shows_rows_and_writes_nothing_then_confirm_saves(operator_client):
    content = encode(ETF_FLOWS_EXAMPLE)

    shown = preview(operator_client, "etf-flows", content, "flows.json")

    html = shown.content.decode()
    assert shown.status_code == 200
    assert "Confirm and save" in html and "562900000.00" in html and "-494100000.00" in html
    assert ManualUpload.objects.count() == EtfFlow.objects.count() == 0

    saved = confirm(operator_client, "etf-flows", services.sha256_hex(content))

    html = saved.content.decode()
    assert "saved flows.json as upload #" in html and "4 new, 0 superseded, 0 unchanged rows" in html
    assert EtfFlow.objects.count() == 4
    upload = ManualUpload.objects.get()
    assert (upload.filename, upload.uploaded_by.username, upload.uploaded_at) == ("flows.json", "analyst", NOW)
    assert reverse("dashboard:inputs-original", args=[upload.pk]) in html


def test_zones_preview_then_confirm_saves(operator_client, btc):
    content = encode(LIQUIDATION_ZONES_EXAMPLE)

    html = preview(operator_client, "liquidation-zones", content).content.decode()
    confirm(operator_client, "liquidation-zones", services.sha256_hex(content))

    assert "73200.5" in html and "binanceusdm:BTC/USDT:USDT" in html
    assert LiquidationZone.objects.count() == 2


@pytest.mark.parametrize(("kind", "content", "path", "words"), [c[1:] for c in BAD_FILES],
                         ids=[c[0] for c in BAD_FILES])
def test_preview_bad_file_shows_problem_and_writes_nothing(operator_client, btc, kind, content, path, words):
    response = preview(operator_client, SLUGS[kind], content)

    html = response.content.decode()
    assert "nothing was written" in html and "Confirm and save" not in html
    problems = response.context["cards"][0 if kind == "etf" else 1]["preview"].problems
    assert any(p.path == path and words in p.reason for p in problems), problems
    assert f"<code>{path or 'file'}</code>" in html
    assert ManualUpload.objects.count() == EtfFlow.objects.count() == LiquidationZone.objects.count() == 0
    assert "manual_inputs_pending" not in operator_client.session


def test_preview_over_configured_limit_is_refused(operator_client, settings):
    settings.MANUAL_UPLOAD_MAX_BYTES = 100

    html = preview(operator_client, "etf-flows", encode(ETF_FLOWS_EXAMPLE)).content.decode()

    assert "the limit is 100 bytes" in html and ManualUpload.objects.count() == 0


def test_preview_of_uploaded_file_says_when_and_by_whom(operator_client, staff):
    content = encode(ETF_FLOWS_EXAMPLE)
    services.etf_flows_upload(content=content, filename="first.json", user=staff, now=NOW - timedelta(minutes=10))

    html = preview(operator_client, "etf-flows", content).content.decode()

    assert "already uploaded on 2024-03-12 13:50 UTC by analyst" in html
    assert "Confirm and save" not in html and EtfFlow.objects.count() == 4


def test_confirm_of_file_uploaded_meanwhile_is_a_no_op(operator_client, django_user_model):
    content = encode(ETF_FLOWS_EXAMPLE)
    preview(operator_client, "etf-flows", content)
    other = django_user_model.objects.create_user("other", is_staff=True)
    services.etf_flows_upload(content=content, filename="theirs.json", user=other, now=NOW)

    html = confirm(operator_client, "etf-flows", services.sha256_hex(content)).content.decode()

    assert "theirs.json was already uploaded on 2024-03-12 14:00 UTC by other" in html
    assert ManualUpload.objects.count() == 1 and EtfFlow.objects.count() == 4


def test_confirm_checks_again_and_shows_new_problems(operator_client, staff):
    content = encode({**ETF_FLOWS_EXAMPLE, "flows": ETF_FLOWS_EXAMPLE["flows"][:1]})
    preview(operator_client, "etf-flows", content)
    later = {**ETF_FLOWS_EXAMPLE, "known_at": "2024-03-12T13:59:00Z",
             "flows": [{"date": "2024-03-11", "fund": "IBIT", "net_flow_usd": 1}]}
    services.etf_flows_upload(content=encode(later), filename="later", user=staff, now=NOW)

    html = confirm(operator_client, "etf-flows", services.sha256_hex(content)).content.decode()

    assert "a revision must be known later" in html and ManualUpload.objects.count() == 1


def test_confirm_without_pending_file_saves_nothing(operator_client):
    html = confirm(operator_client, "etf-flows", "0" * 64).content.decode()

    assert "nothing to confirm" in html and ManualUpload.objects.count() == 0


def test_confirm_of_other_file_than_previewed_saves_nothing(operator_client):
    preview(operator_client, "etf-flows", encode(ETF_FLOWS_EXAMPLE))

    html = confirm(operator_client, "etf-flows", "f" * 64).content.decode()

    assert "nothing to confirm" in html and ManualUpload.objects.count() == 0


def test_cancel_forgets_pending_file(operator_client):
    content = encode(ETF_FLOWS_EXAMPLE)
    preview(operator_client, "etf-flows", content)

    operator_client.post(reverse("dashboard:inputs-cancel", args=["etf-flows"]))
    html = confirm(operator_client, "etf-flows", services.sha256_hex(content)).content.decode()

    assert "nothing to confirm" in html and ManualUpload.objects.count() == 0


def test_preview_without_csrf_token_is_forbidden(staff):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)

    response = preview(client, "etf-flows", encode(ETF_FLOWS_EXAMPLE))

    assert response.status_code == 403


def test_preview_unknown_kind_is_404(operator_client):
    assert preview(operator_client, "options", b"{}").status_code == 404


@pytest.mark.parametrize("slug", ["etf-flows", "liquidation-zones"])
def test_schema_and_example_downloads_are_consistent(operator_client, slug):
    schema = operator_client.get(reverse("dashboard:inputs-schema", args=[slug]))
    example = operator_client.get(reverse("dashboard:inputs-example", args=[slug]))

    assert schema["Content-Disposition"] == f'attachment; filename="{slug}.schema.json"'
    assert validate(json.loads(example.content), json.loads(schema.content)) == []


def test_original_download_returns_uploaded_bytes(operator_client, staff):
    content = encode(ETF_FLOWS_EXAMPLE)
    upload = services.etf_flows_upload(content=content, filename="flows.json", user=staff, now=NOW).upload

    response = operator_client.get(reverse("dashboard:inputs-original", args=[upload.pk]))

    assert response.content == content
    assert operator_client.get(reverse("dashboard:inputs-original", args=[upload.pk + 1])).status_code == 404


def test_sentiment_form_records_reading_known_now(operator_client, staff):
    response = operator_client.post(reverse("dashboard:inputs-sentiment"),
                                 {"asset": "btc", "score": "-0.35", "source": "fear&greed", "note": ""}, follow=True)

    reading = SentimentInput.objects.get()
    assert (reading.asset, reading.score, reading.known_at, reading.created_by) == ("BTC", Decimal("-0.35"), NOW,
                                                                                    staff)
    assert "Sentiment BTC -0.35 from fear&amp;greed recorded" in response.content.decode()


@pytest.mark.parametrize(("changes", "words"), [
    ({"known_at": "2024-03-12 15:00"}, "in the future"),
    ({"score": "1.2"}, "less than or equal to 1"),
    ({"known_at": "2024-03-12 10:00", "valid_until": "2024-03-12 09:00"}, "must be after known_at"),
    ({"source": ""}, "This field is required"),
])
def test_sentiment_form_bad_values_show_error_and_write_nothing(operator_client, changes, words):
    data = {"asset": "BTC", "score": "0.1", "source": "s"} | changes

    response = operator_client.post(reverse("dashboard:inputs-sentiment"), data)

    assert response.status_code == 400 and words in response.content.decode()
    assert SentimentInput.objects.count() == 0
