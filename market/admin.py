"""Admin for market data: instruments are edited; recorded market rows are read-only."""
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import content_disposition_header

from market.gaps import format_summary
from market.importer import gap_report
from market.ingest import candle_series_touch
from market.manual import selectors as manual_selectors
from market.manual import services as manual_services
from market.selectors import etf_coverage, instrument_coverage
from market.models import (
    Candle,
    DerivativesSample,
    EtfFlow,
    Instrument,
    LiquidationZone,
    ManualUpload,
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
                    "tick_size", "step_size", "min_notional", "coverage_link"]
    list_filter = ["exchange", "market_type", "data_source", "is_active"]
    search_fields = ["symbol", "exchange_symbol", "base", "quote"]
    list_editable = ["is_active"]
    readonly_fields = ["created_at"]
    actions = ["gap_report_action"]

    def get_urls(self):
        coverage = self.admin_site.admin_view(self.coverage_view)
        return [path("<int:pk>/coverage/", coverage, name="market_instrument_coverage"), *super().get_urls()]

    @admin.display(description="coverage")
    def coverage_link(self, obj):
        return format_html('<a href="{}">coverage</a>', reverse("admin:market_instrument_coverage", args=[obj.pk]))

    def coverage_view(self, request, pk: int):
        """Show each stored series' share of expected rows per day and its gaps."""
        instrument = get_object_or_404(Instrument, pk=pk)
        days = int(request.GET.get("days") or 30)
        end = timezone.now()
        if request.GET.get("all"):
            series = instrument_coverage(instrument)
        else:
            series = instrument_coverage(instrument, start=end - timedelta(days=days), end=end)
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "instrument": instrument,
                   "title": f"Coverage of {instrument}", "series": series, "days": days,
                   "all": bool(request.GET.get("all")),
                   "etf": etf_coverage(instrument.base, start=(end - timedelta(days=days)).date(), end=end.date())}
        return TemplateResponse(request, "admin/market/instrument/coverage.html", context)

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

    # A deleted bar changes its series: give it a new revision so the engine's bar cache reloads it
    # (market.ingest.candle_series_touch). Not a post_delete signal: it would load every row of a purge.
    def delete_model(self, request, obj):
        with transaction.atomic():
            super().delete_model(request, obj)
            candle_series_touch(instrument_id=obj.instrument_id, timeframe=obj.timeframe)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            series = list(queryset.order_by().values_list("instrument_id", "timeframe").distinct())
            super().delete_queryset(request, queryset)
            for instrument_id, timeframe in series:
                candle_series_touch(instrument_id=instrument_id, timeframe=timeframe)


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


class SentimentStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("current", "current"), ("superseded", "superseded by a correction")]

    def queryset(self, request, queryset):
        if self.value() in ("current", "superseded"):
            return queryset.filter(superseded_at__isnull=self.value() == "current")
        return queryset


class SentimentInputForm(forms.ModelForm):
    def clean(self):
        data = super().clean()
        known_at, valid_until = data.get("known_at"), data.get("valid_until")
        if known_at and known_at > timezone.now():
            self.add_error("known_at", "known_at is in the future; it may be earlier than now, never later")
        if known_at and valid_until and valid_until <= known_at:
            self.add_error("valid_until", "valid_until must be after known_at")
        return data


@admin.register(SentimentInput)
class SentimentInputAdmin(admin.ModelAdmin):
    """Readings are editable with history: saving a change stores a correction and keeps the old row."""

    list_display = ["known_at", "asset", "score", "source", "valid_until", "created_by", "created_at",
                    "superseded_at"]
    form = SentimentInputForm
    list_filter = [SentimentStatusFilter, "asset", "source"]
    search_fields = ["source", "note"]
    date_hierarchy = "known_at"
    fields = ["asset", "score", "source", "note", "known_at", "valid_until", "created_by", "created_at",
              "supersedes", "superseded_at", "history"]
    readonly_fields = ["created_by", "created_at", "supersedes", "superseded_at", "history"]

    def has_change_permission(self, request, obj=None):
        # A superseded version is history: only the latest version of a reading can be corrected.
        if obj is not None and obj.superseded_at is not None:
            return False
        return super().has_change_permission(request, obj)

    @admin.display(description="history (newest first)")
    def history(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        versions = manual_selectors.sentiment_history(obj)
        rows = format_html_join("", "<tr><td><a href=\"{}\">#{}</a></td><td>{}</td><td>{}</td><td>{}</td>"
                                    "<td>{}</td><td>{}</td><td>{}</td></tr>", (
            (reverse("admin:market_sentimentinput_change", args=[v.pk]), v.pk, v.score, v.source,
             f"{v.known_at:%Y-%m-%d %H:%M}", v.created_by or "-", f"{v.created_at:%Y-%m-%d %H:%M}",
             "current" if v.superseded_at is None else f"superseded {v.superseded_at:%Y-%m-%d %H:%M}")
            for v in versions))
        return format_html("<table><tr><th>row</th><th>score</th><th>source</th><th>known at</th><th>by</th>"
                           "<th>recorded</th><th>status</th></tr>{}</table>", rows)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = obj.created_by or request.user
            return super().save_model(request, obj, form, change)
        if not form.changed_data:
            return None
        original = SentimentInput.objects.get(pk=obj.pk)
        correction = manual_services.sentiment_correct(
            original=original, user=request.user, now=timezone.now(),
            **{name: form.cleaned_data[name] for name in form.changed_data})
        # The admin logs and redirects to `obj`: point it at the new version.
        obj.pk, obj.created_by, obj.created_at = correction.pk, correction.created_by, correction.created_at
        obj.supersedes_id = correction.supersedes_id


@admin.register(ManualUpload)
class ManualUploadAdmin(admin.ModelAdmin):
    """Uploaded files are a record: viewable and downloadable, never edited or deleted here."""

    list_display = ["uploaded_at", "kind", "filename", "size_bytes", "source", "known_at", "uploaded_by",
                    "rows_created", "rows_updated", "rows_unchanged", "download"]
    list_filter = ["kind"]
    search_fields = ["filename", "sha256", "source"]
    date_hierarchy = "uploaded_at"
    exclude = ["content"]
    readonly_fields = ["kind", "sha256", "filename", "size_bytes", "source", "known_at", "uploaded_by",
                       "uploaded_at", "rows_created", "rows_updated", "rows_unchanged", "download"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("content").select_related("uploaded_by")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        download = self.admin_site.admin_view(self.download_view)
        return [path("<int:pk>/download/", download, name="market_manualupload_download"), *super().get_urls()]

    @admin.display(description="original file")
    def download(self, obj):
        return format_html('<a href="{}">download</a>', reverse("admin:market_manualupload_download", args=[obj.pk]))

    def download_view(self, request, pk):
        upload = get_object_or_404(ManualUpload, pk=pk)
        if not self.has_view_permission(request, upload):
            return HttpResponse(status=403)
        return original_file_response(upload)


def original_file_response(upload: ManualUpload) -> HttpResponse:
    """Return the upload's bytes as an attachment under its original name."""
    response = HttpResponse(bytes(upload.content), content_type="application/json")
    response["Content-Disposition"] = content_disposition_header(True, upload.filename)
    return response
