"""Admin for market data: instruments are edited; recorded market rows are read-only."""
from django.contrib import admin, messages

from market.gaps import format_summary
from market.importer import gap_report
from market.models import (
    Candle,
    DerivativesSample,
    EtfFlow,
    Instrument,
    LiquidationZone,
    OrderBookSnapshot,
    SentimentInput,
)


class ReadOnlyMarketDataAdmin(admin.ModelAdmin):
    """Rows written by importers and feeds: viewable and deletable, never hand-edited."""

    list_select_related = ["instrument"]
    # Candle tables reach millions of rows: skip the unfiltered COUNT(*) on every page.
    show_full_result_count = False
    list_per_page = 100

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin):
    list_display = ["__str__", "exchange", "symbol", "exchange_symbol", "market_type", "data_source", "is_active",
                    "tick_size", "step_size", "min_notional"]
    list_filter = ["exchange", "market_type", "data_source", "is_active"]
    search_fields = ["symbol", "exchange_symbol", "base", "quote"]
    list_editable = ["is_active"]
    readonly_fields = ["created_at"]
    actions = ["gap_report_action"]

    @admin.action(description="Gap report of stored candles")
    def gap_report_action(self, request, queryset):
        rows = gap_report(queryset)
        if not rows:
            self.message_user(request, "No candles stored for the selected instruments.", messages.WARNING)
        for row in rows:
            level = messages.WARNING if row.summary.gaps else messages.SUCCESS
            self.message_user(request, f"{row.instrument} {row.timeframe}: {format_summary(row.summary)}", level)


@admin.register(Candle)
class CandleAdmin(ReadOnlyMarketDataAdmin):
    list_display = ["instrument", "timeframe", "open_time", "open", "high", "low", "close", "volume", "trades"]
    list_filter = ["timeframe", "instrument__exchange", "instrument"]
    search_fields = ["instrument__exchange_symbol", "instrument__symbol"]
    date_hierarchy = "open_time"


@admin.register(DerivativesSample)
class DerivativesSampleAdmin(ReadOnlyMarketDataAdmin):
    list_display = ["instrument", "kind", "period", "ts", "funding_rate", "open_interest", "open_interest_value",
                    "mark_price", "index_price", "basis", "cvd"]
    list_filter = ["kind", "period", "instrument"]
    search_fields = ["instrument__exchange_symbol", "instrument__symbol"]
    date_hierarchy = "ts"


@admin.register(OrderBookSnapshot)
class OrderBookSnapshotAdmin(ReadOnlyMarketDataAdmin):
    list_display = ["instrument", "ts", "depth", "best_bid", "best_ask", "spread_bps"]
    list_filter = ["instrument", "depth"]
    search_fields = ["instrument__exchange_symbol", "instrument__symbol"]
    date_hierarchy = "ts"


@admin.register(EtfFlow)
class EtfFlowAdmin(admin.ModelAdmin):
    list_display = ["date", "asset", "fund", "net_flow_usd", "known_at", "source", "uploaded_by"]
    list_filter = ["asset", "fund"]
    search_fields = ["fund", "source"]
    date_hierarchy = "date"
    readonly_fields = ["uploaded_by"]

    def save_model(self, request, obj, form, change):
        # Who entered a flow matters when a figure later turns out wrong.
        obj.uploaded_by = obj.uploaded_by or request.user
        super().save_model(request, obj, form, change)


@admin.register(LiquidationZone)
class LiquidationZoneAdmin(admin.ModelAdmin):
    list_display = ["instrument", "side", "price_low", "price_high", "size_usd", "known_at", "valid_until", "source"]
    list_filter = ["side", "instrument"]
    search_fields = ["instrument__exchange_symbol", "source"]
    date_hierarchy = "known_at"
    list_select_related = ["instrument"]
    readonly_fields = ["uploaded_by"]

    def save_model(self, request, obj, form, change):
        obj.uploaded_by = obj.uploaded_by or request.user
        super().save_model(request, obj, form, change)


@admin.register(SentimentInput)
class SentimentInputAdmin(admin.ModelAdmin):
    """Readings are appended, never edited: a change is a new reading (the model's contract)."""

    list_display = ["known_at", "asset", "score", "source", "valid_until", "created_by", "created_at"]
    list_filter = ["asset", "source"]
    search_fields = ["source", "note"]
    date_hierarchy = "known_at"
    readonly_fields = ["created_by", "created_at"]

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        obj.created_by = obj.created_by or request.user
        super().save_model(request, obj, form, change)
