"""Trading configuration edited in the admin, and the journal of every decision."""
from datetime import time as dt_time
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from analytics.models import Snapshot
from market.models import Instrument, Timeframe


class Mode(models.TextChoices):
    SAFE = "SAFE", "SAFE: analyse and log only"
    HYBRID = "HYBRID", "HYBRID: orders wait for approval"
    ON = "ON", "ON: execute"


class Action(models.TextChoices):
    LONG = "LONG"
    SHORT = "SHORT"
    FLAT = "FLAT"


UNIT = MinValueValidator(Decimal("0"))


class StopMode(models.TextChoices):
    ATR = "atr", "ATR multiple from the entry"
    STRUCTURE = "structure", "beyond the last swing (ATR fallback)"


class Aggregation(models.TextChoices):
    FIRST = "first", "first strategy with a signal"
    VOTE = "vote", "majority vote"
    WEIGHTED = "weighted", "weighted score"


def ladder_parse(r_multiples: str, shares: str) -> tuple[tuple[Decimal, ...], tuple[Decimal, ...]]:
    """Return the ladder's R multiples and shares; raise ValueError naming what is wrong."""
    try:
        rs = tuple(Decimal(x.strip()) for x in r_multiples.split(","))
        ss = tuple(Decimal(x.strip()) for x in shares.split(","))
    except ArithmeticError:
        raise ValueError("take-profit multiples and shares must be comma-separated numbers") from None
    if len(rs) != len(ss) or not rs:
        raise ValueError(f"{len(rs)} take-profit multiples but {len(ss)} shares")
    if any(r <= 0 for r in rs) or list(rs) != sorted(set(rs)):
        raise ValueError("take-profit multiples must be positive and increasing")
    if any(x <= 0 for x in ss) or sum(ss) != 1:
        raise ValueError(f"take-profit shares must be positive and sum to 1, they sum to {sum(ss)}")
    return rs, ss
EDGE_WEIGHT_FIELDS = ("edge_weight_fvg", "edge_weight_risk_reward", "edge_weight_news", "edge_weight_whale",
                      "edge_weight_onchain", "edge_weight_obi", "edge_weight_flow")
MTF_WEIGHT_FIELDS = ("mtf_weight_15m", "mtf_weight_1h", "mtf_weight_4h", "mtf_weight_1d", "mtf_weight_1w")


def _sum_to_one(config, names: tuple[str, ...], what: str) -> None:
    total = sum((getattr(config, name) or Decimal(0)) for name in names)
    if total != Decimal("1"):
        raise ValidationError({name: f"the {what} must sum to 1, they sum to {total}" for name in names})


def strategy_set_check(names: str, aggregation: str, weights) -> None:
    """Raise ValueError naming an unknown strategy, aggregation or a bad weight."""
    from decisions.engine.strategies import strategies_from_names  # the pure registry owns the names

    listed = strategies_from_names(names)
    if aggregation not in Aggregation.values:
        raise ValueError(f"unknown aggregation {aggregation!r}; use {', '.join(Aggregation.values)}")
    if not isinstance(weights, dict):
        raise ValueError("strategy weights must be a JSON object of name: weight")
    known = {s.name for s in listed}
    for name, weight in weights.items():
        if name not in known:
            raise ValueError(f"weight for {name!r}, which is not among the strategies {', '.join(sorted(known))}")
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight < 0:
            raise ValueError(f"weight of {name!r} must be a number >= 0, got {weight!r}")


class TradingConfig(models.Model):
    """The single row of settings a trader changes while the bot runs."""

    mode = models.CharField(max_length=6, choices=Mode.choices, default=Mode.SAFE)
    paused = models.BooleanField(default=False, help_text="stop opening new positions; exits still run")
    safe_until = models.DateTimeField(
        null=True, blank=True,
        help_text="set by the daily-loss circuit breaker: the bot acts as SAFE until then, whatever the mode",
    )
    decision_timeframe = models.CharField(max_length=4, choices=Timeframe.choices, default=Timeframe.M15)
    history_bars = models.PositiveIntegerField(default=300, validators=[MinValueValidator(50)])
    atr_period = models.PositiveSmallIntegerField(default=14, validators=[MinValueValidator(2)])
    pivot_length = models.PositiveSmallIntegerField(default=3, validators=[MinValueValidator(1)])
    momentum_period = models.PositiveSmallIntegerField(default=12, validators=[MinValueValidator(2)])
    sl_atr_multiple = models.DecimalField(max_digits=6, decimal_places=3, default=Decimal("1.5"),
                                          validators=[MinValueValidator(Decimal("0.1"))])
    stop_mode = models.CharField(max_length=9, choices=StopMode.choices, default=StopMode.ATR)
    structure_buffer_atr = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("0.2"),
                                               validators=[UNIT], help_text="structure stop: ATR beyond the swing")
    structure_max_atr = models.DecimalField(
        max_digits=5, decimal_places=2, default=Decimal("4"), validators=[MinValueValidator(Decimal("0.1"))],
        help_text="structure stop: a swing further than this (in ATR) falls back to the ATR stop")
    tp_r_multiples = models.CharField(max_length=64, default="1,2,3",
                                      help_text="take-profit targets as multiples of the risk (entry to stop)")
    tp_shares = models.CharField(max_length=64, default="0.4,0.4,0.2",
                                 help_text="share of the position each target closes; sums to 1")
    rr_min = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("1.3"),
                                 help_text="minimum share-weighted reward/risk of the ladder")
    breakeven_after_tp1 = models.BooleanField(default=True, help_text="trail the stop to entry once TP1 fills")
    risk_per_trade_fraction = models.DecimalField(
        max_digits=6, decimal_places=5, default=Decimal("0.005"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("0.05"))],
        help_text="share of equity lost if the stop is hit (0.005 = 0.5%)",
    )
    daily_loss_limit_fraction = models.DecimalField(
        max_digits=6, decimal_places=5, default=Decimal("0.02"),
        validators=[MinValueValidator(Decimal("0.001")), MaxValueValidator(Decimal("0.5"))],
        help_text="stop opening trades after losing this share of the day's starting equity",
    )
    max_leverage = models.DecimalField(
        max_digits=5, decimal_places=2, default=Decimal("3"),
        validators=[MinValueValidator(Decimal("0.1")), MaxValueValidator(Decimal("20"))],
        help_text="largest position notional as a multiple of equity",
    )
    max_cost_to_target_fraction = models.DecimalField(
        max_digits=5, decimal_places=3, default=Decimal("0.25"),
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal("1"))],
        help_text="skip a trade whose round-trip fees and slippage exceed this share of the target move",
    )
    mtf_weight_15m = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("0.40"), validators=[UNIT])
    mtf_weight_1h = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("0.25"), validators=[UNIT])
    mtf_weight_4h = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("0.20"), validators=[UNIT])
    mtf_weight_1d = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("0.10"), validators=[UNIT])
    mtf_weight_1w = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("0.05"), validators=[UNIT])
    # The entry rule's flow filters (decisions/engine/rules.py documents each).
    rule_max_funding_long = models.FloatField(default=0.0005, help_text="per 8h; above it a long is refused")
    rule_min_funding_short = models.FloatField(default=-0.0005, help_text="per 8h; below it a short is refused")
    rule_oi_falling_pct = models.FloatField(default=-2.0, help_text="4h open-interest change that counts as falling")
    rule_max_global_risk = models.FloatField(default=70.0, validators=[MinValueValidator(0), MaxValueValidator(100)])
    rule_use_liquidations = models.BooleanField(default=True, help_text="LONG needs liquidations below, SHORT above")
    rule_use_etf_flows = models.BooleanField(default=True, help_text="LONG needs 5-day ETF flows >= 0, SHORT <= 0")
    rule_blocking_warnings = models.CharField(
        max_length=255, blank=True, default="funding_extreme_long,funding_extreme_short,oi_spike",
        help_text="comma-separated flow warnings that forbid any entry")
    # The risk wall (decisions/risk/limits.py documents each; RiskLimits validates them in clean()).
    weekly_drawdown_fraction = models.DecimalField(max_digits=6, decimal_places=5, default=Decimal("0.05"))
    max_drawdown_fraction = models.DecimalField(max_digits=6, decimal_places=5, default=Decimal("0.10"))
    loss_streak = models.PositiveSmallIntegerField(default=3, help_text="losing trades in a row that pause the day")
    sl_streak = models.PositiveSmallIntegerField(default=3, help_text="stop-outs in a row that pause the day")
    max_trades_per_day = models.PositiveSmallIntegerField(default=3)
    max_open_positions = models.PositiveSmallIntegerField(default=2)
    risk_timezone = models.CharField(max_length=64, default="Europe/Warsaw",
                                     help_text="days, weeks and trading hours count on this clock")
    trading_start = models.TimeField(default=dt_time(7, 0))
    trading_end = models.TimeField(default=dt_time(23, 0), help_text="exclusive; start > end spans midnight")
    news_mute_minutes = models.PositiveSmallIntegerField(default=15)
    cooldown_minutes = models.PositiveSmallIntegerField(default=15)
    volatility_percentile = models.FloatField(default=90.0, help_text="ATR percentile above which size shrinks")
    volatility_size_factor = models.FloatField(default=0.5)
    max_spread_bps = models.FloatField(default=5.0)
    rate_window_minutes = models.PositiveSmallIntegerField(default=5)
    max_orders_per_window = models.PositiveSmallIntegerField(default=10)
    max_turnover_equity_multiple = models.DecimalField(max_digits=8, decimal_places=2, default=Decimal("5"))
    max_correlation = models.FloatField(default=0.8)
    min_volume_24h_usdt = models.DecimalField(max_digits=20, decimal_places=2, default=Decimal("10000000"))
    min_profit_factor = models.FloatField(default=1.0)
    profit_factor_min_trades = models.PositiveSmallIntegerField(default=10)
    version = models.PositiveIntegerField(default=1, editable=False,
                                          help_text="raised by every change; decisions and orders record it")
    allow_data_gaps = models.BooleanField(
        default=False, help_text="decide even when candles are missing inside the analysed window",
    )
    # Strategies, edge and fusion (decisions/engine/strategies.py, edge.py, fusion.py document each).
    strategies = models.CharField(
        max_length=128, default="rules",
        help_text="comma-separated, in order: rules, ema_cross, rsi, bollinger, atr_breakout")
    strategy_aggregation = models.CharField(max_length=8, choices=Aggregation.choices, default=Aggregation.FIRST)
    strategy_weights = models.JSONField(
        default=dict, blank=True, help_text='weights for "weighted" aggregation, e.g. {"rules": 2, "rsi": 1}; '
                                            'a strategy left out weighs 1')
    edge_weight_fvg = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("0.20"), validators=[UNIT])
    edge_weight_risk_reward = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("0.20"),
                                                  validators=[UNIT])
    edge_weight_news = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("0.10"), validators=[UNIT])
    edge_weight_whale = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("0.10"), validators=[UNIT])
    edge_weight_onchain = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("0.10"),
                                              validators=[UNIT])
    edge_weight_obi = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("0.15"), validators=[UNIT])
    edge_weight_flow = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("0.15"), validators=[UNIT])
    edge_threshold = models.FloatField(default=0.62, validators=[MinValueValidator(0), MaxValueValidator(1)],
                                       help_text="the trade side's edge must reach this")
    edge_mtf_agree_bonus = models.FloatField(default=0.05, validators=[MinValueValidator(0), MaxValueValidator(1)])
    edge_mtf_conflict_penalty = models.FloatField(default=0.10, validators=[MinValueValidator(0),
                                                                            MaxValueValidator(1)])
    fusion_technical_weight = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("0.65"),
                                                  validators=[UNIT])
    fusion_model_weight = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("0.35"),
                                              validators=[UNIT], help_text="technical + model weights sum to 1")
    structure_timeframes = models.CharField(
        max_length=32, default="5m,15m", blank=True,
        help_text="LONG needs HH-HL (SHORT LH-LL) on each of these timeframes as well as the decision timeframe")
    # Routing, expiry and approvals.
    auto_approve_confidence = models.FloatField(
        default=0.80, validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text="HYBRID: a decision at or above this confidence is approved without waiting")
    decision_ttl_minutes = models.PositiveIntegerField(default=240, validators=[MinValueValidator(1)],
                                                       help_text="a decision not acted on by then expires")
    snooze_minutes = models.PositiveSmallIntegerField(default=30, validators=[MinValueValidator(1)])
    max_entry_drift_atr = models.DecimalField(
        max_digits=5, decimal_places=2, default=Decimal("0.25"), validators=[UNIT],
        help_text="half-width of the entry zone in ATR: an approval outside it is refused")
    # Sizing caps and the trailing stop.
    max_margin_fraction = models.DecimalField(
        max_digits=4, decimal_places=3, default=Decimal("0.5"),
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal("1"))],
        help_text="margin of all open positions (notional / max leverage) stays under this share of equity")
    trail_atr_multiple = models.DecimalField(
        max_digits=5, decimal_places=2, null=True, blank=True, default=Decimal("1.5"),
        validators=[MinValueValidator(Decimal("0.1"))],
        help_text="after TP1 the stop trails this many ATR behind the best price (never below breakeven); "
                  "empty: stay at breakeven")
    # Execution on a venue (testnet/live): how exits rest on the exchange and what a shutdown does.
    tp_order_style = models.CharField(
        max_length=20, default="take_profit_market",
        choices=[("take_profit_market", "TAKE_PROFIT_MARKET (fills at market once touched)"),
                 ("take_profit", "TAKE_PROFIT (a limit order at the target once touched)")])
    stop_working_type = models.CharField(
        max_length=14, default="MARK_PRICE", choices=[("MARK_PRICE", "mark price"), ("CONTRACT_PRICE", "last price")],
        help_text="the price that triggers the exchange-side stop")
    shutdown_flatten = models.BooleanField(
        default=False, help_text="on a graceful shutdown close every position; off: leave them with verified stops")
    # Entries: market, or a post-only limit that chases the price and may fall back to market.
    entry_order_type = models.CharField(
        max_length=6, default="market", choices=[("market", "market"), ("limit", "limit with chase")],
        help_text="limit: a post-only order at the best price on our side, re-priced while the price moves")
    entry_chase_interval_seconds = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(1)], help_text="re-price a resting entry this often")
    entry_chase_max_reprices = models.PositiveSmallIntegerField(
        default=3, help_text="after this many re-prices the entry falls back to market or is given up")
    entry_chase_max_drift_bps = models.DecimalField(
        max_digits=7, decimal_places=2, default=Decimal("15"), validators=[MinValueValidator(Decimal("0"))],
        help_text="never chase (or fall back to market) further than this from the decision's entry price")
    entry_market_fallback = models.BooleanField(
        default=True, help_text="when the chase ends unfilled, take the rest at market if the price is within "
                                "the drift limit and the decision's entry zone; off: give the rest up")
    # The paper broker's model of the venue.
    maker_fee_fraction = models.DecimalField(max_digits=8, decimal_places=6, default=Decimal("0.0002"))
    taker_fee_fraction = models.DecimalField(max_digits=8, decimal_places=6, default=Decimal("0.0004"))
    slippage_bps = models.DecimalField(max_digits=8, decimal_places=3, default=Decimal("1"))
    paper_fill_participation = models.DecimalField(
        max_digits=4, decimal_places=3, default=Decimal("0.1"),
        validators=[MinValueValidator(Decimal("0.001")), MaxValueValidator(Decimal("1"))],
        help_text="paper limit orders fill at most this share of a bar's volume traded through their price")
    maintenance_margin_fraction = models.DecimalField(
        max_digits=6, decimal_places=5, default=Decimal("0.004"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("0.5"))],
        help_text="paper liquidation: the position is liquidated when its margin falls to this share of notional")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "trading configuration"

    def effective_mode(self, now) -> str:
        """Return the mode in force at `now`: SAFE while the circuit breaker holds, else `mode`."""
        return Mode.SAFE if self.safe_until is not None and now < self.safe_until else self.mode

    def clean(self):
        from decisions.risk_state import risk_limits_for  # the shell maps rows to the pure limits

        try:
            risk_limits_for(self)
        except (ValueError, TypeError) as exc:
            field, _, message = str(exc).partition(": ")
            field = {"timezone": "risk_timezone", "daily_loss_fraction": "daily_loss_limit_fraction"}.get(field, field)
            raise ValidationError({field if hasattr(self, field) else None: message or str(exc)}) from None
        try:
            ladder_parse(self.tp_r_multiples, self.tp_shares)
        except ValueError as exc:
            raise ValidationError({"tp_shares": str(exc)}) from None
        _sum_to_one(self, MTF_WEIGHT_FIELDS, "multi-timeframe weights")
        _sum_to_one(self, EDGE_WEIGHT_FIELDS, "edge weights")
        _sum_to_one(self, ("fusion_technical_weight", "fusion_model_weight"), "fusion weights")
        unknown = [tf for tf in self.structure_timeframe_list() if tf not in Timeframe.values]
        if unknown:
            raise ValidationError({"structure_timeframes": f"unknown timeframe {unknown[0]!r}; use "
                                                           f"{', '.join(Timeframe.values)}"})
        try:
            strategy_set_check(self.strategies, self.strategy_aggregation, self.strategy_weights)
        except ValueError as exc:
            raise ValidationError({"strategies": str(exc)}) from None

    def structure_timeframe_list(self) -> list[str]:
        """Return the timeframes whose structure must agree with the trade, in order."""
        return [tf.strip() for tf in self.structure_timeframes.split(",") if tf.strip()]

    def __str__(self):
        return f"mode {self.mode}{' (paused)' if self.paused else ''}"


class Decision(models.Model):
    """One evaluation cycle's outcome, kept for FLAT and blocked cycles too."""

    class Outcome(models.TextChoices):
        EXECUTED = "executed"
        FLAT = "flat", "no signal"
        BLOCKED = "blocked", "blocked by a risk gate"
        LOGGED = "logged", "logged only (SAFE mode)"
        PAUSED = "paused"
        SKIPPED = "skipped", "skipped (position already open or size zero)"
        PENDING = "pending", "waiting for approval (HYBRID)"
        REJECTED = "rejected", "rejected by an operator"
        EXPIRED = "expired", "expired before it was acted on"

    class Approval(models.TextChoices):
        NONE = "", "not needed"
        PENDING = "pending"
        APPROVED = "approved"
        AUTO = "auto", "auto-approved (confidence)"
        REJECTED = "rejected"
        EXPIRED = "expired"

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="decisions")
    timeframe = models.CharField(max_length=4, choices=Timeframe.choices)
    as_of = models.DateTimeField()
    snapshot = models.ForeignKey(Snapshot, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=5, choices=Action.choices)
    mode = models.CharField(max_length=6, choices=Mode.choices)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    entry_price = models.DecimalField(max_digits=28, decimal_places=10, null=True, blank=True)
    stop_price = models.DecimalField(max_digits=28, decimal_places=10, null=True, blank=True)
    target_price = models.DecimalField(max_digits=28, decimal_places=10, null=True, blank=True)
    quantity = models.DecimalField(max_digits=32, decimal_places=10, null=True, blank=True)
    take_profits = models.JSONField(default=list, blank=True, help_text='[{"price", "share"}], nearest first')
    reason = models.CharField(max_length=255)
    rationale = models.JSONField(default=list, help_text="each input that drove the decision")
    gates = models.JSONField(default=list, help_text="each risk gate's verdict")
    config_version = models.PositiveIntegerField(default=1, help_text="trading configuration version used")
    entry_zone_low = models.DecimalField(max_digits=28, decimal_places=10, null=True, blank=True)
    entry_zone_high = models.DecimalField(max_digits=28, decimal_places=10, null=True, blank=True)
    risk_level = models.CharField(max_length=6, blank=True, help_text="low, medium or high")
    confidence = models.FloatField(null=True, blank=True, help_text="fused technical and model score, 0..1")
    success_probability = models.FloatField(null=True, blank=True,
                                            help_text="calibrated hit rate for this confidence, 0..1")
    probability_source = models.CharField(max_length=64, blank=True)
    edge_long = models.FloatField(null=True, blank=True)
    edge_short = models.FloatField(null=True, blank=True)
    score_parts = models.JSONField(default=dict, blank=True,
                                   help_text="strategy votes, edge components and fusion behind the decision")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="not executed after this moment")
    approval = models.CharField(max_length=8, choices=Approval.choices, blank=True, default=Approval.NONE)
    approval_by = models.CharField(max_length=150, blank=True)
    approval_at = models.DateTimeField(null=True, blank=True)
    approval_note = models.CharField(max_length=255, blank=True)
    snoozed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["instrument", "timeframe", "as_of"], name="uniq_decision")]
        # as_of, id: the newest decision (every page's header) and the journal's pages read it in order.
        indexes = [models.Index(fields=["outcome", "expires_at"], name="decision_outcome_expiry"),
                   models.Index(fields=["as_of", "id"], name="decision_as_of_id")]
        ordering = ["-as_of"]
        get_latest_by = "as_of"

    def __str__(self):
        return f"{self.instrument} {self.action} @ {self.as_of:%Y-%m-%d %H:%M} ({self.outcome})"


class GateOverride(models.Model):
    """An operator's audited permission to pass one blocking gate until a moment."""

    gate = models.CharField(max_length=32, help_text="the gate's name, e.g. daily_loss")
    until = models.DateTimeField()
    reason = models.CharField(max_length=255)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["gate", "until"], name="override_gate_until")]

    def active(self, now) -> bool:
        """Return True while the override holds at `now`."""
        return self.revoked_at is None and self.created_at <= now < self.until

    def __str__(self):
        return f"{self.gate} overridden until {self.until:%Y-%m-%d %H:%M} by {self.created_by}"


class AuditRecord(models.Model):
    """One link of the append-only, hash-chained audit log; written only by audit_append (docs/AUDIT.md)."""

    class Kind(models.TextChoices):
        DECISION = "decision"
        GATE = "gate", "gate verdict"
        APPROVAL = "approval"
        MODE_CHANGE = "mode_change", "mode change"
        LIMIT_CHANGE = "limit_change", "limit change"
        ORDER = "order", "order action"
        STARTUP = "startup", "start-up card"
        OVERRIDE = "override", "gate override"

    seq = models.PositiveBigIntegerField(unique=True, help_text="1, 2, 3, ... without gaps")
    ts = models.DateTimeField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    actor = models.CharField(max_length=150, help_text="username, or 'engine' for the bot itself")
    subject = models.CharField(max_length=100, blank=True, help_text="what it is about, e.g. decision:123")
    body = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True, help_text="sha256(prev_hash + canonical JSON of the record)")

    class Meta:
        ordering = ["seq"]
        get_latest_by = "seq"
        indexes = [models.Index(fields=["subject"], name="audit_subject"),
                   models.Index(fields=["kind", "ts"], name="audit_kind_ts"),
                   models.Index(fields=["kind", "seq"], name="audit_kind_seq")]  # the logs page's kind filter

    def __str__(self):
        return f"#{self.seq} {self.kind} {self.subject} by {self.actor}"


class AuditHead(models.Model):
    """The chain's last (seq, hash): the row appenders lock, and an anchor against a deleted tail."""

    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64)

    def __str__(self):
        return f"audit head #{self.seq}"
