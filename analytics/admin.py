from django.contrib import admin

from analytics.models import Flow, Snapshot


@admin.register(Snapshot)
class SnapshotAdmin(admin.ModelAdmin):
    list_display = ["as_of", "instrument", "timeframe", "close", "atr", "trend", "momentum"]
    list_filter = ["timeframe", "trend", "momentum", "instrument"]
    date_hierarchy = "as_of"
    readonly_fields = [f.name for f in Snapshot._meta.fields]


class TrapLevelFilter(admin.SimpleListFilter):
    title = "trap index"
    parameter_name = "trap"
    BANDS = {"low": (0.0, 0.3), "medium": (0.3, 0.6), "high": (0.6, 1.01)}

    def lookups(self, request, model_admin):
        return [(k, f"{k} ({lo:g}-{min(hi, 1):g})") for k, (lo, hi) in self.BANDS.items()]

    def queryset(self, request, queryset):
        if self.value() in self.BANDS:
            low, high = self.BANDS[self.value()]
            return queryset.filter(trap_index__gte=low, trap_index__lt=high)
        return queryset


class WarningsFilter(admin.SimpleListFilter):
    title = "warnings"
    parameter_name = "warned"

    def lookups(self, request, model_admin):
        return [("yes", "with warnings"), ("no", "without warnings")]

    def queryset(self, request, queryset):
        # JSON list equality works the same on SQLite and MariaDB; containment lookups do not.
        if self.value() == "no":
            return queryset.filter(warnings=[])
        if self.value() == "yes":
            return queryset.exclude(warnings=[])
        return queryset


@admin.register(Flow)
class FlowAdmin(admin.ModelAdmin):
    """Read-only: flows are written by analytics.services.flow_run only."""

    list_display = ["as_of", "instrument", "crowd_bias", "trap_index", "global_risk_score", "warning_names"]
    list_filter = [TrapLevelFilter, WarningsFilter, "instrument"]
    date_hierarchy = "as_of"
    readonly_fields = [f.name for f in Flow._meta.fields]

    @admin.display(description="warnings")
    def warning_names(self, obj):
        return ", ".join(w.get("name", "") for w in obj.warnings) or "-"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
