"""Market data: instruments, candles, derivatives, order books and manual context."""
from django.conf import settings
from django.db import models

PRICE = dict(max_digits=28, decimal_places=10)
QTY = dict(max_digits=32, decimal_places=10)


class Timeframe(models.TextChoices):
    M1 = "1m"
    M3 = "3m"
    M5 = "5m"
    M15 = "15m"
    M30 = "30m"
    H1 = "1h"
    H2 = "2h"
    H4 = "4h"
    H6 = "6h"
    H8 = "8h"
    H12 = "12h"
    D1 = "1d"
    D3 = "3d"
    W1 = "1w"


class MarketType(models.TextChoices):
    SPOT = "spot"
    SWAP = "swap", "perpetual swap"
    FUTURE = "future", "dated future"


class DataSource(models.TextChoices):
    EXCHANGE = "exchange", "exchange (live or backfilled)"
    REPLAY = "replay", "replay of recorded candles"
    SIMULATED = "simulated", "simulated market (not real prices)"


class Instrument(models.Model):
    """A tradable market on one exchange, as ccxt names it."""

    exchange = models.CharField(max_length=32, help_text="ccxt exchange id, e.g. binanceusdm")
    symbol = models.CharField(max_length=64, help_text="ccxt unified symbol, e.g. BTC/USDT:USDT")
    exchange_symbol = models.CharField(max_length=64, help_text="venue id, e.g. BTCUSDT")
    market_type = models.CharField(max_length=8, choices=MarketType.choices)
    data_source = models.CharField(max_length=12, choices=DataSource.choices, default=DataSource.EXCHANGE)
    base = models.CharField(max_length=16)
    quote = models.CharField(max_length=16)
    tick_size = models.DecimalField(**PRICE, default="0.1")
    step_size = models.DecimalField(**QTY, default="0.001")
    min_notional = models.DecimalField(**PRICE, default="5")
    contract_size = models.DecimalField(**QTY, default="1")
    is_active = models.BooleanField(default=False, help_text="analysed and traded by the bot")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["exchange", "symbol", "data_source"], name="uniq_instrument"),
        ]
        ordering = ["exchange", "symbol"]

    def __str__(self):
        suffix = "" if self.data_source == DataSource.EXCHANGE else f" [{self.data_source}]"
        return f"{self.exchange}:{self.symbol}{suffix}"


class Candle(models.Model):
    """One OHLCV bar; open_time is the bar's aware UTC open."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="candles")
    timeframe = models.CharField(max_length=4, choices=Timeframe.choices)
    open_time = models.DateTimeField()
    open = models.DecimalField(**PRICE)
    high = models.DecimalField(**PRICE)
    low = models.DecimalField(**PRICE)
    close = models.DecimalField(**PRICE)
    volume = models.DecimalField(**QTY)
    quote_volume = models.DecimalField(**QTY, null=True, blank=True)
    trades = models.BigIntegerField(null=True, blank=True)
    taker_buy_base = models.DecimalField(**QTY, null=True, blank=True)
    taker_buy_quote = models.DecimalField(**QTY, null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["instrument", "timeframe", "open_time"], name="uniq_candle"),
            models.CheckConstraint(condition=models.Q(high__gte=models.F("low")), name="candle_high_gte_low"),
        ]
        ordering = ["instrument", "timeframe", "open_time"]

    def __str__(self):
        return f"{self.instrument_id} {self.timeframe} {self.open_time:%Y-%m-%d %H:%M}"


class CandleSeries(models.Model):
    """The revision of one instrument's stored bars of one timeframe, for caches of closed bars.

    `revision` is a random token, replaced whenever a write changes a stored bar or inserts one
    behind the newest (market.ingest.candles_upsert); appending newer bars leaves it alone. A cache
    holding the series' bars compares it for equality, so a series recreated after a rollback or a
    purge (a fresh random token) never matches an old one. Created by the first cache that reads the
    series; a missing row means no cache holds its bars.
    """

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="candle_series")
    timeframe = models.CharField(max_length=4, choices=Timeframe.choices)
    revision = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["instrument", "timeframe"], name="uniq_candle_series"),
        ]

    def __str__(self):
        return f"{self.instrument_id} {self.timeframe} r{self.revision}"


class DerivativesKind(models.TextChoices):
    FUNDING = "funding", "funding rate"
    OPEN_INTEREST = "open_interest", "open interest"
    MARK_INDEX = "mark_index", "mark / index / basis"
    CVD = "cvd", "cumulative volume delta"


class DerivativesSample(models.Model):
    """A derivatives reading at `ts`; only the columns of its kind are filled."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="derivatives")
    kind = models.CharField(max_length=16, choices=DerivativesKind.choices)
    period = models.CharField(max_length=4, blank=True, default="", help_text="sampling period, e.g. 4h")
    ts = models.DateTimeField()
    open_interest = models.DecimalField(**QTY, null=True, blank=True, help_text="base units")
    open_interest_value = models.DecimalField(**QTY, null=True, blank=True, help_text="USDT")
    funding_rate = models.DecimalField(max_digits=16, decimal_places=10, null=True, blank=True)
    mark_price = models.DecimalField(**PRICE, null=True, blank=True)
    index_price = models.DecimalField(**PRICE, null=True, blank=True)
    basis = models.DecimalField(**PRICE, null=True, blank=True, help_text="mark - index, USDT")
    cvd = models.DecimalField(**QTY, null=True, blank=True, help_text="cumulative taker buy - sell, base")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["instrument", "kind", "period", "ts"], name="uniq_derivatives"),
        ]
        # The flow's look-back per kind (the unique key puts the period before ts: no time bound from it).
        indexes = [models.Index(fields=["instrument", "kind", "ts"], name="derivatives_instrument_kind_ts")]
        ordering = ["instrument", "kind", "ts"]

    def __str__(self):
        return f"{self.instrument_id} {self.kind} {self.ts:%Y-%m-%d %H:%M}"


class OrderBookSnapshot(models.Model):
    """Top-N depth at `ts`: bids and asks as [[price, qty], ...] strings, best first."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="books")
    ts = models.DateTimeField()
    depth = models.PositiveSmallIntegerField()
    bids = models.JSONField()
    asks = models.JSONField()
    best_bid = models.DecimalField(**PRICE)
    best_ask = models.DecimalField(**PRICE)
    spread_bps = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["instrument", "ts"], name="uniq_book")]
        ordering = ["instrument", "ts"]

    def __str__(self):
        return f"{self.instrument_id} book {self.ts:%Y-%m-%d %H:%M:%S}"


class EtfFlow(models.Model):
    """Daily net creation/redemption of one spot ETF, in USD."""

    asset = models.CharField(max_length=8, default="BTC")
    fund = models.CharField(max_length=16, help_text="ticker, e.g. IBIT")
    date = models.DateField(help_text="trading day the flow belongs to")
    net_flow_usd = models.DecimalField(max_digits=20, decimal_places=2)
    known_at = models.DateTimeField(help_text="when the figure became known")
    source = models.CharField(max_length=64, blank=True)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # A revised figure is a new row; the old one stays, valid until the revision became known.
    valid_until = models.DateTimeField(null=True, blank=True, help_text="when a revision replaced this figure")
    upload = models.ForeignKey("ManualUpload", null=True, blank=True, on_delete=models.PROTECT,
                               related_name="etf_flows")

    class Meta:
        constraints = [
            # One row per revision: (asset, fund, date) repeats with a later known_at.
            models.UniqueConstraint(fields=["asset", "fund", "date", "known_at"], name="uniq_etf_flow_revision"),
        ]
        indexes = [models.Index(fields=["asset", "date"])]
        ordering = ["-date", "fund"]

    def __str__(self):
        return f"{self.fund} {self.date} {self.net_flow_usd}"


class LiquidationZone(models.Model):
    """A price band where leveraged positions of one side would be liquidated."""

    class Side(models.TextChoices):
        LONG = "long", "long liquidations"
        SHORT = "short", "short liquidations"

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="liquidation_zones")
    side = models.CharField(max_length=5, choices=Side.choices)
    price_low = models.DecimalField(**PRICE)
    price_high = models.DecimalField(**PRICE)
    size_usd = models.DecimalField(max_digits=20, decimal_places=2)
    known_at = models.DateTimeField()
    valid_until = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=64, blank=True)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    upload = models.ForeignKey("ManualUpload", null=True, blank=True, on_delete=models.PROTECT,
                               related_name="liquidation_zones")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(price_high__gte=models.F("price_low")), name="liq_band_order"),
        ]
        indexes = [models.Index(fields=["instrument", "known_at"]),
                   # the flow reads the zones still valid at its time
                   models.Index(fields=["instrument", "valid_until", "known_at"], name="liq_instrument_valid_known")]
        ordering = ["-known_at"]

    def __str__(self):
        return f"{self.side} {self.price_low}-{self.price_high}"


class SentimentInput(models.Model):
    """A manual sentiment reading from -1 (fear) to +1 (greed); rows are never edited away."""

    asset = models.CharField(max_length=8, default="BTC")
    score = models.DecimalField(max_digits=4, decimal_places=3)
    source = models.CharField(max_length=64)
    note = models.TextField(blank=True)
    known_at = models.DateTimeField()
    valid_until = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    # A correction is a new row pointing at the one it replaces; the replaced row keeps its values.
    supersedes = models.OneToOneField("self", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="superseded_by")
    superseded_at = models.DateTimeField(null=True, blank=True, help_text="when a correction replaced this row")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(score__gte=-1, score__lte=1), name="sentiment_score_range"),
        ]
        indexes = [models.Index(fields=["asset", "known_at"]),
                   # the flow reads the readings still valid at its time
                   models.Index(fields=["asset", "valid_until", "known_at"], name="sentiment_asset_valid_known")]
        ordering = ["-known_at"]

    def __str__(self):
        return f"{self.asset} {self.score} ({self.source})"


class ManualUpload(models.Model):
    """One uploaded file of manual inputs, kept byte for byte with who sent it and what it wrote."""

    class Kind(models.TextChoices):
        ETF_FLOWS = "etf_flows", "ETF flows"
        LIQUIDATION_ZONES = "liquidation_zones", "liquidation zones"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    sha256 = models.CharField(max_length=64, help_text="hex digest of the file's bytes")
    # The bytes live in the row, not in file storage, so a rolled-back upload leaves nothing behind.
    content = models.BinaryField(editable=False)
    filename = models.CharField(max_length=255)
    size_bytes = models.PositiveIntegerField()
    source = models.CharField(max_length=64, blank=True)
    known_at = models.DateTimeField(help_text="when the file's figures became known")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="manual_uploads")
    uploaded_at = models.DateTimeField()
    rows_created = models.PositiveIntegerField(default=0)
    rows_updated = models.PositiveIntegerField(default=0, help_text="stored rows this upload superseded")
    rows_unchanged = models.PositiveIntegerField(default=0, help_text="rows already stored with the same value")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "sha256"], name="uniq_manual_upload")]
        ordering = ["-uploaded_at", "-id"]

    def __str__(self):
        return f"{self.get_kind_display()} {self.filename} ({self.uploaded_at:%Y-%m-%d %H:%M})"
