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
        cached = role_remember(user, set(user.groups.values_list("name", flat=True)))
    return cached


def role_remember(user, group_names: set[str]) -> str:
    """Return the role the user's groups give (superusers aside), kept on the user for this request.

    One query per request, not one per check; the API's token authentication reads the groups in
    its own query (dashboard.api.authentication) and hands their names here.
    """
    role = ADMIN if ADMIN in group_names else OPERATOR if OPERATOR in group_names else VIEWER
    user._tradingbot_role = role
    return role


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
