from django.db import migrations, models


class Migration(migrations.Migration):
    """Indexes for the risk state read every decision (decisions.risk_state).

    (ts, order) finds the account's last fill from the top of the index instead of joining every
    order the account ever placed to its fills; (account, status, closed_at) finds the trades
    closed since the day's start instead of every position of the instrument.
    """

    dependencies = [
        ('execution', '0012_equity_point_indexes'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='fill',
            index=models.Index(fields=['ts', 'order'], name='fill_ts_order'),
        ),
        migrations.AddIndex(
            model_name='position',
            index=models.Index(fields=['account', 'status', 'closed_at'], name='position_account_status_closed'),
        ),
    ]
