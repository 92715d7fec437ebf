from django.apps import AppConfig


class ExecutionConfig(AppConfig):
    default_auto_field = 'django.db.models.BigAutoField'
    name = 'execution'

    def ready(self):
        from django_q.signals import post_spawn

        # A django-q2 worker runs the engine's cycles: its start-up heap is never garbage again.
        post_spawn.connect(_worker_spawned, dispatch_uid="execution.heap_freeze")


def _worker_spawned(sender, proc_name=None, **kwargs) -> None:
    from tradingbot.heap import heap_freeze

    heap_freeze()
