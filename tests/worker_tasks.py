"""A task for the worker tests only (`celery worker -I tests.worker_tasks`): one that is
still running when the test kills its worker."""

from __future__ import annotations

import time

from celery import shared_task


@shared_task(name="tests.sleep")
def sleep(seconds: float) -> None:
    time.sleep(seconds)
