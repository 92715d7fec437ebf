"""Token authentication that reads the token, its user and the user's role in one plain SQL query.

Why: every API request authenticates. DRF's TokenAuthentication builds an ORM query for the token
and its user, then the permission check builds another for the user's groups
(dashboard.roles.role_of): 1.3-2 ms of CPU a request on this machine, a sixth of a cached
endpoint's whole cost under load (bench/README.md, API under load). An ORM query with the groups
as EXISTS subqueries cost more, not less: compiling it is the expense. This query's SQL is written
once, here; it reads the user's columns, the token's creation time and whether the user is in the
operator and admin groups: 0.3 ms.

The answers are DRF's: "Invalid token." for an unknown key, "User inactive or deleted." for an
inactive user (401 both). Nothing is cached across requests: a revoked token or a changed group
counts from the next request.
"""
from datetime import UTC, datetime
from functools import cache

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection, models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from dashboard.roles import ADMIN, OPERATOR, role_remember

# The groups a role needs a test for; a user in neither is a viewer.
_ROLE_GROUPS = (ADMIN, OPERATOR)


@cache
def _sql() -> str:
    """SELECT user.*, token.created, one 0/1 column per role group, for the token key %s."""
    from rest_framework.authtoken.models import Token   # not at import: DRF loads this class before apps are ready

    q = connection.ops.quote_name
    user_model = get_user_model()
    users, tokens = q(user_model._meta.db_table), q(Token._meta.db_table)
    memberships = q(user_model.groups.through._meta.db_table)
    groups = q(Group._meta.db_table)
    in_group = (f"EXISTS(SELECT 1 FROM {memberships} m JOIN {groups} g ON g.{q('id')} = m.{q('group_id')} "
                f"WHERE m.{q('user_id')} = u.{q('id')} AND g.{q('name')} = %s)")
    roles = ", ".join(f"{in_group} AS {q('in_' + name)}" for name in _ROLE_GROUPS)
    return (f"SELECT u.*, t.{q('created')} AS {q('token_created')}, {roles} "
            f"FROM {tokens} t JOIN {users} u ON u.{q('id')} = t.{q('user_id')} WHERE t.{q('key')} = %s")


def _stored_time(value) -> datetime:
    """A DATETIME column read outside the ORM's converters (text on SQLite, naive on MariaDB), as aware UTC."""
    moment = models.DateTimeField().to_python(value)
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


class TokenRoleAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, as DRF's, with its refusals; the user arrives with its role."""

    def authenticate_credentials(self, key):
        found = list(get_user_model().objects.raw(_sql(), [*_ROLE_GROUPS, key]))
        if not found:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user = found[0]
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        role_remember(user, {name for name in _ROLE_GROUPS if getattr(user, f"in_{name}")})
        return user, self.get_model()(key=key, user=user, created=_stored_time(user.token_created))
