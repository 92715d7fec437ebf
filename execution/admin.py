from django.contrib import admin

from execution.models import Account, EquityPoint, Fill, Order, Position


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["name", "broker", "starting_balance_usdt", "balance_usdt", "created_at"]
    list_filter = ["broker"]
    readonly_fields = ["balance_usdt", "created_at"]


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
