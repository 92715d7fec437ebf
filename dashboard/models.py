"""The live-event outbox: how worker processes reach websocket clients without Redis."""
from django.db import models


class LiveEvent(models.Model):
    """An event written by a worker process, relayed to the web process's channel layer.

    Only used with the in-memory channel layer, which cannot cross processes; with
    channels-redis, events go straight to the layer.
    """

    event = models.CharField(max_length=32)
    data = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.event} #{self.pk}"
