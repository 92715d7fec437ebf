"""docs/api_example.py against a live server: it reads the state and approves a pending decision."""
import datetime as dt
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine
from rest_framework.authtoken.models import Token

from execution.models import EquityPoint
from execution.selectors import account_name_for
from execution.services import account_ensure
from tests.dashboard.conftest import user_with_role
from tests.dashboard.factories import CandleFactory, DecisionFactory, InstrumentFactory, TradingConfigFactory

pytestmark = pytest.mark.django_db(transaction=True)

SCRIPT = Path(__file__).resolve().parents[3] / "docs" / "api_example.py"
# A Wednesday afternoon, inside the default trading hours (07:00-23:00 Warsaw).
NOW = dt.datetime(2026, 11, 25, 14, 10, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def bot():
    """A HYBRID bot with equity points and one decision waiting for approval, its price inside the entry zone."""
    TradingConfigFactory(mode="HYBRID")
    btc = InstrumentFactory(data_source="exchange")
    account = account_ensure(name=account_name_for(btc.data_source))
    for n in range(3):
        EquityPoint.objects.create(account=account, ts=NOW - (3 - n) * MINUTE, balance_usdt=Decimal("10000"),
                                   unrealized_pnl_usdt=0, equity_usdt=Decimal("10000.25") + n)
    for minutes in (3, 2):
        CandleFactory(instrument=btc, timeframe="1m", open_time=NOW - minutes * MINUTE, close=Decimal("65050"))
    return DecisionFactory(
        instrument=btc, timeframe="15m", as_of=NOW - 10 * MINUTE, action="LONG", mode="HYBRID", outcome="pending",
        approval="pending", entry_price=Decimal("65050"), stop_price=Decimal("64800.5"),
        target_price=Decimal("65800.5"), quantity=Decimal("0.015"),
        take_profits=[{"price": "65300.5", "share": "0.4"}, {"price": "65550.5", "share": "0.4"},
                      {"price": "65800.5", "share": "0.2"}],
        entry_zone_low=Decimal("64990"), entry_zone_high=Decimal("65110"), confidence=0.71,
        expires_at=NOW + dt.timedelta(hours=4), reason="trend up; waiting for approval")


def run(live_server, token: str, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRADINGBOT_URL": live_server.url, "TRADINGBOT_TOKEN": token}
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60)


def test_api_example_reads_then_approves_and_the_position_opens(live_server, bot, django_user_model):
    token = Token.objects.create(user=user_with_role(django_user_model, "desk", "operator")).key

    with time_machine.travel(NOW, tick=False):
        before = run(live_server, token)
        approved = run(live_server, token, "--approve", str(bot.pk))

    assert before.returncode == 0, before.stderr
    assert f"last decision #{bot.pk}: BTCUSDT 15m at 2026-11-25T14:00:00Z: LONG (pending)" in before.stdout
    assert "equity of paper (paper): 10002.25 USDT at 2026-11-25T14:09:00Z" in before.stdout
    assert "open positions: 0" in before.stdout
    assert approved.returncode == 0, approved.stderr
    assert f"decision #{bot.pk} approved by desk: executed" in approved.stdout
    assert "open positions: 1" in approved.stdout and "LONG 0.015 BTCUSDT" in approved.stdout


def test_api_example_viewer_approve_prints_the_refusal_and_exits_1(live_server, bot, django_user_model):
    token = Token.objects.create(user=user_with_role(django_user_model, "reader", None)).key

    refused = run(live_server, token, "--approve", str(bot.pk))

    assert refused.returncode == 1
    assert refused.stderr.strip() == (f"POST /api/decisions/{bot.pk}/approve/: HTTP 403: "
                                      "this needs the operator role")


def test_api_example_without_environment_explains_what_to_set(live_server):
    done = subprocess.run([sys.executable, str(SCRIPT)], env={"PATH": os.environ.get("PATH", "")},
                          capture_output=True, text=True, timeout=60)

    assert done.returncode == 2 and "TRADINGBOT_URL" in done.stderr
