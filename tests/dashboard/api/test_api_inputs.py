"""Manual inputs over the API: sentiment readings and JSON uploads, checked before anything is written."""
from decimal import Decimal

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile

from market.manual import services
from market.manual.schemas import ETF_FLOWS_EXAMPLE, LIQUIDATION_ZONES_EXAMPLE
from market.models import EtfFlow, LiquidationZone, ManualUpload, SentimentInput
from tests.dashboard.factories import InstrumentFactory
from tests.market.manual.cases import BAD_FILES, NOW, encode

pytestmark = pytest.mark.django_db

PATHS = {"etf": "/api/uploads/etf-flows/", "zones": "/api/uploads/liquidation-zones/"}


@pytest.fixture(autouse=True)
def frozen_now():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def btc():
    return InstrumentFactory(data_source="exchange")


def post_json(client, path: str, content: bytes, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return client.generic("POST", f"{path}?{query}" if query else path, content, content_type="application/json")


# --- sentiment ---------------------------------------------------------------------------------

def test_sentiment_post_records_it_known_now_by_the_operator(operator_api):
    response = operator_api.post("/api/sentiment/", {"score": "-0.35", "source": "fear-greed", "note": "fear"},
                                 format="json")

    assert response.status_code == 201
    body = response.json()
    assert (body["asset"], body["score"], body["known_at"], body["created_by"]) == (
        "BTC", "-0.35", "2024-03-12T14:00:00Z", "api-operator")
    assert SentimentInput.objects.get().score == Decimal("-0.350")


@pytest.mark.parametrize("changes, field, words", [
    ({"score": "1.5"}, "score", "less than or equal to 1"),
    ({"score": "0.1234"}, "score", "no more than 3 decimal places"),
    ({"score": "lots"}, "score", "valid number"),
    ({"source": ""}, "source", "may not be blank"),
    ({"known_at": "2024-03-12T15:00:00Z"}, "known_at", "is in the future"),
    ({"known_at": "2024-03-12T10:00:00Z", "valid_until": "2024-03-12T09:00:00Z"}, "valid_until", "must be after"),
    ({"asset": "BTC/USDT"}, "asset", "does not match"),
])
def test_sentiment_bad_values_are_400_naming_the_field_and_write_nothing(operator_api, changes, field, words):
    response = operator_api.post("/api/sentiment/", {"score": "0.2", "source": "desk"} | changes, format="json")

    assert response.status_code == 400
    assert list(response.json()) == [field] and words in response.json()[field][0]
    assert not SentimentInput.objects.exists()


def test_sentiment_list_newest_first(operator_api):
    for score in ("0.1", "0.2"):
        operator_api.post("/api/sentiment/", {"score": score, "source": "desk"}, format="json")

    rows = operator_api.get("/api/sentiment/", {"ordering": "-id"}).json()["results"]

    assert [r["score"] for r in rows] == ["0.2", "0.1"]


# --- uploads -------------------------------------------------------------------------------------

def test_etf_upload_as_json_body_saves_every_row_with_the_bytes(operator_api):
    content = encode(ETF_FLOWS_EXAMPLE)

    response = post_json(operator_api, PATHS["etf"], content, filename="flows-2024-03-12.json")

    assert response.status_code == 201
    body = response.json()
    assert (body["filename"], body["rows_created"], body["uploaded_by"], body["sha256"]) == (
        "flows-2024-03-12.json", 4, "api-operator", services.sha256_hex(content))
    assert EtfFlow.objects.count() == 4 and bytes(ManualUpload.objects.get().content) == content


def test_zones_upload_as_multipart_file_saves(operator_api, btc):
    content = encode(LIQUIDATION_ZONES_EXAMPLE)

    response = operator_api.post(PATHS["zones"], {"file": SimpleUploadedFile("zones.json", content)},
                                 format="multipart")

    assert response.status_code == 201 and response.json()["filename"] == "zones.json"
    assert LiquidationZone.objects.count() == 2


def test_upload_dry_run_previews_and_writes_nothing(operator_api):
    response = post_json(operator_api, PATHS["etf"], encode(ETF_FLOWS_EXAMPLE), dry_run="true")

    assert response.status_code == 200
    body = response.json()
    assert body["counts"] == {"new": 4, "revision": 0, "unchanged": 0}
    assert body["rows"][0] == {"values": ["2024-03-11", "IBIT", "562900000.00", "2024-03-12T13:30:00Z"],
                               "action": "new", "note": ""}
    assert not ManualUpload.objects.exists() and not EtfFlow.objects.exists()


def test_upload_same_file_twice_is_409_naming_the_first_upload(operator_api):
    content = encode(ETF_FLOWS_EXAMPLE)
    first = post_json(operator_api, PATHS["etf"], content, filename="a.json").json()

    response = post_json(operator_api, PATHS["etf"], content, filename="b.json")

    assert response.status_code == 409
    assert response.json()["detail"] == (f"a.json was already uploaded on 2024-03-12 14:00 UTC by api-operator "
                                         f"(upload #{first['id']}); nothing was written.")
    assert EtfFlow.objects.count() == 4


@pytest.mark.parametrize(("kind", "content", "path", "words"), [c[1:] for c in BAD_FILES],
                         ids=[c[0] for c in BAD_FILES])
def test_upload_bad_file_is_400_with_each_problem_and_writes_nothing(operator_api, btc, kind, content, path, words):
    response = post_json(operator_api, PATHS[kind], content)

    assert response.status_code == 400
    problems = response.json()["problems"]
    assert any(p["path"] == path and words in p["reason"] for p in problems), problems
    assert response.json()["detail"].startswith("the file was not saved: ")
    assert ManualUpload.objects.count() == EtfFlow.objects.count() == LiquidationZone.objects.count() == 0


def test_upload_over_the_configured_limit_is_400_before_reading(operator_api, settings):
    settings.MANUAL_UPLOAD_MAX_BYTES = 100

    response = post_json(operator_api, PATHS["etf"], encode(ETF_FLOWS_EXAMPLE))

    assert response.status_code == 400
    assert response.json()["problems"][0]["reason"].endswith("the limit is 100 bytes")


def test_upload_multipart_without_file_is_400_naming_file(operator_api):
    response = operator_api.post(PATHS["etf"], {"other": "x"}, format="multipart")

    assert response.status_code == 400
    assert response.json()["problems"] == [
        {"path": "file", "reason": "send the JSON document as the body or as the multipart field `file`"}]


def test_upload_list_shows_who_and_counts(operator_api):
    post_json(operator_api, PATHS["etf"], encode(ETF_FLOWS_EXAMPLE), filename="f.json")

    rows = operator_api.get("/api/uploads/", {"kind": "etf_flows"}).json()["results"]

    assert [(r["filename"], r["uploaded_by"], r["rows_created"]) for r in rows] == [("f.json", "api-operator", 4)]
