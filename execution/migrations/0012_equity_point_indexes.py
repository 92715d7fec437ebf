from django.db import migrations, models


class Migration(migrations.Migration):
    """Indexes for the risk facts read every decision (decisions.risk_state._facts_read).

    (account, equity, ts) finds the peak from the top of the index instead of scanning every point
    ever recorded; (account, ts, equity) answers the day's and the week's lows and start equities from
    the index alone.
    """

    dependencies = [
        ('execution', '0011_log_page_indexes'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='equitypoint',
            index=models.Index(fields=['account', 'equity_usdt', 'ts'], name='equity_account_value_ts'),
        ),
        migrations.AddIndex(
            model_name='equitypoint',
            index=models.Index(fields=['account', 'ts', 'equity_usdt'], name='equity_account_ts_value'),
        ),
    ]
