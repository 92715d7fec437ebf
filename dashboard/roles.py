"""Who may do what: three roles, held as Django groups of the same names.

- viewer: reads every page, the websocket and the read API.
- operator: a viewer who also acts on the running bot: approves, rejects and snoozes decisions,
  pauses and resumes, uploads manual inputs, acknowledges reconciliation runs, starts backtests.
- admin: an operator who also changes what the bot may risk: mode ON, the live broker, limits,
  the kill switch. Superusers are admins.

A logged-in user in no group is a viewer. Roles are granted in the Django admin (Users -> Groups).
"""
from __future__ import annotations

from functools import wraps

from django.core.exceptions import PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission

VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"
ROLES = (VIEWER, OPERATOR, ADMIN)
_RANK = {VIEWER: 0, OPERATOR: 1, ADMIN: 2}
# What a refusal says the missing role is, as in "only operators may ...".
_PLURAL = {VIEWER: "signed-in users", OPERATOR: "operators", ADMIN: "admins"}


def role_of(user) -> str | None:
    """Return the user's highest role, or None for an anonymous or inactive user."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return ADMIN
    cached = getattr(user, "_tradingbot_role", None)
    if cached is None:
        names = set(user.groups.values_list("name", flat=True))
        cached = ADMIN if ADMIN in names else OPERATOR if OPERATOR in names else VIEWER
        user._tradingbot_role = cached  # one query per request, not one per check
    return cached


def has_role(user, role: str) -> bool:
    """Return True when the user holds `role` or a higher one."""
    held = role_of(user)
    return held is not None and _RANK[held] >= _RANK[role]


def refusal(role: str, what: str) -> str:
    """Return the message a refused user reads: "only operators may approve decisions"."""
    return f"only {_PLURAL[role]} may {what}"


def role_required(role: str, what: str):
    """Return a view decorator letting only users with `role` through (login_required wraps it)."""
    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not has_role(request.user, role):
                raise PermissionDenied(refusal(role, what))
            return view(request, *args, **kwargs)
        return wrapped
    return decorator


class ReadViewerWriteOperator(BasePermission):
    """API: viewers read (GET, HEAD, OPTIONS); writes need an operator."""

    message = "this needs the operator role"

    def has_permission(self, request, view):
        return has_role(request.user, VIEWER if request.method in SAFE_METHODS else OPERATOR)


class AdminRole(BasePermission):
    """API: only admins, for actions that change what the bot may risk."""

    message = "this needs the admin role"

    def has_permission(self, request, view):
        return has_role(request.user, ADMIN)
