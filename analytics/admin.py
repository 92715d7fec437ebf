from django.contrib import admin

from analytics.models import Snapshot


@admin.register(Snapshot)
class SnapshotAdmin(admin.ModelAdmin):
    list_display = ["as_of", "instrument", "timeframe", "close", "atr", "trend", "momentum"]
    list_filter = ["timeframe", "trend", "momentum", "instrument"]
    date_hierarchy = "as_of"
    readonly_fields = [f.name for f in Snapshot._meta.fields]
