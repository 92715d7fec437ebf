"""Exchange API keys: encrypted at rest (Fernet), masked for display, known to the log filter.

The key comes from settings.FIELD_ENCRYPTION_KEY (the environment): one or more comma-separated
Fernet keys, the first encrypting and all decrypting, so a new key can be put in front of the old
one. When it is empty the key is derived from SECRET_KEY (HKDF-SHA256): rotating SECRET_KEY then
makes every stored exchange key unreadable, so production sets FIELD_ENCRYPTION_KEY
(docs/OPERATIONS.md, "Exchange keys").
"""
from __future__ import annotations

import base64
import functools
import threading
import time
from datetime import datetime

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from decisions.audit_services import audit_append
from decisions.models import AuditRecord
from execution.models import Account

# Changing this label changes the derived key and makes stored keys unreadable: never edit it.
HKDF_INFO = b"tradingbot execution.secrets exchange-keys v1"
KNOWN_TTL_S = 30.0  # how long the log filter trusts its list of live secrets before re-reading the accounts
MASK_MIN_CHARS = 12  # shorter values would give away too large a share of themselves
HIDDEN = "••••"


class EncryptionKeyError(ImproperlyConfigured):
    """Stop and fix FIELD_ENCRYPTION_KEY (or SECRET_KEY): stored exchange keys cannot be read with it."""


def _derived_key(secret_key: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode()))


@functools.lru_cache(maxsize=8)
def _fernet(field_keys: str, secret_key: str) -> MultiFernet:
    configured = [key.strip() for key in field_keys.split(",") if key.strip()]
    try:
        # The derived key decrypts last, so values saved before FIELD_ENCRYPTION_KEY was set still read.
        return MultiFernet([Fernet(key) for key in configured] + [Fernet(_derived_key(secret_key))])
    except ValueError as exc:  # the message names no key material
        raise EncryptionKeyError(
            "FIELD_ENCRYPTION_KEY must be Fernet keys: 32 url-safe base64-encoded bytes each, comma-separated "
            "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
        ) from exc


def _cipher() -> MultiFernet:
    return _fernet(settings.FIELD_ENCRYPTION_KEY or "", settings.SECRET_KEY)


@sensitive_variables()
def secret_encrypt(plain: str) -> str:
    """Return the Fernet token of `plain` as text; "" stays "" (no key stored)."""
    if not plain:
        return ""
    return _cipher().encrypt(plain.encode()).decode("ascii")


@sensitive_variables()
def secret_decrypt(token: str) -> str:
    """Return the plain text of a `secret_encrypt` token; raise EncryptionKeyError if the key changed."""
    if not token:
        return ""
    try:
        return _cipher().decrypt(token.encode("ascii")).decode()
    except InvalidToken:
        raise EncryptionKeyError(
            "a stored exchange key cannot be decrypted: FIELD_ENCRYPTION_KEY (or SECRET_KEY, when "
            "FIELD_ENCRYPTION_KEY is empty) changed since it was saved; restore the old key or enter "
            "the exchange keys again in the admin"
        ) from None


def mask(value: str) -> str:
    """Return "abcd…wxyz" for a value of 12 characters or more, "••••" for a shorter one, "" for none."""
    if not value:
        return ""
    if len(value) < MASK_MIN_CHARS:
        return HIDDEN
    return f"{value[:4]}…{value[-4:]}"


def account_key_hint(account: Account) -> str:
    """Return the masked API key of `account` for display: a hint, "not set" or "unreadable"."""
    try:
        return mask(secret_decrypt(account.api_key_encrypted)) or "not set"
    except EncryptionKeyError:
        return "unreadable: the encryption key changed"


@sensitive_variables()
def account_keys_set(*, account: Account, api_key: str | None, api_secret: str | None, actor: str,
                     now: datetime) -> Account:
    """Store new exchange keys for `account` encrypted, and audit the change without the keys.

    None keeps the stored value, "" clears it. `now` is aware; the audit names only the masked key.
    """
    fields = {"api_key_encrypted": api_key, "api_secret_encrypted": api_secret}
    changed = {name: value for name, value in fields.items() if value is not None}
    if not changed:
        return account
    with transaction.atomic():
        for name, value in changed.items():
            setattr(account, name, secret_encrypt(value))
        account.save(update_fields=list(changed))
        cleared = all(value == "" for value in changed.values())
        audit_append(kind=AuditRecord.Kind.LIMIT_CHANGE, actor=actor, subject=f"account:{account.pk}", now=now,
                     body={"field": "api_keys", "action": "cleared" if cleared else "set",
                           "key_changed": api_key is not None, "secret_changed": api_secret is not None,
                           "key_hint": mask(api_key) if api_key is not None else None})
    # Forget now (this thread sees the new keys) and again at commit (other threads see them then).
    secrets_forget()
    transaction.on_commit(secrets_forget)
    return account


@sensitive_variables()
def account_keys_get(account: Account) -> tuple[str, str]:
    """Return (api_key, api_secret) for the broker factory: the account's, else the environment's.

    The environment's pair (EXCHANGE_API_KEY / EXCHANGE_API_SECRET) is used only when the account
    stores neither; raise EncryptionKeyError when stored keys cannot be decrypted.
    """
    if account.api_key_encrypted or account.api_secret_encrypted:
        return secret_decrypt(account.api_key_encrypted), secret_decrypt(account.api_secret_encrypted)
    return settings.EXCHANGE_API_KEY, settings.EXCHANGE_API_SECRET


class _Known:
    lock = threading.Lock()
    loading = threading.local()  # set while this thread reads the accounts: their query logs must not recurse
    values: frozenset[str] = frozenset()
    expires_at_s = 0.0  # time.monotonic()


def secrets_forget() -> None:
    """Drop the cached list of stored secrets; the next `secrets_known` call reads the accounts again."""
    with _Known.lock:
        _Known.expires_at_s = 0.0


def secrets_known() -> frozenset[str]:
    """Return every live secret: decrypted account keys and the environment's, re-read every 30 s.

    Safe to call from a log filter: it never raises and never recurses. When the accounts cannot be
    read (an event loop thread, a broken transaction, a key change) it keeps the last list it read.
    """
    from_settings = {value for value in (settings.EXCHANGE_API_KEY, settings.EXCHANGE_API_SECRET) if value}
    now_s = time.monotonic()
    if now_s >= _Known.expires_at_s and not getattr(_Known.loading, "active", False):
        _Known.loading.active = True
        try:
            values = _stored_secrets()
            with _Known.lock:
                _Known.values, _Known.expires_at_s = values, now_s + KNOWN_TTL_S
        except Exception:  # noqa: BLE001  a log call must never fail for want of the list
            pass
        finally:
            _Known.loading.active = False
    return _Known.values | from_settings


def _stored_secrets() -> frozenset[str]:
    values = set()
    rows = Account.objects.exclude(api_key_encrypted="", api_secret_encrypted="")
    for key_token, secret_token in rows.values_list("api_key_encrypted", "api_secret_encrypted"):
        for token in (key_token, secret_token):
            try:
                values.add(secret_decrypt(token))
            except EncryptionKeyError:
                continue  # unreadable now, so no client can be built with it either
    values.discard("")
    return frozenset(values)
