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
