"""The latest snapshot and flow as documents: command and API."""
import json
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from execution.engine import cycle_run
from tests.execution.test_pipeline import _close_times

pytestmark = pytest.mark.django_db


@pytest.fixture
def decided(btc_15m):  # noqa: F811
    _, frame = btc_15m
    now = next(_close_times(frame))
    cycle_run(now=now, decide=True)
    return now


def test_export_latest_writes_snapshot_and_flow_documents(decided, tmp_path):
    call_command("export_latest", symbol="BTCUSDT", out_dir=str(tmp_path), stdout=StringIO())

    snapshot = json.loads((tmp_path / "btc_snapshot.json").read_text())
    flow = json.loads((tmp_path / "btc_flow.json").read_text())
    assert snapshot["as_of"] == flow["as_of"] == decided.isoformat()
    assert snapshot["trend"] in {"up", "down", "range"} and snapshot["features"]["atr"] > 0
    assert -1 <= flow["crowd_bias"] <= 1 and 0 <= flow["risk"]["global_score"] <= 100


def test_api_latest_flow_requires_login_then_returns_document(decided):
    client = Client()

    assert client.get("/api/flows/BTCUSDT/latest/").status_code == 401  # token auth answers 401 with WWW-Authenticate
    get_user_model().objects.create_user("script", password="pw")
    client.login(username="script", password="pw")
    body = client.get("/api/flows/btcusdt/latest/").json()

    assert body["as_of"] == decided.isoformat()
    assert "crowd_bias" in body["parts"]


def test_api_latest_snapshot_unknown_symbol_is_404(decided):
    get_user_model().objects.create_user("script", password="pw")
    client = Client()
    client.login(username="script", password="pw")

    assert client.get("/api/snapshots/DOGEUSDT/latest/").status_code == 404
