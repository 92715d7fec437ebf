"""Admin of reconciliation runs: read-only, with the operator's acknowledgement as the one action."""
import json

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html

from execution.models import ReconciliationRun
from execution.reconciliation import reconciliation_acknowledge


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(admin.ModelAdmin):
    """Runs are written by reconciliation alone; acknowledging one opens trading after an unclean start-up."""

    list_display = ["started_at", "account", "trigger", "clean", "difference_count", "action_count", "short_error",
                    "acknowledged_by", "acknowledged_at"]
    list_filter = ["trigger", "clean", "account"]
    date_hierarchy = "started_at"
    actions = ["acknowledge"]
    fields = ["account", "trigger", "started_at", "finished_at", "clean", "error", "acknowledged_by",
              "acknowledged_at", "differences_table", "actions_table"]
    readonly_fields = fields

    @admin.display(description="differences")
    def difference_count(self, run):
        return len(run.differences)

    @admin.display(description="actions")
    def action_count(self, run):
        return len(run.actions)

    @admin.display(description="error")
    def short_error(self, run):
        return run.error[:80]

    @admin.display(description="differences")
    def differences_table(self, run):
        return _pre(run.differences)

    @admin.display(description="actions and outcomes")
    def actions_table(self, run):
        return _pre(run.actions)

    @admin.action(description="Acknowledge the selected runs (allows trading despite their differences)",
                  permissions=["change"])
    def acknowledge(self, request, queryset):
        done = [reconciliation_acknowledge(run=run, actor=request.user.get_username(), now=timezone.now())
                for run in queryset]
        self.message_user(request, f"{len(done)} reconciliation run(s) acknowledged by {request.user.get_username()}.",
                          messages.SUCCESS)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the record of what differed and what was done stays


def _pre(rows) -> str:
    return format_html("<pre>{}</pre>", json.dumps(rows, indent=2))
