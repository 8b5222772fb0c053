"""The Celery application (Celery docs, "First steps with Django")."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotate.settings")

app = Celery("annotate")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _pool_child_leaves_the_process_group(**_: Any) -> None:
    """A prefork pool child moves to a process group of its own. A TERM (or a terminal's
    Ctrl+C) sent to the worker's group — `make run`'s honcho stops its processes so — then
    reaches the main process only, whose warm shutdown lets running tasks finish and stops
    the children; otherwise the children die first and the worker logs an ERROR for each
    ("Process 'ForkPoolWorker-1' … exited with 'signal 15 (SIGTERM)'").

    Out of the group, a child still ends with its parent: Celery's prefork pool gives its
    children PR_SET_PDEATHSIG=SIGKILL, so a main process killed outright (honcho's SIGKILL
    5 s after its TERM, the OOM killer) takes them along, busy or not (tested)."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
