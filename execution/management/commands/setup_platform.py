"""First-run configuration: admin user, trading configuration, paper account, instruments, schedules."""
import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from decisions.models import Mode, TradingConfig
from execution.management.commands.setup_schedules import schedules_ensure
from execution.services import account_ensure
from market.services import instrument_ensure


class Command(BaseCommand):
    help = "Create the admin user, the trading configuration, the paper account, instruments and schedules (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--admin-username", default="admin")
        parser.add_argument("--symbols", nargs="+", default=["BTCUSDT", "ETHUSDT"],
                            help="Binance USD-M perpetuals to create (the first is activated)")

    @transaction.atomic
    def handle(self, *args, admin_username, symbols, **options):
        self._admin(admin_username)
        config, created = TradingConfig.objects.get_or_create(pk=1)
        if created:
            # The paper broker risks nothing, so a new install trades on paper out of the box.
            config.mode = Mode.ON
            config.save()
        self.stdout.write(f"trading configuration: mode {config.mode}, decision timeframe {config.decision_timeframe}")
        account = account_ensure()
        self.stdout.write(f"account: {account} balance {account.balance_usdt} USDT")
        for i, symbol in enumerate(symbols):
            instrument = instrument_ensure(exchange="binanceusdm", exchange_symbol=symbol, market_type="swap")
            if i == 0 and created:
                instrument.is_active = True
                instrument.save(update_fields=["is_active"])
            self.stdout.write(f"instrument: {instrument} active={instrument.is_active}")
        for name in schedules_ensure():
            self.stdout.write(f"schedule: {name}")

    def _admin(self, username: str) -> None:
        user_model = get_user_model()
        password = os.environ.get("ADMIN_PASSWORD")
        user = user_model.objects.filter(username=username).first()
        if user is None:
            generated = password is None
            password = password or secrets.token_urlsafe(12)
            user_model.objects.create_superuser(username=username, email="", password=password)
            shown = password if generated else "(from ADMIN_PASSWORD)"
            self.stdout.write(self.style.SUCCESS(f"admin user created: {username} / password {shown}"))
        elif password:
            user.set_password(password)
            user.save(update_fields=["password"])
            self.stdout.write(f"admin user {username}: password set from ADMIN_PASSWORD")
        else:
            self.stdout.write(f"admin user {username} exists (set ADMIN_PASSWORD to reset its password)")
