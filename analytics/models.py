"""Stored market snapshots: what the analytics saw at the close of a bar."""
from django.db import models

from market.models import Instrument, Timeframe


class Snapshot(models.Model):
    """The features of one instrument/timeframe as of `as_of` (close of the last bar used)."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="snapshots")
    timeframe = models.CharField(max_length=4, choices=Timeframe.choices)
    as_of = models.DateTimeField()
    close = models.DecimalField(max_digits=28, decimal_places=10)
    atr = models.FloatField()
    trend = models.CharField(max_length=8)
    momentum = models.CharField(max_length=8)
    features = models.JSONField(help_text="every computed feature, JSON-safe")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["instrument", "timeframe", "as_of"], name="uniq_snapshot")]
        ordering = ["-as_of"]
        get_latest_by = "as_of"

    def __str__(self):
        return f"{self.instrument} {self.timeframe} @ {self.as_of:%Y-%m-%d %H:%M}"


class Flow(models.Model):
    """The flow view of one instrument as of `as_of`: crowd bias, trap index, global risk, and why."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="flows")
    as_of = models.DateTimeField(help_text="only inputs known by then were used")
    crowd_bias = models.FloatField(help_text="-1..1, positive = crowd long")
    trap_index = models.FloatField(help_text="0..1, how likely the crowded side gets squeezed")
    global_risk_score = models.FloatField(help_text="0..100")
    warnings = models.JSONField(default=list, help_text='[{"name", "detail"}]')
    parts = models.JSONField(default=dict, help_text="each output with its parts (name, value, weight, contribution)")
    inputs = models.JSONField(default=list, help_text="each input: count, latest time (ms), status")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # The unique constraint is also the (instrument, as_of) index the history pages read by.
        constraints = [models.UniqueConstraint(fields=["instrument", "as_of"], name="uniq_flow")]
        indexes = [models.Index(fields=["as_of"], name="flow_as_of")]
        ordering = ["-as_of"]
        get_latest_by = "as_of"

    def __str__(self):
        return f"{self.instrument} flow @ {self.as_of:%Y-%m-%d %H:%M}"
