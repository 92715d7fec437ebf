"""The live-event outbox: how worker processes reach websocket clients without Redis."""
from django.core.serializers.json import DjangoJSONEncoder
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


class WorkerHeartbeat(models.Model):
    """The last moment a django-q2 worker ran the heartbeat task (dashboard.tasks.heartbeat_beat).

    django-q2 keeps its own cluster status in Django's cache, which is per process with the
    default local-memory cache; the database is shared, so the web process reads liveness here.
    """

    name = models.CharField(max_length=32, unique=True, help_text='what beats, e.g. "django-q2"')
    beat_at = models.DateTimeField()
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)

    def __str__(self):
        return f"{self.name} beat at {self.beat_at:%Y-%m-%d %H:%M:%S}"


class HealthCheckRun(models.Model):
    """One stored self-test (dashboard.health.health_report), written by the every-minute health task."""

    checked_at = models.DateTimeField(db_index=True)
    ok = models.BooleanField()
    failing = models.PositiveSmallIntegerField(default=0)
    checks = models.JSONField(default=list, encoder=DjangoJSONEncoder,
                              help_text="[{name, group, ok, detail, checked_at, latency_ms}]")

    class Meta:
        ordering = ["-checked_at"]

    def __str__(self):
        return f"health @ {self.checked_at:%Y-%m-%d %H:%M:%S}: {'ok' if self.ok else f'{self.failing} failing'}"
