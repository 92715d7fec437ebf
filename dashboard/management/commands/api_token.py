"""Print a user's API token, creating it (and, with --create, the user) when missing; --rotate replaces it."""
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework.authtoken.models import Token

from dashboard import roles


class Command(BaseCommand):
    help = ("Print the API token of --user (created on first use). Tokens are also managed in the admin "
            "(Auth Token); the user's role (viewer, operator, admin) decides what the token may do.")

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="username")
        parser.add_argument("--create", action="store_true",
                            help="create the user (no password: it signs in with the token only) if missing")
        parser.add_argument("--role", choices=roles.ROLES, help="with --create: the role to grant (default viewer)")
        parser.add_argument("--rotate", action="store_true", help="replace the token; the old one stops working")

    def handle(self, *args, user, create, role, rotate, **options):
        if role and not create:
            raise CommandError("--role is only used with --create; grant roles to existing users in the admin")
        with transaction.atomic():
            account = self._user(user, create, role)
            if rotate:
                Token.objects.filter(user=account).delete()
            token, created = Token.objects.get_or_create(user=account)
        if created:
            self.stderr.write(f"new token for {account.get_username()} (role {roles.role_of(account)})")
        # Only the key on stdout, so a script can capture it: TOKEN=$(manage.py api_token --user bot).
        self.stdout.write(token.key)

    def _user(self, username: str, create: bool, role: str | None):
        model = get_user_model()
        found = model.objects.filter(**{model.USERNAME_FIELD: username}).first()
        if found is not None:
            return found
        if not create:
            raise CommandError(f"no user {username!r}; pass --create to make one, or create it in the admin")
        user = model.objects.create_user(username)  # no usable password
        if role and role != roles.VIEWER:
            user.groups.add(Group.objects.get_or_create(name=role)[0])
        return user
