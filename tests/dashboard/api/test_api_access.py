"""Who may call what: every endpoint anonymous (401), as a viewer, an operator and an admin (dashboard.roles)."""
import pytest

from tests.dashboard.api.world import world_build

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    return world_build()


def reads(w) -> list[str]:
    return [
        "/api/instruments/", f"/api/instruments/{w.instrument.pk}/",
        "/api/candles/?symbol=BTCUSDT&timeframe=1m",
        "/api/derivatives/", f"/api/derivatives/{w.instrument.derivatives.get().pk}/",
        "/api/snapshots/", f"/api/snapshots/{w.instrument.snapshots.get().pk}/", "/api/snapshots/BTCUSDT/latest/",
        "/api/flows/", f"/api/flows/{w.instrument.flows.get().pk}/", "/api/flows/BTCUSDT/latest/",
        "/api/decisions/", f"/api/decisions/{w.decision.pk}/",
        "/api/accounts/", f"/api/accounts/{w.account.pk}/",
        "/api/orders/", f"/api/orders/{w.order.pk}/", "/api/fills/", f"/api/fills/{w.fill.pk}/",
        "/api/positions/", f"/api/positions/{w.position.pk}/",
        f"/api/equity/?account={w.account.pk}",
        "/api/backtests/", f"/api/backtests/{w.backtest.pk}/",
        "/api/sentiment/", "/api/uploads/", "/api/control/", "/api/health/", "/api/schema/",
    ]


# (path, body) of every write an operator may make; each is refused before anything runs for a viewer.
def operator_writes(w) -> list[tuple[str, dict]]:
    return [
        (f"/api/decisions/{w.decision.pk}/approve/", {}),
        (f"/api/decisions/{w.decision.pk}/reject/", {"note": "no"}),
        (f"/api/decisions/{w.decision.pk}/snooze/", {"minutes": 5}),
        ("/api/sentiment/", {"score": "0.5", "source": "desk"}),
        ("/api/uploads/etf-flows/", {"asset": "BTC"}),
        ("/api/uploads/liquidation-zones/", {"symbol": "BTCUSDT"}),
        ("/api/control/mode/", {"mode": "SAFE", "reason": "quiet market"}),
        ("/api/control/pause/", {"reason": "news"}),
        ("/api/control/resume/", {}),
        ("/api/control/stop/", {"reason": "end of day"}),
        ("/api/backtests/", {"symbols": ["BTCUSDT"], "timeframe": "15m", "start": "2024-03-01T00:00:00Z",
                             "end": "2024-03-02T00:00:00Z"}),
    ]


def test_every_read_anonymous_is_401(world, api):
    anonymous = api(None)

    statuses = {path: anonymous.get(path).status_code for path in reads(world)}

    assert set(statuses.values()) == {401}, statuses


def test_every_read_viewer_is_200(world, viewer_api):
    statuses = {path: viewer_api.get(path).status_code for path in reads(world)}

    assert set(statuses.values()) == {200}, statuses


def test_every_write_anonymous_is_401(world, api):
    anonymous = api(None)

    statuses = {path: anonymous.post(path, body, format="json").status_code for path, body in operator_writes(world)}

    assert set(statuses.values()) == {401}, statuses


def test_every_write_viewer_is_403_naming_the_operator_role(world, viewer_api):
    responses = {path: viewer_api.post(path, body, format="json") for path, body in operator_writes(world)}

    assert {path: r.status_code for path, r in responses.items()} == {path: 403 for path in responses}
    assert {r.json()["detail"] for r in responses.values()} == {"this needs the operator role"}


def test_every_write_operator_passes_the_role_check(world, operator_api):
    statuses = {path: operator_api.post(path, body, format="json").status_code
                for path, body in operator_writes(world)}

    # Past the role check each answers on its merits: done (200/201), refused (400, 409), never 401/403/5xx.
    assert all(code in (200, 201, 400, 409) for code in statuses.values()), statuses


@pytest.mark.parametrize("mode", ["HYBRID", "ON"])
def test_mode_hybrid_or_on_operator_is_403(world, operator_api, mode):
    response = operator_api.post("/api/control/mode/", {"mode": mode, "reason": "trade", "confirm": True},
                                 format="json")

    assert response.status_code == 403
    assert response.json() == {"detail": f"only admins may switch the mode to {mode}"}


def test_token_wrong_is_401(world, api):
    client = api(None)
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    response = client.get("/api/instruments/")

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


def test_session_login_reads_too(world, viewer_client):
    assert viewer_client.get("/api/decisions/").status_code == 200


def test_accounts_never_return_key_material(world, viewer_api):
    listed = viewer_api.get("/api/accounts/").content.decode()
    one = viewer_api.get(f"/api/accounts/{world.account.pk}/").content.decode()

    for body in (listed, one):
        assert "ENCRYPTED" not in body and "api_key" not in body and "api_secret" not in body
