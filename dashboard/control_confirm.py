"""One-time confirmation tokens for the control page's dangerous actions (going ON, the kill switch).

The first POST stores what was asked (the action and its parameters) in the user's session under
a random token and shows a confirmation page; the second POST sends the token back and the stored
request is carried out. A token therefore works once, only in the session and for the user that
asked, only for the action it was issued for, and only for `CONFIRM_TTL`: the parameters come from
the session, never from the confirming form, so nothing can be swapped in between.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta

SESSION_KEY = "control_confirmations"
CONFIRM_TTL = timedelta(minutes=5)
MAX_PENDING = 20   # a session asking again and again keeps only its latest requests


class ConfirmRefused(Exception):
    """The confirmation token was not accepted; the message says why. Start the action again."""


def confirm_issue(request, *, action: str, params: dict, now: datetime) -> str:
    """Store `action` with its JSON-safe `params` in the session; return the one-time token that confirms it."""
    pending = _live(request.session.get(SESSION_KEY, {}), now)
    token = secrets.token_urlsafe(32)
    pending[token] = {"action": action, "params": params, "user": request.user.pk,
                      "expires": (now + CONFIRM_TTL).isoformat()}
    if len(pending) > MAX_PENDING:
        for old in sorted(pending, key=lambda t: pending[t]["expires"])[:len(pending) - MAX_PENDING]:
            del pending[old]
    request.session[SESSION_KEY] = pending
    return token


def confirm_take(request, *, token: str, action: str, now: datetime) -> dict:
    """Use up `token` and return the params stored with it; raise ConfirmRefused naming what is wrong.

    Refused: a token unknown to this session (wrong, used, or another session's), one issued to
    another user or for another action, and an expired one. A refused token is used up too.
    """
    stored = request.session.get(SESSION_KEY, {})
    entry = stored.pop(token, None) if token else None
    request.session[SESSION_KEY] = _live(stored, now)  # used or expired ones go either way
    if entry is None:
        raise ConfirmRefused("this confirmation is unknown or was already used; start the action again")
    if entry["user"] != request.user.pk:
        raise ConfirmRefused("this confirmation was issued to another user; start the action again")
    if entry["action"] != action:
        raise ConfirmRefused(f"this confirmation is for {entry['action']}, not {action}; start the action again")
    if datetime.fromisoformat(entry["expires"]) <= now:
        raise ConfirmRefused(f"this confirmation expired after {CONFIRM_TTL.seconds // 60} minutes; "
                             "start the action again")
    return entry["params"]


def _live(pending: dict, now: datetime) -> dict:
    return {token: entry for token, entry in pending.items() if datetime.fromisoformat(entry["expires"]) > now}
