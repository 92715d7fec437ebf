"""Output (and input) shapes of market data, analytics and manual inputs; no logic lives here."""
from django.db import models
from rest_framework import serializers

from analytics.models import Flow, Snapshot
from dashboard.api.fields import DecimalText, FastListSerializer
from market.models import Candle, DerivativesSample, Instrument, ManualUpload, SentimentInput


class ApiModelSerializer(serializers.ModelSerializer):
    """A ModelSerializer whose Decimal columns come out as exact text without trailing zeros."""

    serializer_field_mapping = {**serializers.ModelSerializer.serializer_field_mapping,
                                models.DecimalField: DecimalText}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Pages of rows render through FastListSerializer; one row still goes field by field.
        if not hasattr(cls.Meta, "list_serializer_class"):
            cls.Meta.list_serializer_class = FastListSerializer


class InstrumentSerializer(ApiModelSerializer):
    class Meta:
        model = Instrument
        fields = ("id", "exchange", "symbol", "exchange_symbol", "market_type", "data_source", "base", "quote",
                  "tick_size", "step_size", "min_notional", "contract_size", "is_active", "created_at")


class CandleSerializer(ApiModelSerializer):
    class Meta:
        model = Candle
        fields = ("open_time", "open", "high", "low", "close", "volume", "quote_volume", "trades",
                  "taker_buy_base", "taker_buy_quote")


class DerivativesSampleSerializer(ApiModelSerializer):
    class Meta:
        model = DerivativesSample
        fields = ("id", "instrument", "kind", "period", "ts", "open_interest", "open_interest_value",
                  "funding_rate", "mark_price", "index_price", "basis", "cvd")


class SnapshotSerializer(ApiModelSerializer):
    class Meta:
        model = Snapshot
        fields = ("id", "instrument", "timeframe", "as_of", "close", "atr", "trend", "momentum", "features",
                  "created_at")


class FlowSerializer(ApiModelSerializer):
    class Meta:
        model = Flow
        fields = ("id", "instrument", "as_of", "crowd_bias", "trap_index", "global_risk_score", "warnings", "parts",
                  "inputs", "created_at")


class SentimentSerializer(ApiModelSerializer):
    """A sentiment reading as stored; `created_by` is the username."""

    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = SentimentInput
        fields = ("id", "asset", "score", "source", "note", "known_at", "valid_until", "created_by", "created_at",
                  "supersedes", "superseded_at")


class SentimentInputSerializer(serializers.Serializer):
    """What a script sends to record a sentiment reading."""

    asset = serializers.RegexField(r"^[A-Za-z0-9]{1,8}$", default="BTC",
                                   help_text="1-8 letters or digits, e.g. BTC")
    score = DecimalText(max_digits=4, decimal_places=3, min_value=-1, max_value=1,
                        help_text="-1 (fear) .. +1 (greed), at most 3 decimals")
    source = serializers.CharField(max_length=64, help_text="where the reading comes from")
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    known_at = serializers.DateTimeField(required=False, allow_null=True, default=None,
                                         help_text="when the reading became known (default: now; never later)")
    valid_until = serializers.DateTimeField(required=False, allow_null=True, default=None)


class UploadSerializer(serializers.ModelSerializer):
    """A stored manual upload, without its bytes."""

    uploaded_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ManualUpload
        fields = ("id", "kind", "filename", "sha256", "size_bytes", "source", "known_at", "uploaded_by",
                  "uploaded_at", "rows_created", "rows_updated", "rows_unchanged")


class UploadFileSerializer(serializers.Serializer):
    """A multipart upload: the JSON file."""

    file = serializers.FileField(help_text="the JSON document (see docs/MANUAL_INPUTS.md)")


class ProblemSerializer(serializers.Serializer):
    path = serializers.CharField(help_text='JSON pointer into the file, "" = the whole file')
    reason = serializers.CharField()


class UploadProblemsSerializer(serializers.Serializer):
    """Why an upload was refused: nothing was written."""

    detail = serializers.CharField()
    problems = ProblemSerializer(many=True)


class UploadPreviewRowSerializer(serializers.Serializer):
    values = serializers.ListField(child=serializers.CharField())
    action = serializers.ChoiceField(choices=["new", "revision", "unchanged"])
    note = serializers.CharField()


class UploadPreviewSerializer(serializers.Serializer):
    """What an upload would write (dry run): nothing was saved."""

    kind = serializers.CharField()
    sha256 = serializers.CharField()
    size_bytes = serializers.IntegerField()
    columns = serializers.ListField(child=serializers.CharField())
    rows = UploadPreviewRowSerializer(many=True)
    counts = serializers.DictField(child=serializers.IntegerField())
    rows_superseded = serializers.IntegerField()
