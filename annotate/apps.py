from __future__ import annotations

from django.apps import AppConfig


class AnnotateConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "annotate"
    verbose_name = "Parley"

    def ready(self) -> None:
        # Register the Celery tasks in every process, not only in workers (which autodiscover
        # them): services send tasks by name (annotate/jobs.py), from the web process too.
        from . import tasks  # noqa: F401
