"""Prometheus metrics of the trading platform, read from the database at scrape time.

The engine and the django-q2 workers are other processes than the one serving /metrics, so the
trading metrics are not counted in memory: a collector reads the shared database on every scrape.
What each family means (docs/OPERATIONS.md, "Health, readiness and metrics"):

- tradingbot_decision_latency_seconds (histogram): from a bar's close (Decision.as_of) to its
  decision being stored (Decision.created_at), for instruments on exchange data, where both are
  wall-clock times. It spans the candle fetch, the schedule's wait and the cycle's own work.
  Replayed and simulated decisions run on a simulated clock and are left out.
- tradingbot_orders (gauge): orders per account and state, every state listed.
- tradingbot_order_rejections_total (counter): rejected orders per account and venue error code
  (the Binance code that starts reject_reason, "none" when there is none, e.g. a paper refusal).
- tradingbot_reconciliation_errors_total (counter): reconciliation runs that could not read the venue.
- tradingbot_equity_usdt / tradingbot_balance_usdt (gauges): the account's last equity point
  (balance when it has none yet) and its realised balance.
- tradingbot_open_risk_usdt (gauge): what the open positions lose if every stop fills at its price:
  sum of quantity * contract size * |entry - stop|; tradingbot_positions_open counts them.
- tradingbot_health_check_ok (gauge, 1/0) per check of the last stored self-test, its time, and
  the age of the django-q2 heartbeat.
"""
from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from decimal import Decimal

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from dashboard.health import CLUSTER_HEARTBEAT
from dashboard.models import HealthCheckRun, WorkerHeartbeat
from decisions.models import Decision
from execution.models import Account, EquityPoint, Order, Position, ReconciliationRun
from market.models import DataSource

# Seconds from a bar's close to its decision: a fetch every minute puts most decisions under 90 s.
LATENCY_BUCKETS_S = (1, 5, 15, 30, 60, 90, 120, 300, 600, 1800)
VENUE_CODE = re.compile(r"^\s*(-?\d{1,5})\b")


def _float(value: Decimal | None) -> float:
    return float(value) if value is not None else 0.0


def decision_latency() -> HistogramMetricFamily:
    """Return the bar-close-to-decision histogram over every decision on exchange data."""
    latency = ExpressionWrapper(F("created_at") - F("as_of"), output_field=DurationField())
    rows = Decision.objects.filter(instrument__data_source=DataSource.EXCHANGE).annotate(latency=latency)
    counts = {f"le_{i}": Count("pk", filter=Q(latency__lte=dt.timedelta(seconds=bound)))
              for i, bound in enumerate(LATENCY_BUCKETS_S)}
    totals = rows.aggregate(total=Count("pk"), sum=Sum("latency"), **counts)
    buckets = [(str(float(bound)), totals[f"le_{i}"]) for i, bound in enumerate(LATENCY_BUCKETS_S)]
    buckets.append(("+Inf", totals["total"]))
    seconds = totals["sum"].total_seconds() if totals["sum"] is not None else 0.0
    return HistogramMetricFamily("tradingbot_decision_latency_seconds",
                                 "Seconds from a bar's close to its stored decision (exchange data only)",
                                 buckets=buckets, sum_value=seconds)


def orders_by_state(accounts: list[str]) -> GaugeMetricFamily:
    """Return the number of orders of each account in each state (zeros included)."""
    family = GaugeMetricFamily("tradingbot_orders", "Orders per account and state", labels=["account", "state"])
    counts = {(row["account__name"], row["status"]): row["n"]
              for row in Order.objects.values("account__name", "status").annotate(n=Count("pk"))}
    for account in accounts:
        for state in Order.Status.values:
            family.add_metric([account, state], counts.get((account, state), 0))
    return family


def exchange_errors() -> list[CounterMetricFamily]:
    """Return rejected orders by venue error code and reconciliation runs that failed to read the venue."""
    rejections = CounterMetricFamily("tradingbot_order_rejections", "Rejected orders per account and venue error code",
                                     labels=["account", "code"])
    by_code: dict[tuple[str, str], int] = defaultdict(int)
    rejected = Order.objects.filter(status=Order.Status.REJECTED).values("account__name", "reject_reason")
    for row in rejected.annotate(n=Count("pk")):
        match = VENUE_CODE.match(row["reject_reason"] or "")
        by_code[(row["account__name"], match.group(1) if match else "none")] += row["n"]
    for (account, code), n in sorted(by_code.items()):
        rejections.add_metric([account, code], n)
    failures = CounterMetricFamily("tradingbot_reconciliation_errors",
                                   "Reconciliation runs that could not read the venue", labels=["account"])
    failed = ReconciliationRun.objects.exclude(error="").values("account__name").annotate(n=Count("pk"))
    for row in failed.order_by("account__name"):
        failures.add_metric([row["account__name"]], row["n"])
    return [rejections, failures]


def account_gauges(accounts: list[Account]) -> list[GaugeMetricFamily]:
    """Return equity, balance, open risk and open positions per account."""
    equity = GaugeMetricFamily("tradingbot_equity_usdt", "Last recorded equity (balance + unrealised PnL), USDT",
                               labels=["account", "broker"])
    balance = GaugeMetricFamily("tradingbot_balance_usdt", "Realised wallet balance, USDT",
                                labels=["account", "broker"])
    risk = GaugeMetricFamily("tradingbot_open_risk_usdt", "Loss if every open position's stop fills at its price, USDT",
                             labels=["account"])
    positions = GaugeMetricFamily("tradingbot_positions_open", "Open positions", labels=["account"])
    for account in accounts:
        points = EquityPoint.objects.filter(account=account).order_by("-ts")
        point = points.values_list("equity_usdt", flat=True).first()
        equity.add_metric([account.name, account.broker], _float(point if point is not None else account.balance_usdt))
        balance.add_metric([account.name, account.broker], _float(account.balance_usdt))
        open_positions = list(Position.objects.filter(account=account, status=Position.Status.OPEN)
                              .values_list("quantity", "entry_price", "stop_price", "instrument__contract_size"))
        at_risk = sum((qty * (size or 1) * abs(entry - stop) for qty, entry, stop, size in open_positions), Decimal(0))
        risk.add_metric([account.name], _float(at_risk))
        positions.add_metric([account.name], len(open_positions))
    return [equity, balance, risk, positions]


def health_gauges(now: dt.datetime) -> list[GaugeMetricFamily]:
    """Return the last stored self-test per check, its time, and the django-q2 heartbeat's age."""
    checks = GaugeMetricFamily("tradingbot_health_check_ok", "1 when the check passed in the last stored self-test",
                               labels=["check", "group"])
    checked = GaugeMetricFamily("tradingbot_health_checked_timestamp_seconds",
                                "When the last stored self-test ran (Unix time)")
    run = HealthCheckRun.objects.order_by("-checked_at", "-pk").first()
    if run is not None:
        for check in run.checks:
            checks.add_metric([str(check.get("name")), str(check.get("group"))], 1 if check.get("ok") else 0)
        checked.add_metric([], run.checked_at.timestamp())
    heartbeat = GaugeMetricFamily("tradingbot_worker_heartbeat_age_seconds",
                                  "Seconds since a django-q2 worker last ran the heartbeat task")
    beat = WorkerHeartbeat.objects.filter(name=CLUSTER_HEARTBEAT).values_list("beat_at", flat=True).first()
    if beat is not None:
        heartbeat.add_metric([], max(0.0, (now - beat).total_seconds()))
    return [checks, checked, heartbeat]


class TradingCollector(Collector):
    """Collect the trading metrics from the database on every scrape."""

    def collect(self):
        now = timezone.now()
        accounts = list(Account.objects.order_by("name"))
        yield decision_latency()
        yield orders_by_state([a.name for a in accounts])
        yield from exchange_errors()
        yield from account_gauges(accounts)
        yield from health_gauges(now)


_registry = CollectorRegistry(auto_describe=False)
_registry.register(TradingCollector())


def trading_metrics_text() -> bytes:
    """Return the trading metrics in Prometheus text format, read from the database now."""
    return generate_latest(_registry)
