"""Output (and input) shapes of decisions, execution and backtests; no logic lives here.

Accounts are shown without their exchange keys: the encrypted key columns are never listed.
"""
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from dashboard.api.fields import DecimalText
from dashboard.api.serializers_market import ApiModelSerializer
from decisions.models import Decision
from execution.backtest.metrics import drawdown_points
from execution.models import Account, BacktestRun, Fill, Order, Position


class AccountSerializer(ApiModelSerializer):
    class Meta:
        model = Account
        # Never api_key_encrypted / api_secret_encrypted.
        fields = ("id", "name", "broker", "exchange_id", "starting_balance_usdt", "balance_usdt", "created_at")


class DecisionSerializer(ApiModelSerializer):
    """A decision as the journal lists it: levels, outcome, approval and the rationale."""

    symbol = serializers.CharField(source="instrument.exchange_symbol", read_only=True)

    class Meta:
        model = Decision
        fields = ("id", "instrument", "symbol", "timeframe", "as_of", "action", "mode", "outcome", "reason",
                  "entry_price", "entry_zone_low", "entry_zone_high", "stop_price", "target_price", "quantity",
                  "take_profits", "risk_level", "confidence", "success_probability", "config_version",
                  "expires_at", "approval", "approval_by", "approval_at", "approval_note", "snoozed_until",
                  "rationale", "created_at")


class DecisionDetailSerializer(DecisionSerializer):
    """One decision with everything behind it: gate verdicts, edges and score parts."""

    class Meta(DecisionSerializer.Meta):
        fields = DecisionSerializer.Meta.fields + ("snapshot", "gates", "edge_long", "edge_short", "score_parts",
                                                   "probability_source")


class RejectSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=255,
                                 help_text="why the decision is refused; kept in the journal")


class SnoozeSerializer(serializers.Serializer):
    minutes = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1,
                                       max_value=24 * 60, help_text="default: the configured snooze minutes")


class OrderSerializer(ApiModelSerializer):
    class Meta:
        model = Order
        fields = ("id", "account", "instrument", "decision", "client_order_id", "exchange_order_id", "leg", "side",
                  "type", "status", "quantity", "price", "trigger_price", "filled_quantity", "average_price",
                  "reduce_only", "conditional", "external", "reject_reason", "config_version", "created_at",
                  "updated_at")


class FillSerializer(ApiModelSerializer):
    class Meta:
        model = Fill
        fields = ("id", "order", "trade_id", "ts", "price", "quantity", "fee_usdt", "liquidity")


class PositionSerializer(ApiModelSerializer):
    symbol = serializers.CharField(source="instrument.exchange_symbol", read_only=True)

    class Meta:
        model = Position
        fields = ("id", "account", "instrument", "symbol", "decision", "side", "status", "quantity",
                  "initial_quantity", "entry_price", "stop_price", "target_price", "take_profits",
                  "liquidation_price", "margin_usdt", "opened_at", "closed_at", "exit_price", "exit_reason", "fees_usdt",
                  "funding_usdt", "realized_pnl_usdt")


class EquityQuerySerializer(serializers.Serializer):
    """The equity endpoint's query: which account, which range, how many points at most."""

    account = serializers.PrimaryKeyRelatedField(queryset=Account.objects.all(), required=False, allow_null=True,
                                                 help_text="account id (default: the account the bot trades)")
    start = serializers.DateTimeField(required=False, allow_null=True, help_text="ISO-8601; naive means UTC")
    end = serializers.DateTimeField(required=False, allow_null=True)
    max_points = serializers.IntegerField(required=False, default=1000, min_value=2, max_value=10000,
                                          help_text="LTTB-downsample to at most this many points")

    def validate(self, attrs):
        start, end = attrs.get("start"), attrs.get("end")
        if start and end and end < start:
            raise serializers.ValidationError({"end": f"end {end.isoformat()} is before start {start.isoformat()}"})
        return attrs


class EquityPointSerializer(serializers.Serializer):
    ts = serializers.DateTimeField()
    equity_usdt = DecimalText()
    drawdown_pct = serializers.FloatField(help_text="from the running peak, <= 0")


class EquityAccountSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    broker = serializers.CharField()


class EquitySerializer(serializers.Serializer):
    """An equity curve: every point of the range, or an LTTB selection of them when `downsampled`."""

    account = EquityAccountSerializer()
    start = serializers.DateTimeField(allow_null=True)
    end = serializers.DateTimeField(allow_null=True)
    downsampled = serializers.BooleanField()
    peak_equity_usdt = DecimalText(allow_null=True)
    points = EquityPointSerializer(many=True)


class BacktestSerializer(ApiModelSerializer):
    """A backtest run with its metrics; trades and the equity curve are on the detail only."""

    symbol = serializers.CharField(source="instrument.exchange_symbol", read_only=True)

    class Meta:
        model = BacktestRun
        fields = ("id", "kind", "parent", "label", "status", "instrument", "symbol", "symbols", "timeframe", "start",
                  "end", "starting_equity_usdt", "final_equity_usdt", "bars_total", "bars_done", "metrics", "error",
                  "requested_by", "code_version", "created_at", "finished_at")


class BacktestDetailSerializer(BacktestSerializer):
    drawdown = serializers.SerializerMethodField(
        help_text='[[ts_ms, "fraction"], ...]: each equity point\'s fall below the running peak (the starting '
                  'equity counts), derived from the stored equity')

    class Meta(BacktestSerializer.Meta):
        fields = BacktestSerializer.Meta.fields + ("parameters", "trades", "equity", "drawdown")

    @extend_schema_field(serializers.ListField(child=serializers.ListField()))
    def get_drawdown(self, run: BacktestRun) -> list[list]:
        return drawdown_points(run.starting_equity_usdt, run.equity or [])


class BacktestStartSerializer(serializers.Serializer):
    """What a script sends to start a backtest; execution.backtest.jobs checks the rest and queues it."""

    symbols = serializers.ListField(child=serializers.CharField(max_length=64), min_length=1, max_length=20,
                                    help_text='venue symbols, e.g. ["BTCUSDT"]')
    timeframe = serializers.CharField(max_length=4, help_text="e.g. 15m")
    start = serializers.DateTimeField(help_text="first bar close decided on (ISO-8601 UTC, on the timeframe's grid)")
    end = serializers.DateTimeField(help_text="last bar close decided on")
    starting_equity = DecimalText(max_digits=20, decimal_places=2, default="10000", help_text="USDT")
    parameters = serializers.DictField(required=False, allow_null=True, default=None,
                                       help_text="trading-configuration values to change for this run only")
    source = serializers.ChoiceField(choices=[("db", "stored candles"), ("csv", "recorded CSV files")],
                                     default="db", help_text="where the bars come from: the database, or the "
                                                             "Binance CSV recordings of MARKET_DATA_DIR")
    market = serializers.ChoiceField(choices=[("usdm", "USD-M"), ("spot", "spot")], required=False,
                                     allow_blank=True, default="",
                                     help_text="csv only: read these recordings (default USD-M where they cover "
                                               "the range, else spot)")
