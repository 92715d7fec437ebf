"""Exchange keys: encryption at rest, masking, the audited service and the admin's write-only fields."""
import base64
import json
import sys
from decimal import Decimal

import pytest
from django.core.signals import got_request_exception
from django.db import connection
from django.test import Client
from django.views.debug import ExceptionReporter
from hypothesis import given
from hypothesis import strategies as st

from decisions.models import AuditRecord
from execution.models import Account
from execution.secrets import (
    EncryptionKeyError,
    account_key_hint,
    account_keys_get,
    account_keys_set,
    mask,
    secret_decrypt,
    secret_encrypt,
    secrets_forget,
    secrets_known,
)
from tests.dashboard.factories import T0

KEY_A = base64.urlsafe_b64encode(b"a" * 32).decode()
KEY_B = base64.urlsafe_b64encode(b"b" * 32).decode()
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
API_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


@pytest.fixture
def field_key_a(settings):
    settings.FIELD_ENCRYPTION_KEY = KEY_A


@pytest.fixture
def account(db) -> Account:
    return Account.objects.create(name="live", broker=Account.Broker.LIVE, starting_balance_usdt=Decimal("100"),
                                  balance_usdt=Decimal("100"))


def keys_set(account: Account, api_key: str | None = API_KEY, api_secret: str | None = API_SECRET) -> Account:
    return account_keys_set(account=account, api_key=api_key, api_secret=api_secret, actor="alice", now=T0)


def raw_row(account: Account) -> str:
    """Return every column of the account's database row as one string, read past the ORM."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {Account._meta.db_table} WHERE id = %s", [account.pk])
        return " ".join(str(value) for value in cursor.fetchone())


# -- encryption --------------------------------------------------------------------------------------


@pytest.mark.parametrize("plain", [API_KEY, "x", "zażółć gęślą jaźń", "a" * 500])
def test_secret_encrypt_round_trip_returns_plain(field_key_a, plain):
    token = secret_encrypt(plain)

    assert token != plain and secret_decrypt(token) == plain


def test_secret_encrypt_same_plain_twice_gives_different_tokens(field_key_a):
    assert secret_encrypt(API_KEY) != secret_encrypt(API_KEY)  # Fernet's random IV: equal keys do not show


def test_secret_encrypt_empty_stays_empty(field_key_a):
    assert secret_encrypt("") == "" and secret_decrypt("") == ""


def test_secret_decrypt_other_field_key_raises_key_changed(settings, field_key_a):
    token = secret_encrypt(API_SECRET)
    settings.FIELD_ENCRYPTION_KEY = KEY_B

    with pytest.raises(EncryptionKeyError, match="FIELD_ENCRYPTION_KEY .*changed since it was saved"):
        secret_decrypt(token)


def test_secret_decrypt_secret_key_rotated_without_field_key_raises(settings):
    settings.FIELD_ENCRYPTION_KEY = ""
    token = secret_encrypt(API_SECRET)
    settings.SECRET_KEY = "another-secret-key"

    with pytest.raises(EncryptionKeyError, match="cannot be decrypted"):
        secret_decrypt(token)


def test_secret_decrypt_key_list_reads_tokens_of_the_old_key(settings, field_key_a):
    old_token = secret_encrypt(API_SECRET)
    settings.FIELD_ENCRYPTION_KEY = f"{KEY_B},{KEY_A}"

    new_token = secret_encrypt(API_SECRET)
    settings.FIELD_ENCRYPTION_KEY = KEY_B

    assert secret_decrypt(new_token) == API_SECRET
    with pytest.raises(EncryptionKeyError):
        secret_decrypt(old_token)


def test_secret_decrypt_field_key_set_later_reads_derived_tokens(settings):
    settings.FIELD_ENCRYPTION_KEY = ""
    token = secret_encrypt(API_SECRET)
    settings.FIELD_ENCRYPTION_KEY = KEY_A

    assert secret_decrypt(token) == API_SECRET


@pytest.mark.parametrize("bad_key", ["not-a-key", base64.urlsafe_b64encode(b"short").decode()])
def test_secret_encrypt_malformed_field_key_raises_configuration_error(settings, bad_key):
    settings.FIELD_ENCRYPTION_KEY = bad_key

    with pytest.raises(EncryptionKeyError, match="32 url-safe base64-encoded bytes") as caught:
        secret_encrypt(API_KEY)

    assert bad_key not in str(caught.value)


# -- masking -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    # nothing stored
    ("", ""),
    # too short to show any of it
    ("a", "••••"),
    ("abcdefghijk", "••••"),
    # 12 characters or more: first and last four
    ("abcdefghijkl", "abcd…ijkl"),
    (API_KEY, "vmPU…Eh8A"),
])
def test_mask_value_returns_hint(value, expected):
    assert mask(value) == expected


@given(st.text(alphabet=st.characters(blacklist_characters="•…"), min_size=1))
def test_mask_never_contains_the_value(value):
    assert value not in mask(value)


# -- the service -------------------------------------------------------------------------------------


def test_account_keys_set_stores_ciphertext_only(field_key_a, account):
    keys_set(account)

    row = raw_row(account)
    assert API_KEY not in row and API_SECRET not in row
    assert account_keys_get(Account.objects.get(pk=account.pk)) == (API_KEY, API_SECRET)


def test_account_keys_set_audits_masked_hint_without_the_keys(field_key_a, account):
    keys_set(account)

    record = AuditRecord.objects.order_by("-seq").first()
    text = json.dumps(record.body) + record.subject + record.hash
    assert record.kind == AuditRecord.Kind.LIMIT_CHANGE and record.actor == "alice"
    assert record.body == {"field": "api_keys", "action": "set", "key_changed": True, "secret_changed": True,
                           "key_hint": "vmPU…Eh8A"}
    assert API_KEY not in text and API_SECRET not in text


@pytest.mark.parametrize(("api_key", "api_secret", "expected"), [
    # None keeps the stored value
    (None, "new-secret-value", (API_KEY, "new-secret-value")),
    ("new-key-value", None, ("new-key-value", API_SECRET)),
    # "" clears it
    ("", "", ("", "")),
])
def test_account_keys_set_none_keeps_and_empty_clears(settings, field_key_a, account, api_key, api_secret,
                                                      expected):
    settings.EXCHANGE_API_KEY, settings.EXCHANGE_API_SECRET = "", ""
    keys_set(account)

    keys_set(account, api_key, api_secret)

    assert account_keys_get(Account.objects.get(pk=account.pk)) == expected


def test_account_keys_set_nothing_new_writes_no_audit(field_key_a, account):
    before = AuditRecord.objects.count()

    keys_set(account, None, None)

    assert AuditRecord.objects.count() == before


def test_account_keys_get_without_stored_keys_returns_environment_pair(settings, account):
    settings.EXCHANGE_API_KEY, settings.EXCHANGE_API_SECRET = "env-key-123456", "env-secret-123456"

    assert account_keys_get(account) == ("env-key-123456", "env-secret-123456")


def test_account_key_hint_after_key_change_says_unreadable(settings, field_key_a, account):
    keys_set(account)
    settings.FIELD_ENCRYPTION_KEY = KEY_B

    assert account_key_hint(account) == "unreadable: the encryption key changed"


def test_secrets_known_lists_account_and_environment_secrets(settings, field_key_a, account):
    settings.EXCHANGE_API_KEY, settings.EXCHANGE_API_SECRET = "env-key-123456", ""
    keys_set(account)

    known = secrets_known()

    assert {API_KEY, API_SECRET, "env-key-123456"} <= known and "" not in known


def test_secrets_known_unreadable_account_is_skipped(settings, field_key_a, account):
    keys_set(account)
    settings.FIELD_ENCRYPTION_KEY = KEY_B
    secrets_forget()

    assert API_KEY not in secrets_known()


# -- the admin ---------------------------------------------------------------------------------------


def change_url(account: Account) -> str:
    return f"/admin/execution/account/{account.pk}/change/"


def post_account(client: Client, account: Account, **fields):
    data = {"name": account.name, "broker": account.broker, "exchange_id": account.exchange_id,
            "starting_balance_usdt": str(account.starting_balance_usdt), "api_key": "", "api_secret": "",
            "_save": "Save"} | fields
    return client.post(change_url(account), data, follow=True)


def test_admin_post_keys_stores_them_encrypted_and_never_echoes(field_key_a, account, admin_client):
    response = post_account(admin_client, account, api_key=API_KEY, api_secret=API_SECRET)
    page = admin_client.get(change_url(account)).content.decode()

    stored = Account.objects.get(pk=account.pk)
    assert response.status_code == 200 and response.redirect_chain
    assert account_keys_get(stored) == (API_KEY, API_SECRET)
    assert API_KEY not in raw_row(stored) and API_SECRET not in raw_row(stored)
    for html in (response.content.decode(), page):
        assert API_KEY not in html and API_SECRET not in html
        assert stored.api_key_encrypted not in html and stored.api_secret_encrypted not in html
    assert "vmPU…Eh8A" in response.content.decode() and "vmPU…Eh8A" in page


def test_admin_post_blank_keys_keeps_the_stored_ones(field_key_a, account, admin_client):
    keys_set(account)

    post_account(admin_client, account, name="live-renamed")

    stored = Account.objects.get(pk=account.pk)
    assert stored.name == "live-renamed"
    assert account_keys_get(stored) == (API_KEY, API_SECRET)


def test_admin_post_key_without_secret_is_refused_without_echo(field_key_a, account, admin_client):
    response = post_account(admin_client, account, api_key=API_KEY)

    html = response.content.decode()
    assert "Enter both the API key and its secret." in html
    assert API_KEY not in html
    assert Account.objects.get(pk=account.pk).api_key_encrypted == ""


def test_admin_post_clear_keys_removes_both(field_key_a, account, admin_client):
    keys_set(account)

    post_account(admin_client, account, clear_keys="on")

    stored = Account.objects.get(pk=account.pk)
    assert (stored.api_key_encrypted, stored.api_secret_encrypted) == ("", "")
    assert AuditRecord.objects.order_by("-seq").first().body["action"] == "cleared"


def test_admin_add_account_with_keys_starts_at_its_starting_balance(field_key_a, admin_client):
    admin_client.post("/admin/execution/account/add/", {
        "name": "testnet", "broker": "testnet", "exchange_id": "binanceusdm", "starting_balance_usdt": "500",
        "api_key": API_KEY, "api_secret": API_SECRET, "_save": "Save"})

    created = Account.objects.get(name="testnet")
    assert created.balance_usdt == Decimal("500")
    assert account_keys_get(created) == (API_KEY, API_SECRET)


def test_admin_error_report_hides_posted_keys(field_key_a, account, admin_user, monkeypatch):
    def fail(**kwargs):
        raise RuntimeError("audit store down")

    def report(sender, request, **kwargs):
        # What an error reporter (mail_admins, Sentry) renders: frames, locals and POST data.
        reports.append(ExceptionReporter(request, *sys.exc_info()).get_traceback_html())

    reports = []
    monkeypatch.setattr("execution.secrets.audit_append", fail)
    got_request_exception.connect(report)
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    try:
        response = post_account(client, account, api_key=API_KEY, api_secret=API_SECRET)
    finally:
        got_request_exception.disconnect(report)

    assert response.status_code == 500 and len(reports) == 1 and "audit store down" in reports[0]
    for html in (response.content.decode(), reports[0]):
        assert API_KEY not in html and API_SECRET not in html
