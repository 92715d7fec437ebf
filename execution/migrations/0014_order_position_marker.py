import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Exists, OuterRef, Subquery


def entry_orders_mark(apps, schema_editor):
    """Mark every entry order of a decision that has a position on its account with that position (the first by id).

    The rule execution.entries applies when it books: one UPDATE with a correlated lookup per order
    (the position's decision index), so a year of history is marked in one statement.
    """
    Order = apps.get_model("execution", "Order")
    Position = apps.get_model("execution", "Position")
    positions = Position.objects.using(schema_editor.connection.alias).filter(
        account_id=OuterRef("account_id"), decision_id=OuterRef("decision_id"))
    (Order.objects.using(schema_editor.connection.alias)
     .filter(leg__startswith="entry", decision__isnull=False, position__isnull=True)
     .filter(Exists(positions))
     .update(position_id=Subquery(positions.order_by("pk").values("pk")[:1])))


class Migration(migrations.Migration):
    """Order.position: the position an entry order's trade was booked into, and the index the
    engine's per-cycle read of entries to book (execution.entries.entries_to_sync) uses with it.

    Without it that read scanned every filled entry order and position of the account (16-18 ms a
    cycle at a year of trades); with it, only the unbooked orders and the open positions' ones.
    Reversing drops the field; the marking has nothing to undo.
    """

    dependencies = [
        ('execution', '0013_risk_read_indexes'),
    ]

    operations = [
        migrations.AddField(
            model_name='order',
            name='position',
            field=models.ForeignKey(blank=True, db_index=False,
                                    help_text='entry orders: the position their fills were booked into', null=True,
                                    on_delete=django.db.models.deletion.SET_NULL, related_name='entry_orders',
                                    to='execution.position'),
        ),
        migrations.AddIndex(
            model_name='order',
            index=models.Index(fields=['position', 'account', 'leg', 'filled_quantity'],
                               name='order_position_account_leg'),
        ),
        migrations.RunPython(entry_orders_mark, migrations.RunPython.noop, elidable=True),
    ]
