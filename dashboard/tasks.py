"""django-q2 entry points of the dashboard: the workers' heartbeat and the every-minute self-test."""
from django.utils import timezone

from dashboard.health import health_record, health_report, heartbeat_record


def heartbeat_beat() -> str:
    """Stamp the django-q2 heartbeat: a worker that runs this is taking scheduled tasks."""
    beat = heartbeat_record(now=timezone.now())
    return f"heartbeat {beat.beat_at:%H:%M:%S} from {beat.host} pid {beat.pid}"


def health_run() -> str:
    """Run the self-test, store it and push it to the dashboards as a "health" event."""
    report = health_report()
    health_record(report)
    return "ok" if report["ok"] else f"{report['failing']} failing: {', '.join(report['failing_names'])}"
