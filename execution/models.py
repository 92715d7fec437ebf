"""Accounts, orders, fills, positions and the equity curve."""
from django.db import models

from decisions.models import Decision
from market.models import Instrument

MONEY = dict(max_digits=28, decimal_places=10)


class Account(models.Model):
    """A trading account at one broker; `balance_usdt` is realised wallet balance."""

    class Broker(models.TextChoices):
        PAPER = "paper"
        TESTNET = "testnet"
        LIVE = "live"

    name = models.CharField(max_length=32, unique=True)
    broker = models.CharField(max_length=8, choices=Broker.choices, default=Broker.PAPER)
    starting_balance_usdt = models.DecimalField(**MONEY)
    balance_usdt = models.DecimalField(**MONEY)
    exchange_id = models.CharField(max_length=32, default="binanceusdm", help_text="ccxt id of the venue")
    # Encrypted at rest (execution/secrets.py); never shown in full, logged or returned by the API.
    api_key_encrypted = models.TextField(blank=True, editable=False)
    api_secret_encrypted = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.name} ({self.broker})"


class Side(models.TextChoices):
    BUY = "buy"
    SELL = "sell"


class Order(models.Model):
    """An order as the OMS knows it; client_order_id is deterministic and never reused."""

    class Status(models.TextChoices):
        # The same values as execution.oms.OrderState, whose transition table the services enforce.
        NEW = "new"
        SUBMITTED = "submitted"
        ACCEPTED = "accepted"
        TRIGGERED = "triggered"
        PARTIALLY_FILLED = "partially_filled"
        FILLED = "filled"
        PENDING_CANCEL = "pending_cancel"
        CANCELED = "canceled"
        REJECTED = "rejected"
        EXPIRED = "expired"
        UNKNOWN = "unknown", "unknown outcome"
        LOST = "lost"

    class Type(models.TextChoices):
        MARKET = "market"
        LIMIT = "limit"
        LIMIT_MAKER = "limit_maker", "limit (post-only)"
        STOP_MARKET = "stop_market"
        TAKE_PROFIT = "take_profit"
        TAKE_PROFIT_MARKET = "take_profit_market"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="orders")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="orders")
    decision = models.ForeignKey(Decision, null=True, blank=True, on_delete=models.SET_NULL, related_name="orders")
    # The position an entry order's trade was booked into (execution.entries): the engine's per-cycle read of
    # entries to book skips the orders of closed positions by it. NULL is always safe (the read then matches the
    # decision's position), so a deleted position unmarks its orders rather than being blocked by them.
    position = models.ForeignKey("Position", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="entry_orders", db_index=False,
                                 help_text="entry orders: the position their fills were booked into")
    client_order_id = models.CharField(max_length=36, unique=True)
    intent_id = models.CharField(max_length=32)
    leg = models.CharField(max_length=8, help_text="entry, sl, tp1, exit ...")
    side = models.CharField(max_length=4, choices=Side.choices)
    type = models.CharField(max_length=20, choices=Type.choices)
    quantity = models.DecimalField(**MONEY)
    price = models.DecimalField(**MONEY, null=True, blank=True)
    trigger_price = models.DecimalField(**MONEY, null=True, blank=True)
    reduce_only = models.BooleanField(default=False)
    conditional = models.BooleanField(default=False, help_text="lives in the venue's Algo Order API (stops, TPs)")
    external = models.BooleanField(default=False, help_text="not placed by the bot: adopted by reconciliation")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    acknowledged = models.BooleanField(default=False, help_text="the venue confirmed it at least once")
    misses = models.PositiveSmallIntegerField(default=0, help_text="not-found answers in a row; 3 make it lost")
    last_checked_at = models.DateTimeField(null=True, blank=True)
    resent_at = models.DateTimeField(null=True, blank=True, help_text="the one resend with the same client id")
    filled_quantity = models.DecimalField(**MONEY, default=0)
    average_price = models.DecimalField(**MONEY, null=True, blank=True)
    exchange_order_id = models.CharField(max_length=64, blank=True)
    reject_reason = models.CharField(max_length=255, blank=True)
    config_version = models.PositiveIntegerField(default=1, help_text="trading configuration version in force")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["intent_id", "leg"], name="uniq_order_intent_leg")]
        indexes = [models.Index(fields=["account", "status"]), models.Index(fields=["instrument", "created_at"]),
                   models.Index(fields=["created_at", "id"], name="order_created_id"),  # the logs page's order list
                   # entries_to_sync: the unbooked entries (position NULL) and open positions', never the history; it
                   # leads with position so it also serves the FK (a position's orders, SET_NULL on delete)
                   models.Index(fields=["position", "account", "leg", "filled_quantity"],
                                name="order_position_account_leg")]
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.client_order_id} {self.side} {self.quantity} {self.status}"


class Fill(models.Model):
    """One execution of an order; fees in USDT."""

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="fills")
    trade_id = models.CharField(max_length=64)
    ts = models.DateTimeField()
    price = models.DecimalField(**MONEY)
    quantity = models.DecimalField(**MONEY)
    fee_usdt = models.DecimalField(**MONEY)
    liquidity = models.CharField(max_length=5, default="taker")

    class Meta:
        # The venue's trade ids are unique per symbol, not globally: a fill is (order, trade id).
        constraints = [models.UniqueConstraint(fields=["order", "trade_id"], name="uniq_fill_order_trade")]
        # The risk state's last fill: read from the top of the index, not a join of every order to its fills.
        indexes = [models.Index(fields=["ts", "order"], name="fill_ts_order")]
        ordering = ["-ts"]

    def __str__(self):
        return f"{self.trade_id} {self.quantity}@{self.price}"


class Position(models.Model):
    """A position from entry to exit; at most one open per account and instrument."""

    class Status(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="positions")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="positions")
    decision = models.ForeignKey(Decision, null=True, blank=True, on_delete=models.SET_NULL)
    side = models.CharField(max_length=5, help_text="LONG or SHORT")
    status = models.CharField(max_length=6, choices=Status.choices, default=Status.OPEN)
    # Equals instrument_id while open and NULL once closed: a unique key that works on
    # MariaDB, which has no partial unique indexes.
    open_key = models.BigIntegerField(null=True, blank=True, editable=False)
    quantity = models.DecimalField(**MONEY)
    entry_price = models.DecimalField(**MONEY)
    stop_price = models.DecimalField(**MONEY)
    target_price = models.DecimalField(**MONEY)
    initial_quantity = models.DecimalField(**MONEY, null=True, blank=True, help_text="quantity at entry")
    take_profits = models.JSONField(default=list, blank=True,
                                    help_text='[{"price", "share", "filled"}]: the ladder and what has filled')
    trail_distance = models.DecimalField(**MONEY, null=True, blank=True,
                                         help_text="after TP1 the stop trails this far behind the best price")
    best_price = models.DecimalField(**MONEY, null=True, blank=True, editable=False,
                                     help_text="most favourable price since TP1 filled")
    opened_at = models.DateTimeField()
    exits_checked_until = models.DateTimeField(null=True, blank=True, editable=False,
                                               help_text="open time of the last bar the exits were checked on")
    closed_at = models.DateTimeField(null=True, blank=True)
    exit_price = models.DecimalField(**MONEY, null=True, blank=True)
    exit_reason = models.CharField(max_length=16, blank=True)
    fees_usdt = models.DecimalField(**MONEY, default=0)
    realized_pnl_usdt = models.DecimalField(**MONEY, default=0, help_text="after fees and funding")
    funding_usdt = models.DecimalField(**MONEY, default=0, help_text="funding paid (-) or received (+)")
    liquidation_price = models.DecimalField(**MONEY, null=True, blank=True,
                                            help_text="where the venue (or the paper model) liquidates it")
    margin_usdt = models.DecimalField(**MONEY, null=True, blank=True, editable=False,
                                      help_text="isolated margin behind the paper model's liquidation price; "
                                                "a liquidation loses all of it")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "open_key"], name="uniq_open_position")]
        indexes = [models.Index(fields=["account", "status"]),
                   # the risk state's trades closed since the day's start
                   models.Index(fields=["account", "status", "closed_at"], name="position_account_status_closed")]
        ordering = ["-opened_at"]

    def __str__(self):
        return f"{self.side} {self.quantity} {self.instrument} ({self.status})"


class FundingPayment(models.Model):
    """One funding settlement of a position: paid (amount < 0) or received (amount > 0), in USDT."""

    class Source(models.TextChoices):
        PAPER = "paper", "paper model (stored funding rates)"
        VENUE = "venue", "venue income history"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="funding_payments")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="funding_payments")
    position = models.ForeignKey("Position", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="funding_payments")
    ts = models.DateTimeField(help_text="funding time (00:00, 08:00, 16:00 UTC on Binance)")
    rate = models.DecimalField(max_digits=16, decimal_places=10, null=True, blank=True)
    amount_usdt = models.DecimalField(**MONEY)
    source = models.CharField(max_length=5, choices=Source.choices)
    venue_id = models.CharField(max_length=64, blank=True, help_text="the venue's income id (tranId)")

    class Meta:
        # One settlement per account, instrument and funding time: a repeated job books nothing twice.
        constraints = [models.UniqueConstraint(fields=["account", "instrument", "ts"], name="uniq_funding_settlement")]
        ordering = ["-ts"]

    def __str__(self):
        return f"{self.instrument} {self.ts:%Y-%m-%d %H:%M} {self.amount_usdt}"


class EquityPoint(models.Model):
    """Account equity (balance + unrealised PnL) at `ts`."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="equity_points")
    ts = models.DateTimeField()
    balance_usdt = models.DecimalField(**MONEY)
    unrealized_pnl_usdt = models.DecimalField(**MONEY)
    equity_usdt = models.DecimalField(**MONEY)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "ts"], name="uniq_equity_point")]
        # The risk facts (decisions.risk_state): the peak from the top of the first, the day's and
        # the week's lows and start equities from the second alone.
        indexes = [models.Index(fields=["account", "equity_usdt", "ts"], name="equity_account_value_ts"),
                   models.Index(fields=["account", "ts", "equity_usdt"], name="equity_account_ts_value")]
        ordering = ["ts"]

    def __str__(self):
        return f"{self.account_id} {self.ts:%Y-%m-%d %H:%M} {self.equity_usdt}"


class ExecutionLock(models.Model):
    """A lease per (account, instrument) held around every order action on that symbol.

    A lease rather than SELECT ... FOR UPDATE: the holder makes network calls while holding it,
    and a row lock would keep a transaction (on SQLite, the whole database) open meanwhile. A
    holder that dies loses the lease when it expires.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE)
    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE)
    holder = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "instrument"], name="uniq_execution_lock")]

    def __str__(self):
        return f"lock {self.account_id}/{self.instrument_id}"


class ReconciliationRun(models.Model):
    """One comparison of the venue with the database: what differed and what was done."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="reconciliations")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    trigger = models.CharField(max_length=16, help_text="startup, periodic or manual")
    clean = models.BooleanField(default=False)
    differences = models.JSONField(default=list)
    actions = models.JSONField(default=list)
    error = models.TextField(blank=True)
    acknowledged_by = models.CharField(max_length=150, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["account", "started_at"])]

    def __str__(self):
        return f"reconciliation {self.account_id} @ {self.started_at:%Y-%m-%d %H:%M:%S} ({'clean' if self.clean else 'diff'})"


class EngineLease(models.Model):
    """One running execution engine per account: a second one refuses to start while the lease is live."""

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="engine_lease")
    holder = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="the engine renews this every tick")
    expires_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"engine lease {self.account_id}: {self.holder or 'free'}"


class BacktestRun(models.Model):
    """One backtest: what ran (parameters, data range, code version) and what came out (trades, equity, metrics)."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    class Kind(models.TextChoices):
        RUN = "run", "single run"
        WALK_FORWARD = "walkforward", "walk-forward"
        SWEEP = "sweep", "parameter sweep"
        FOLD = "fold", "walk-forward fold"
        POINT = "point", "sweep point"

    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.RUN)
    parent = models.ForeignKey("self", on_delete=models.CASCADE, null=True, blank=True, related_name="children",
                               help_text="the walk-forward or sweep this fold or point belongs to")
    label = models.CharField(max_length=64, blank=True, help_text='e.g. "fold 3 test" or "risk 0.5%"')
    requested_by = models.CharField(max_length=150, blank=True, help_text="user who started it, or the command line")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="backtests",
                                   help_text="the first (or only) symbol")
    symbols = models.JSONField(default=list, blank=True,
                               help_text="every symbol traded on the one account, when more than one")
    timeframe = models.CharField(max_length=4)
    start = models.DateTimeField(help_text="first bar close decided on (UTC)")
    end = models.DateTimeField(help_text="last bar close decided on (UTC)")
    starting_equity_usdt = models.DecimalField(**MONEY)
    final_equity_usdt = models.DecimalField(**MONEY, null=True, blank=True)
    parameters = models.JSONField(default=dict, help_text="the trading configuration the run used")
    code_version = models.CharField(max_length=64, help_text="git commit of the code that ran")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RUNNING)
    error = models.TextField(blank=True)
    bars_total = models.PositiveIntegerField(default=0)
    bars_done = models.PositiveIntegerField(default=0)
    trades = models.JSONField(default=list, help_text="closed trades: entry, exit, reason, fees, funding, R")
    equity = models.JSONField(default=list, help_text="[epoch ms, equity USDT] at every bar close")
    metrics = models.JSONField(default=dict)
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"backtest {self.pk} {self.instrument} {self.timeframe} {self.start:%Y-%m-%d}..{self.end:%Y-%m-%d}"


class DriftReport(models.Model):
    """Live (or paper) versus backtest over the same stored inputs, decision by decision."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="drift_reports")
    start = models.DateTimeField()
    end = models.DateTimeField()
    created_at = models.DateTimeField()
    code_version = models.CharField(max_length=64)
    summary = models.JSONField(default=dict, help_text="PnL gap split into signal, fill price, fees, funding, latency")
    rows = models.JSONField(default=list, help_text="one row per decision moment: live vs backtest")
    slippage_bps = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True,
                                       help_text="average entry/exit slippage of live fills against the backtest")
    slippage_limit_bps = models.DecimalField(max_digits=12, decimal_places=4)
    alert = models.BooleanField(default=False, help_text="slippage passed the limit")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"drift {self.account.name} {self.start:%Y-%m-%d}..{self.end:%Y-%m-%d}"
