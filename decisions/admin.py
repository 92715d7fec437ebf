from django import forms
from django.contrib import admin
from django.db.models import F
from django.db import transaction
from django.utils import timezone

from decisions.audit_services import config_change_audit
from decisions.models import AuditRecord, Decision, TradingConfig


class TradingConfigForm(forms.ModelForm):
    change_reason = forms.CharField(max_length=255, help_text="why: kept in the audit log with the change")

    class Meta:
        model = TradingConfig
        fields = "__all__"


@admin.register(TradingConfig)
class TradingConfigAdmin(admin.ModelAdmin):
    list_display = ["__str__", "version", "mode", "paused", "decision_timeframe", "risk_per_trade_fraction",
                    "daily_loss_limit_fraction", "max_leverage", "updated_at"]
    fieldsets = [
        ("Routing", {"fields": ["mode", "paused", "safe_until"]}),
        ("Analysis", {"fields": ["decision_timeframe", "history_bars", "atr_period", "pivot_length", "momentum_period",
                                  "allow_data_gaps"]}),
        ("Multi-timeframe weights (sum to 1)", {"fields": ["mtf_weight_15m", "mtf_weight_1h", "mtf_weight_4h",
                                                          "mtf_weight_1d", "mtf_weight_1w"]}),
        ("Entry rule: flow filters", {"fields": ["rule_max_funding_long", "rule_min_funding_short",
                                                 "rule_oi_falling_pct", "rule_max_global_risk",
                                                 "rule_use_liquidations", "rule_use_etf_flows",
                                                 "rule_blocking_warnings"]}),
        ("Levels", {"fields": ["sl_atr_multiple", "tp_r_multiples", "tp_shares", "rr_min", "breakeven_after_tp1"]}),
        ("Risk", {"fields": ["risk_per_trade_fraction", "daily_loss_limit_fraction", "max_leverage",
                              "max_cost_to_target_fraction"]}),
        ("Risk wall", {"fields": ["weekly_drawdown_fraction", "max_drawdown_fraction", "loss_streak", "sl_streak",
                                  "max_trades_per_day", "max_open_positions", "risk_timezone", "trading_start",
                                  "trading_end", "news_mute_minutes", "cooldown_minutes", "volatility_percentile",
                                  "volatility_size_factor", "max_spread_bps", "rate_window_minutes",
                                  "max_orders_per_window", "max_turnover_equity_multiple", "max_correlation",
                                  "min_volume_24h_usdt", "min_profit_factor", "profit_factor_min_trades"]}),
        ("Why", {"fields": ["change_reason"]}),
        ("Paper fills", {"fields": ["taker_fee_fraction", "slippage_bps"]}),
    ]

    def has_add_permission(self, request):
        # One configuration row: edit it, do not add a second.
        return not TradingConfig.objects.exists()

    form = TradingConfigForm

    def save_model(self, request, obj, form, change):
        """Save as a new version and append each changed field to the audit chain: who, what, why."""
        changed = [name for name in form.changed_data if name != "change_reason"]
        with transaction.atomic():
            if change and changed:
                obj.version = F("version") + 1
            super().save_model(request, obj, form, change)
            obj.refresh_from_db(fields=["version"])
            config_change_audit(config=obj, changed=changed, initial=form.initial, reason=form.cleaned_data["change_reason"],
                                actor=request.user.get_username(), now=timezone.now())

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Decision)
class DecisionAdmin(admin.ModelAdmin):
    list_display = ["as_of", "instrument", "timeframe", "action", "outcome", "mode", "entry_price", "stop_price",
                    "target_price", "quantity", "reason"]
    list_filter = ["action", "outcome", "mode", "timeframe", "instrument"]
    search_fields = ["reason"]
    date_hierarchy = "as_of"
    readonly_fields = [f.name for f in Decision._meta.fields]

    def has_add_permission(self, request):
        return False  # the journal is written by the engine only


@admin.register(AuditRecord)
class AuditRecordAdmin(admin.ModelAdmin):
    """Read-only: the chain is written by audit_append alone, and an edit here would break it."""

    list_display = ["seq", "ts", "kind", "actor", "subject", "short_hash"]
    list_filter = ["kind", "actor"]
    search_fields = ["subject"]
    date_hierarchy = "ts"
    readonly_fields = [f.name for f in AuditRecord._meta.fields]

    @admin.display(description="hash")
    def short_hash(self, obj):
        return f"{obj.hash[:12]}..."

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
