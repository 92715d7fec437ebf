from django import forms
from django.contrib import admin, messages
from django.utils import timezone

from decisions.approvals import ApprovalRefused, decision_approve, decision_reject, decision_snooze
from decisions.control import config_version_save
from decisions.models import AuditRecord, Decision, GateOverride, TradingConfig
from decisions.overrides import OverrideRefused, gate_override_create, gate_override_revoke, override_check
from decisions.risk.wall import GATE_ORDER


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
        ("Entry rule: structure", {"fields": ["structure_timeframes"]}),
        ("Strategies", {"fields": ["strategies", "strategy_aggregation", "strategy_weights"]}),
        ("Edge (weights sum to 1)", {"fields": ["edge_weight_fvg", "edge_weight_risk_reward", "edge_weight_news",
                                                 "edge_weight_whale", "edge_weight_onchain", "edge_weight_obi",
                                                 "edge_weight_flow", "edge_threshold", "edge_mtf_agree_bonus",
                                                 "edge_mtf_conflict_penalty"]}),
        ("Fusion (sum to 1)", {"fields": ["fusion_technical_weight", "fusion_model_weight"]}),
        ("Approvals and expiry", {"fields": ["auto_approve_confidence", "decision_ttl_minutes", "snooze_minutes",
                                             "max_entry_drift_atr"]}),
        ("Levels", {"fields": ["stop_mode", "sl_atr_multiple", "structure_buffer_atr", "structure_max_atr",
                               "tp_r_multiples", "tp_shares", "rr_min", "breakeven_after_tp1",
                               "trail_atr_multiple"]}),
        ("Risk", {"fields": ["risk_per_trade_fraction", "daily_loss_limit_fraction", "max_leverage",
                              "max_margin_fraction", "max_cost_to_target_fraction"]}),
        ("Risk wall", {"fields": ["weekly_drawdown_fraction", "max_drawdown_fraction", "loss_streak", "sl_streak",
                                  "max_trades_per_day", "max_open_positions", "risk_timezone", "trading_start",
                                  "trading_end", "news_mute_minutes", "cooldown_minutes", "volatility_percentile",
                                  "volatility_size_factor", "max_spread_bps", "rate_window_minutes",
                                  "max_orders_per_window", "max_turnover_equity_multiple", "max_correlation",
                                  "min_volume_24h_usdt", "min_profit_factor", "profit_factor_min_trades"]}),
        ("Why", {"fields": ["change_reason"]}),
        ("Execution on a venue", {"fields": ["tp_order_style", "stop_working_type", "shutdown_flatten"]}),
        ("Paper fills", {"fields": ["taker_fee_fraction", "slippage_bps"]}),
    ]

    def has_add_permission(self, request):
        # One configuration row: edit it, do not add a second.
        return not TradingConfig.objects.exists()

    form = TradingConfigForm

    def save_model(self, request, obj, form, change):
        """Save as a new version and append each changed field to the audit chain: who, what, why."""
        changed = [name for name in form.changed_data if name != "change_reason"]
        config_version_save(config=obj, changed=changed, initial=form.initial, reason=form.cleaned_data["change_reason"],
                            actor=request.user.get_username(), now=timezone.now())

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Decision)
class DecisionAdmin(admin.ModelAdmin):
    list_display = ["as_of", "instrument", "timeframe", "action", "outcome", "approval", "mode", "confidence",
                    "entry_price", "stop_price", "quantity", "expires_at", "reason"]
    list_filter = ["action", "outcome", "approval", "mode", "timeframe", "instrument"]
    search_fields = ["reason"]
    date_hierarchy = "as_of"
    readonly_fields = [f.name for f in Decision._meta.fields]
    actions = ["approve", "reject", "snooze"]

    def has_add_permission(self, request):
        return False  # the journal is written by the engine only

    def _each(self, request, queryset, verb: str, act) -> None:
        done = 0
        for decision in queryset.order_by("as_of"):
            try:
                act(decision_id=decision.pk, actor=request.user.get_username(), now=timezone.now())
                done += 1
            except ApprovalRefused as exc:
                self.message_user(request, f"{decision}: {exc}", messages.ERROR)
        if done:
            self.message_user(request, f"{verb} {done} decision(s)", messages.SUCCESS)

    @admin.action(description="Approve the selected pending decisions (execute now)", permissions=["change"])
    def approve(self, request, queryset):
        self._each(request, queryset, "approved", decision_approve)

    @admin.action(description="Reject the selected pending decisions", permissions=["change"])
    def reject(self, request, queryset):
        self._each(request, queryset, "rejected", lambda **kw: decision_reject(note="rejected in the admin", **kw))

    @admin.action(description="Snooze the selected pending decisions", permissions=["change"])
    def snooze(self, request, queryset):
        self._each(request, queryset, "snoozed", decision_snooze)


class GateOverrideForm(forms.ModelForm):
    gate = forms.ChoiceField(choices=[(name, name) for name in GATE_ORDER])

    class Meta:
        model = GateOverride
        fields = ["gate", "until", "reason"]

    def clean(self):
        data = super().clean()
        if {"gate", "until", "reason"} <= data.keys():
            try:
                override_check(gate=data["gate"], until=data["until"], reason=data["reason"], now=timezone.now())
            except OverrideRefused as exc:
                raise forms.ValidationError(str(exc)) from None
        return data


@admin.register(GateOverride)
class GateOverrideAdmin(admin.ModelAdmin):
    """Overrides are created and revoked through the services, which audit them; they are never edited."""

    form = GateOverrideForm
    list_display = ["gate", "until", "created_by", "created_at", "revoked_at", "reason"]
    list_filter = ["gate"]
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in GateOverride._meta.fields] if obj else []

    def save_model(self, request, obj, form, change):
        if change:
            return
        created = gate_override_create(gate=obj.gate, until=obj.until, reason=obj.reason,
                                       actor=request.user.get_username(), now=timezone.now())
        obj.pk = created.pk

    @admin.action(description="Revoke the selected overrides now")
    def revoke(self, request, queryset):
        for override in queryset:
            gate_override_revoke(override=override, actor=request.user.get_username(), now=timezone.now())

    def has_delete_permission(self, request, obj=None):
        return False


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
