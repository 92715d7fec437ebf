from django import forms
from django.contrib import admin
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from execution.models import Account, BacktestRun, EquityPoint, Fill, Order, Position
from execution.secrets import account_key_hint, account_keys_set

KEY_FIELDS = ("api_key", "api_secret")


class AccountForm(forms.ModelForm):
    """Account fields plus write-only exchange keys: typed in, never shown again."""

    # render_value=False: a re-displayed form (a validation error) must not echo what was typed.
    api_key = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                              help_text="Leave blank to keep the stored key.")
    api_secret = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                                 help_text="Leave blank to keep the stored secret.")
    clear_keys = forms.BooleanField(required=False, help_text="Remove the stored key and secret.")

    class Meta:
        model = Account
        fields = ["name", "broker", "exchange_id", "starting_balance_usdt"]

    def clean(self):
        data = super().clean()
        if data.get("clear_keys"):
            if data.get("api_key") or data.get("api_secret"):
                raise forms.ValidationError("Either clear the keys or enter new ones, not both.")
            return data
        has_key = bool(data.get("api_key") or self.instance.api_key_encrypted)
        has_secret = bool(data.get("api_secret") or self.instance.api_secret_encrypted)
        if has_key != has_secret:
            raise forms.ValidationError("Enter both the API key and its secret.")
        return data


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    form = AccountForm
    list_display = ["name", "broker", "starting_balance_usdt", "balance_usdt", "api_key_hint", "created_at"]
    list_filter = ["broker"]
    readonly_fields = ["balance_usdt", "api_key_hint", "created_at"]

    @admin.display(description="API key")
    def api_key_hint(self, obj):
        return account_key_hint(obj) if obj.pk else "not set"

    @method_decorator(sensitive_post_parameters(*KEY_FIELDS))
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return super().changeform_view(request, object_id, form_url, extra_context)

    @method_decorator(sensitive_variables("api_key", "api_secret"))
    def save_model(self, request, obj, form, change):
        """Save the account, then any new keys through account_keys_set (encrypted, audited)."""
        if not change:
            obj.balance_usdt = obj.starting_balance_usdt  # a new account starts with its starting balance
        super().save_model(request, obj, form, change)
        clear = form.cleaned_data.get("clear_keys") and bool(obj.api_key_encrypted or obj.api_secret_encrypted)
        api_key = "" if clear else form.cleaned_data.get("api_key") or None
        api_secret = "" if clear else form.cleaned_data.get("api_secret") or None
        account_keys_set(account=obj, api_key=api_key, api_secret=api_secret,
                         actor=request.user.get_username(), now=timezone.now())


class FillInline(admin.TabularInline):
    model = Fill
    extra = 0
    can_delete = False
    readonly_fields = ["trade_id", "ts", "price", "quantity", "fee_usdt", "liquidity"]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["created_at", "client_order_id", "instrument", "leg", "side", "type", "quantity",
                    "average_price", "status", "account"]
    list_filter = ["status", "side", "type", "leg", "account", "instrument"]
    search_fields = ["client_order_id", "exchange_order_id", "intent_id"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Order._meta.fields]
    inlines = [FillInline]

    def has_add_permission(self, request):
        return False  # orders go through the OMS only


@admin.register(Position)
class PositionAdmin(admin.ModelAdmin):
    list_display = ["opened_at", "instrument", "side", "status", "quantity", "entry_price", "stop_price",
                    "target_price", "exit_price", "exit_reason", "realized_pnl_usdt", "account"]
    list_filter = ["status", "side", "exit_reason", "account", "instrument"]
    date_hierarchy = "opened_at"
    readonly_fields = [f.name for f in Position._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(EquityPoint)
class EquityPointAdmin(admin.ModelAdmin):
    list_display = ["ts", "account", "equity_usdt", "balance_usdt", "unrealized_pnl_usdt"]
    list_filter = ["account"]
    date_hierarchy = "ts"
    readonly_fields = [f.name for f in EquityPoint._meta.fields]
@admin.register(BacktestRun)
class BacktestRunAdmin(admin.ModelAdmin):
    """Runs are results: read them here, start them with `manage.py backtest`."""

    list_display = ("pk", "instrument", "timeframe", "start", "end", "status", "bars_done", "bars_total",
                    "final_equity_usdt", "code_version", "created_at")
    list_filter = ("status", "instrument", "timeframe")
    readonly_fields = [f.name for f in BacktestRun._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


from execution import admin_reconciliation  # noqa: E402,F401  (registers ReconciliationRun)
