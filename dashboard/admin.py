from django.contrib import admin

from dashboard.models import LiveEvent


@admin.register(LiveEvent)
class LiveEventAdmin(admin.ModelAdmin):
    list_display = ["id", "event", "created_at"]
    list_filter = ["event"]
    readonly_fields = ["event", "data", "created_at"]
