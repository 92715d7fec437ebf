"""Logging filters: exchange keys, secrets and request signatures never reach a log line."""
from __future__ import annotations

import logging
import re

from django.apps import apps

REDACTED = "[redacted]"
# Shorter "secrets" (test placeholders, empty-ish values) would redact ordinary words.
MIN_SECRET_CHARS = 8
# key=value, key: value, 'key': 'value' and "key": "value" forms of credential fields, including
# ccxt's request log ("Request: {'X-MBX-APIKEY': '...'}") and query strings (apiKey=...&secret=...).
CREDENTIAL_PATTERN = re.compile(
    r"""(?ix)
    (\b(?:x-mbx-apikey|api[_-]?key|api[_-]?secret|secret(?:[_-]?key)?|passphrase|password)
     ['"]?\s*[:=]\s*['"]?)
    (?!\[redacted\])[^\s'",&;}\])]+
    """
)
# Binance signs a request with HMAC-SHA256 of its query: 64 hex digits anyone could replay until recvWindow ends.
SIGNATURE_PATTERN = re.compile(r"(?i)(\bsignature['\"]?\s*[:=]\s*['\"]?)[0-9a-f]{64}\b")


def _known_secrets() -> list[str]:
    # Logging is configured before the apps load; the accounts are readable only afterwards.
    if not apps.ready:
        return []
    from execution.secrets import secrets_known

    return sorted((s for s in secrets_known() if len(s) >= MIN_SECRET_CHARS), key=len, reverse=True)


def redact(text: str) -> str:
    """Return `text` with every known secret and every credential-looking value replaced by [redacted]."""
    for secret in _known_secrets():
        text = text.replace(secret, REDACTED)
    text = CREDENTIAL_PATTERN.sub(rf"\1{REDACTED}", text)
    return SIGNATURE_PATTERN.sub(rf"\1{REDACTED}", text)


class RedactSecretsFilter(logging.Filter):
    """Rewrite a record's message, traceback and stack so that no secret survives; never drop a record."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message, broken = record.getMessage(), False
        except Exception:  # noqa: BLE001  a bad %-format: logging's error report would print msg and args raw
            message, broken = f"{record.msg} {record.args!r}", True
        clean = redact(message)
        if broken or clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            clean = redact(record.exc_text)
            if clean != record.exc_text:
                # Handlers that render exc_info themselves (frames, locals) would show the secret again.
                record.exc_info = None
            record.exc_text = clean
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
