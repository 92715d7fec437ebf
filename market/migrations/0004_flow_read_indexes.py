from django.db import migrations, models


class Migration(migrations.Migration):
    """Indexes for the flow's inputs read every decision (analytics.inputs.flow_inputs_load).

    (instrument, kind, ts) bounds each derivatives kind's look-back: the unique key puts the period
    before ts, so the read scanned every stored sample of each kind (a year of 5m open interest,
    mark/index and CVD is ~300,000 rows, ~300 ms a read). (instrument or asset, valid_until,
    known_at) finds the liquidation zones and sentiment readings still valid at as_of (valid_until
    later, or none and known inside the look-back) instead of every row known before it.
    """

    dependencies = [
        ('market', '0003_candle_series'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='derivativessample',
            index=models.Index(fields=['instrument', 'kind', 'ts'], name='derivatives_instrument_kind_ts'),
        ),
        migrations.AddIndex(
            model_name='liquidationzone',
            index=models.Index(fields=['instrument', 'valid_until', 'known_at'], name='liq_instrument_valid_known'),
        ),
        migrations.AddIndex(
            model_name='sentimentinput',
            index=models.Index(fields=['asset', 'valid_until', 'known_at'], name='sentiment_asset_valid_known'),
        ),
    ]
