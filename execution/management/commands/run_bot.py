"""Start everything one machine needs: web (daphne), django-q2 workers and the engine."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from dashboard.events import ROLE_ENV
from decisions.audit_services import startup_card
from decisions.selectors import trading_config_get
from execution.clock import FeedRunner
from tradingbot.heap import heap_freeze

CLOCK_ENV = "TRADINGBOT_CLOCK"  # "engine" when run_bot's offline feed owns the trading clock
WEB_PROCESSES_ENV = "WEB_PROCESSES"  # read by settings.WEB_PROCESSES in every child


def listening_socket(host: str, port: int) -> socket.socket:
    """Return a TCP socket listening on (host, port) that child processes can inherit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


class Command(BaseCommand):
    help = ("Start daphne, the django-q2 cluster and the engine. Market data: the exchange when reachable, "
            "else a replay of MARKET_DATA_DIR candles on a simulated clock, else the simulated market.")

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--source", choices=["auto", "exchange", "replay", "simulated"], default=settings.DATA_SOURCE)
        parser.add_argument("--symbol", default="BTCUSDT")
        parser.add_argument("--speed", type=float, default=settings.REPLAY_SPEED_BARS_PER_SECOND,
                            help="bars per second on the simulated clock (0 = as fast as possible)")
        parser.add_argument("--no-web", action="store_true", help="do not start daphne")
        parser.add_argument("--web-processes", type=int, default=settings.WEB_PROCESSES,
                            help="daphne processes accepting on the one port (default: WEB_PROCESSES)")
        parser.add_argument("--no-workers", action="store_true", help="do not start the django-q2 cluster")
        parser.add_argument("--no-execution", action="store_true",
                            help="do not start the execution loop (run_execution) of each venue account")
        parser.add_argument("--max-steps", type=int, default=None, help="stop the engine after N bars (tests)")

    def handle(self, *args, **opts):
        from execution.sources import choose_source

        config = trading_config_get()
        try:
            choice = choose_source(wanted=opts["source"], symbol=opts["symbol"], timeframe=config.decision_timeframe)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.WARNING(f"market data: {choice.label}"))
        self.stdout.write(f"mode {config.mode}, broker {settings.BROKER}, instrument {choice.instrument}")
        settings_row = {f.name: getattr(config, f.name) for f in config._meta.fields if f.name not in ("id", "updated_at")}
        # JSON text for every value (times, decimals, datetimes) exactly as the API would render it.
        limits = json.loads(json.dumps(settings_row, cls=DjangoJSONEncoder))
        card = startup_card(mode=config.mode, broker=settings.BROKER, now=timezone.now(),
                            limits={"data_source": choice.kind, "instrument": str(choice.instrument), **limits})
        self.stdout.write(f"audit: start-up card #{card.seq} (version {card.body.get('version', 'unknown')})")
        children = self._start_children(opts, engine_owns_clock=choice.feed is not None)
        previous_role = os.environ.get(ROLE_ENV)
        # This process is a worker too: with the in-memory layer its events go through the outbox.
        os.environ[ROLE_ENV] = "worker"
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            if choice.feed is None:
                self.stdout.write("engine: the django-q2 schedules drive the live clock")
            else:
                self._run_feed(choice, config, opts)
            if children and opts["max_steps"] is None:
                # Keep the dashboard up after a replay ends, until Ctrl-C or a child exits.
                while all(child.poll() is None for child in children):
                    time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            if previous_role is None:
                os.environ.pop(ROLE_ENV, None)
            else:
                os.environ[ROLE_ENV] = previous_role
            for child in children:
                child.terminate()
            for child in children:
                child.wait(timeout=15)

    def _start_children(self, opts, *, engine_owns_clock: bool) -> list[subprocess.Popen]:
        children = []
        base_env = {**os.environ, CLOCK_ENV: "engine" if engine_owns_clock else "schedules"}
        if not opts["no_web"]:
            children += self._start_web(opts, base_env)
        if not opts["no_workers"]:
            cmd = [sys.executable, "manage.py", "qcluster"]
            children.append(subprocess.Popen(cmd, env={**base_env, ROLE_ENV: "worker"}, cwd=settings.BASE_DIR))
            self.stdout.write("workers: django-q2 cluster started")
        if not opts.get("no_execution"):
            children += self._start_execution_loops(base_env)
        return children

    def _start_web(self, opts, base_env: dict) -> list[subprocess.Popen]:
        """Start daphne; with --web-processes N > 1, N of them accepting on one listening socket.

        The kernel hands each new connection to one of the processes, so HTTP requests (which
        hold Python's GIL while they run) spread over the cores.
        """
        processes = opts.get("web_processes", 1)
        if processes < 1:
            raise CommandError(f"--web-processes must be at least 1, got {processes}")
        env = {**base_env, ROLE_ENV: "web", WEB_PROCESSES_ENV: str(processes)}
        app = "tradingbot.asgi:application"
        if processes == 1:
            cmd = [sys.executable, "-m", "daphne", "-b", opts["host"], "-p", str(opts["port"]), app]
            started = [subprocess.Popen(cmd, env=env)]
        else:
            with listening_socket(opts["host"], opts["port"]) as sock:
                cmd = [sys.executable, "-m", "daphne", "--fd", str(sock.fileno()), app]
                started = [subprocess.Popen(cmd, env=env, pass_fds=(sock.fileno(),)) for _ in range(processes)]
        self.stdout.write(self.style.SUCCESS(f"web: http://{opts['host']}:{opts['port']}/ (admin at /admin/), "
                                             f"{processes} process{'es' if processes > 1 else ''}"))
        return started

    def _start_execution_loops(self, base_env: dict) -> list[subprocess.Popen]:
        """Start one execution loop per venue account with keys (paper trades inside the engine cycle)."""
        from execution.models import Account

        children = []
        for account in Account.objects.exclude(broker=Account.Broker.PAPER).exclude(api_key_encrypted="").order_by("pk"):
            cmd = [sys.executable, "manage.py", "run_execution", "--account", account.name]
            children.append(subprocess.Popen(cmd, env={**base_env, ROLE_ENV: "worker"}, cwd=settings.BASE_DIR))
            self.stdout.write(f"execution: loop of {account.name} ({account.broker}) started")
        return children

    def _run_feed(self, choice, config, opts) -> None:
        runner = FeedRunner(choice.feed, choice.instrument, config.decision_timeframe, settings.DECISION_INTERVAL_MINUTES)
        if not choice.instrument.candles.exists():
            stored = runner.warm_up(config.history_bars)
            self.stdout.write(f"engine: warmed up with {stored} bars")
        self.stdout.write(f"engine: {opts['speed']} bars/s on the simulated clock")
        heap_freeze()   # this process is the engine from here on: keep its start-up heap out of gc passes
        steps = runner.run(bars_per_second=opts["speed"], max_steps=opts["max_steps"])
        self.stdout.write(f"engine: stopped after {steps} bars")
