from decimal import Decimal

from django.db import migrations, models


def open_margins_fill(apps, schema_editor):
    """Give each open paper position (one with a liquidation price) the margin its stored price implies.

    The inverse of execution.brokers.paper_model.liquidation_price (kept here as it stands today, so
    the migration does not change with the code): WB = LP x (Q x MMR - side x Q) + side x Q x EP,
    at the configured maintenance fraction. Such a position is then liquidated as before this
    change (the maintenance margin at its price is the fee); positions opened after it store the
    exact margin. Closed positions keep none: nothing more is booked on them.
    """
    alias = schema_editor.connection.alias
    Position = apps.get_model("execution", "Position")
    TradingConfig = apps.get_model("decisions", "TradingConfig")
    config = TradingConfig.objects.using(alias).order_by("pk").first()
    mmr = config.maintenance_margin_fraction if config else \
        TradingConfig._meta.get_field("maintenance_margin_fraction").default
    for position in Position.objects.using(alias).filter(status="open", liquidation_price__isnull=False,
                                                         margin_usdt__isnull=True):
        direction = 1 if position.side == "LONG" else -1
        quantity = position.quantity
        position.margin_usdt = (position.liquidation_price * (quantity * mmr - direction * quantity)
                                + direction * quantity * position.entry_price).quantize(Decimal("0.00000001"))
        position.save(update_fields=["margin_usdt"])


class Migration(migrations.Migration):
    """Position.margin_usdt: the isolated margin behind the paper model's liquidation price.

    A paper liquidation now takes what is left of it as the clearance fee, so the loss is the whole
    margin to the cent; before, the fee was the maintenance rate of the notional at the tick-rounded
    liquidation price, which fell short of it by up to a tick times the quantity.
    """

    dependencies = [
        ('execution', '0014_order_position_marker'),
        ('decisions', '0012_log_page_indexes'),
    ]

    operations = [
        migrations.AddField(
            model_name='position',
            name='margin_usdt',
            field=models.DecimalField(blank=True, decimal_places=10, editable=False,
                                      help_text="isolated margin behind the paper model's liquidation price; "
                                                "a liquidation loses all of it",
                                      max_digits=28, null=True),
        ),
        migrations.RunPython(open_margins_fill, migrations.RunPython.noop, elidable=True),
    ]
