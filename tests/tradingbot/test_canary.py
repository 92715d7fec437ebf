"""Canary: planted exchange keys never surface in logs, task results, error pages, admin, API or websocket.

One key pair is stored on the account (encrypted, execution/secrets.py), another sits in the
environment settings (EXCHANGE_API_KEY / EXCHANGE_API_SECRET). Every surface is exercised with
both and searched for any 16-character run of either.
"""
import base64
import io
import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from multiprocessing import Queue, Value

import ccxt
import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, reverse
from django_q.brokers import get_broker
from django_q.models import Task
from django_q.monitor import monitor
from django_q.signing import SignedPackage
from django_q.tasks import async_task
from django_q.worker import worker

import dashboard.api.urls
import dashboard.urls
from dashboard.consumers import LiveConsumer
from decisions.models import AuditRecord
from execution.brokers.base import BrokerError
from execution.brokers.ccxt import CcxtBroker
from execution.models import Account
from execution.secrets import account_keys_get, account_keys_set, mask, secrets_forget
from execution.services import equity_record
from market.exchanges.client import ClientOptions, exchange_client, rebase_urls
from tests.dashboard.factories import (
    T0,
    DecisionFactory,
    EquityPointFactory,
    InstrumentFactory,
    PositionFactory,
    SnapshotFactory,
    TradingConfigFactory,
)
from tradingbot.log_filters import REDACTED, RedactSecretsFilter

pytestmark = pytest.mark.django_db

ACCOUNT_KEY = "CanaryAcctKey" + "7f3a9cQ2" * 6 + "wXyZ"
ACCOUNT_SECRET = "CanaryAcctSecret" + "b41eK9" * 8
ENV_KEY = "CanaryEnvKey" + "5d2cM7pR" * 6 + "AbCd"
ENV_SECRET = "CanaryEnvSecret" + "90afZ3" * 8
CANARIES = (ACCOUNT_KEY, ACCOUNT_SECRET, ENV_KEY, ENV_SECRET)
RUN_CHARS = 16  # masks show 8 characters; any longer run of a canary is a leak
CCXT_LOGGER = "ccxt.base.exchange"


def assert_clean(text: str, where: str = "") -> None:
    """Fail if `text` holds any RUN_CHARS-long piece of a canary."""
    for canary in CANARIES:
        for start in range(len(canary) - RUN_CHARS + 1):
            assert canary[start:start + RUN_CHARS] not in text, f"canary leaked {where}"


@pytest.fixture
def canary_env(settings):
    settings.EXCHANGE_API_KEY, settings.EXCHANGE_API_SECRET = ENV_KEY, ENV_SECRET
    settings.FIELD_ENCRYPTION_KEY = base64.urlsafe_b64encode(b"c" * 32).decode()


@pytest.fixture
def canary_account(canary_env) -> Account:
    account = Account.objects.create(name="paper", broker=Account.Broker.PAPER, starting_balance_usdt=Decimal("10000"),
                                     balance_usdt=Decimal("10000"))
    account_keys_set(account=account, api_key=ACCOUNT_KEY, api_secret=ACCOUNT_SECRET, actor="admin", now=T0)
    yield account
    secrets_forget()  # the rolled-back keys must not linger in the log filter's list


@contextmanager
def console_output() -> Iterator[io.StringIO]:
    """Point the console handler that settings.LOGGING configured (filter included) at a buffer."""
    handler = next(h for h in logging.getLogger().handlers
                   if any(isinstance(f, RedactSecretsFilter) for f in h.filters))
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)


class RawRecords(logging.Handler):
    """Keep each record's message as logged, before any filter downstream could rewrite it."""

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def keyed_client(api_key: str, api_secret: str, api_url: str) -> ccxt.binanceusdm:
    client = ccxt.binanceusdm({"apiKey": api_key, "secret": api_secret, "timeout": 2_000, "enableRateLimit": False})
    client.urls["api"] = rebase_urls(client.urls["api"], api_url)
    return client


def private_call_task(account_id: int, api_url: str) -> str:
    """Ask the venue for the position mode with the account's keys (a django-q2 task)."""
    api_key, api_secret = account_keys_get(Account.objects.get(pk=account_id))
    broker = CcxtBroker(keyed_client(api_key, api_secret, api_url), sleep=lambda s: None, read_attempts=1)
    return broker.position_mode()


def run_queued_task(func: str, *args) -> Task:
    """Queue `func` on the ORM broker, run it as the cluster does (worker, then monitor) and return its row."""
    task_id = async_task(func, *args, sync=False)
    broker = get_broker()
    [(ack_id, pack)] = broker.dequeue()
    task = SignedPackage.loads(pack) | {"ack_id": ack_id}
    task_queue, result_queue = Queue(), Queue()
    task_queue.put(task)
    task_queue.put("STOP")
    worker(task_queue, result_queue, Value("f", -1))
    result_queue.put("STOP")
    monitor(result_queue, broker)
    for queue in (task_queue, result_queue):
        queue.close()
        queue.join_thread()
    return Task.objects.get(id=task_id)


# -- (a) logs ----------------------------------------------------------------------------------------


def test_canary_log_message_with_known_keys_is_redacted(canary_account, caplog):
    logger = logging.getLogger("execution.engine")

    with console_output() as out:
        logger.warning("connecting with %s / %s", ACCOUNT_KEY, ACCOUNT_SECRET)
        logger.warning(f"environment pair {ENV_KEY} {ENV_SECRET}")

    for text in (out.getvalue(), caplog.text):
        assert_clean(text)
        assert text.count(REDACTED) >= 4


def test_canary_logged_exception_with_keys_is_redacted(canary_account, caplog):
    logger = logging.getLogger("execution.engine")

    with console_output() as out:
        try:
            raise RuntimeError(f"venue refused key {ACCOUNT_KEY} secret {ENV_SECRET}")
        except RuntimeError:
            logger.exception("order failed")

    for text in (out.getvalue(), caplog.text):
        assert_clean(text)
        assert "RuntimeError: venue refused key [redacted] secret [redacted]" in text
    assert caplog.records[-1].exc_info is None  # no handler can render the raw exception again


@pytest.mark.parametrize(("line", "hidden"), [
    # ccxt's DEBUG request line: headers as a dict, the signed query in the URL
    ("GET http://x/fapi/v1/order?timestamp=1&signature=" + "ab12" * 16 + ", Request: {'X-MBX-APIKEY': "
     "'UnknownHeaderKey0123456789'} None", ("UnknownHeaderKey0123456789", "ab12" * 16)),
    # raw header and query-string forms
    ("X-MBX-APIKEY: UnknownRawHeaderKey987654", ("UnknownRawHeaderKey987654",)),
    ("apiKey=UnknownQueryKey1234567&secret=UnknownQuerySecret7654321", ("UnknownQueryKey1234567",
                                                                         "UnknownQuerySecret7654321")),
    # a config dict printed whole
    ("{'apiKey': 'UnknownDictKey12345678', 'secret': 'UnknownDictSecret1234'}", ("UnknownDictKey12345678",
                                                                                 "UnknownDictSecret1234")),
])
def test_canary_credential_patterns_of_unknown_keys_are_redacted(canary_env, line, hidden):
    with console_output() as out:
        logging.getLogger(CCXT_LOGGER).warning("%s", line)

    assert REDACTED in out.getvalue()
    assert not any(value in out.getvalue() for value in hidden)


def test_canary_ccxt_debug_request_log_is_redacted(canary_account, caplog, closed_port_url):
    caplog.set_level(logging.DEBUG)
    raw = RawRecords()
    logging.getLogger(CCXT_LOGGER).addHandler(raw)
    client = exchange_client(ClientOptions("binanceusdm", api_url=closed_port_url, with_keys=True, timeout_ms=2_000))

    try:
        with console_output() as out, pytest.raises(ccxt.NetworkError):
            client.fapiPrivateGetPositionSideDual()
    finally:
        logging.getLogger(CCXT_LOGGER).removeHandler(raw)

    assert any(ENV_KEY in message for message in raw.messages)  # ccxt did log the header, unfiltered
    for text in (out.getvalue(), caplog.text):
        assert "Request:" in text and f"'X-MBX-APIKEY': '{REDACTED}'" in text
        assert_clean(text)


# -- (b) exceptions and task results -----------------------------------------------------------------


def test_canary_ccxt_private_call_error_carries_no_keys(canary_account, closed_port_url):
    clients = [exchange_client(ClientOptions("binanceusdm", api_url=closed_port_url, with_keys=True, timeout_ms=2_000)),
               keyed_client(*account_keys_get(canary_account), closed_port_url)]

    for client in clients:
        with pytest.raises(ccxt.NetworkError, match="positionSide/dual") as caught:
            client.fapiPrivateGetPositionSideDual()
        assert_clean(str(caught.value) + repr(caught.value) + "".join(traceback.format_exception(caught.value)))


def test_canary_broker_error_carries_no_keys(canary_account, closed_port_url):
    with pytest.raises(BrokerError) as caught:
        private_call_task(canary_account.pk, closed_port_url)

    assert_clean(str(caught.value) + "".join(traceback.format_exception(caught.value)))


def test_canary_failed_task_result_carries_no_keys(canary_account, closed_port_url, caplog):
    task = run_queued_task("tests.tradingbot.test_canary.private_call_task", canary_account.pk, closed_port_url)

    assert task.success is False and "ExchangeUnavailable" in task.result
    assert_clean(f"{task.result} {task.args} {task.kwargs}")
    assert "Failed" in caplog.text
    assert_clean(caplog.text)


def test_canary_sync_task_exception_carries_no_keys(canary_account, closed_port_url):
    with pytest.raises(BrokerError) as caught:
        async_task(private_call_task, canary_account.pk, closed_port_url, sync=True)

    assert_clean(str(caught.value) + "".join(traceback.format_exception(caught.value)))


# -- (c) error pages ---------------------------------------------------------------------------------


@pytest.mark.urls("tests.tradingbot.canary_urls")
@pytest.mark.parametrize("path", ["/canary/boom/", "/canary/boom/{pk}/"])
def test_canary_server_error_page_and_log_carry_no_keys(settings, canary_account, path):
    settings.DEBUG = False
    client = Client(raise_request_exception=False)

    with console_output() as out:
        response = client.get(path.format(pk=canary_account.pk))

    assert response.status_code == 500
    assert_clean(response.content.decode())
    assert "Internal Server Error" in out.getvalue() and "RuntimeError: venue refused" in out.getvalue()
    assert_clean(out.getvalue())


@pytest.mark.urls("tests.tradingbot.canary_urls")
def test_canary_not_found_page_and_log_carry_no_keys(settings, canary_account):
    settings.DEBUG = False

    with console_output() as out:
        response = Client().get(f"/no-such-page/?apiKey={ENV_KEY}&secret={ENV_SECRET}")

    assert response.status_code == 404
    assert_clean(response.content.decode())
    assert_clean(out.getvalue())


# -- (d) admin pages ---------------------------------------------------------------------------------


def test_canary_admin_pages_show_only_the_hint(canary_account, admin_client):
    record = AuditRecord.objects.filter(subject=f"account:{canary_account.pk}").get()
    urls = ["/admin/execution/account/", f"/admin/execution/account/{canary_account.pk}/change/",
            f"/admin/execution/account/{canary_account.pk}/history/", "/admin/decisions/auditrecord/",
            f"/admin/decisions/auditrecord/{record.pk}/change/"]

    pages = {url: admin_client.get(url) for url in urls}

    for url, response in pages.items():
        assert response.status_code == 200, url
        assert_clean(response.content.decode(), url)
        assert canary_account.api_key_encrypted not in response.content.decode()
    assert mask(ACCOUNT_KEY) in pages[urls[0]].content.decode()


# -- (e) API and dashboard responses -----------------------------------------------------------------


def _routes(patterns, namespace: str, pk: int = 1) -> list[str]:
    """Return the URL of every route in `patterns` (and the modules they include), filling path
    arguments with the canary's market."""
    values = {"symbol": "BTCUSDT", "pk": pk, "kind": "etf-flows"}
    urls = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            assert pattern.namespace is None, "a namespaced include: extend _routes"
            urls += _routes(pattern.url_patterns, namespace, pk)
        elif isinstance(pattern, URLPattern):
            # path() routes name their arguments as converters, the API router's regex routes as groups.
            names = set(pattern.pattern.converters) or set(pattern.pattern.regex.groupindex)
            missing = names - set(values)
            assert not missing, f"{pattern.name}: give the canary a value for {missing}"
            kwargs = {name: values[name] for name in names}
            urls.append(reverse(f"{namespace}:{pattern.name}", kwargs=kwargs))
    return urls


@pytest.fixture
def market(canary_account):
    TradingConfigFactory(mode="ON")
    instrument = InstrumentFactory(data_source="exchange")
    SnapshotFactory(instrument=instrument)
    PositionFactory(account=canary_account, instrument=instrument)
    EquityPointFactory(account=canary_account)
    return DecisionFactory(instrument=instrument)


def body(response) -> str:
    return response.getvalue().decode()  # CSV exports stream


def test_canary_every_api_endpoint_carries_no_keys(market, admin_client):
    urls = _routes(dashboard.api.urls.urlpatterns, "api")

    responses = {url: admin_client.get(url) for url in urls}

    assert urls and any(response.status_code == 200 for response in responses.values())
    for url, response in responses.items():
        assert_clean(body(response), url)


def test_canary_every_dashboard_page_carries_no_keys(market, admin_client):
    urls = _routes(dashboard.urls.urlpatterns, "dashboard", pk=market.pk)

    responses = {url: admin_client.get(url) for url in urls}

    assert responses[reverse("dashboard:overview")].status_code == 200
    assert responses[reverse("dashboard:decision", kwargs={"pk": market.pk})].status_code == 200
    for url, response in responses.items():
        assert_clean(body(response), url)


# -- (f) websocket frames ----------------------------------------------------------------------------


@database_sync_to_async
def _market_and_user():
    TradingConfigFactory(mode="ON")
    InstrumentFactory(data_source="exchange")
    account = Account.objects.get(name="paper")
    EquityPointFactory(account=account)
    return account, get_user_model().objects.create_user("trader", password="pw")


@pytest.mark.django_db(transaction=True)
async def test_canary_websocket_frames_carry_no_keys(canary_account):
    account, user = await _market_and_user()
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected

    frames = [await communicator.receive_from()]                      # the state on connect
    await sync_to_async(equity_record)(account=account, now=T0)        # an equity event for the account
    frames.append(await communicator.receive_from())
    await communicator.send_json_to({"type": "refresh"})              # the state again, on request
    frames.append(await communicator.receive_from())
    await communicator.disconnect()

    assert '"event": "state"' in frames[0] and '"event": "equity"' in frames[1]
    assert '"account"' in frames[0] and '"paper"' in frames[1]
    for frame in frames:
        assert_clean(frame)
