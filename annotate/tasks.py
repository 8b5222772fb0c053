"""Celery tasks: thin wrappers that take primary keys and call one service."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from . import dashboards, services, sweeper
from .jobs import (
    DASHBOARD_REFRESH,
    IMPORT_TRANSCRIPTS,
    LLM_LABEL_RUN,
    SCORE_POOL,
    SWEEP,
    TRAIN_STUDENT,
)
from .models import LabelTask


@shared_task(
    name=IMPORT_TRANSCRIPTS,
    acks_late=True,  # the service claims the job with a conditional update: redelivery is a no-op
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
    soft_time_limit=3 * 3600,
    time_limit=3 * 3600 + 300,
)
def import_transcripts(job_id: int) -> None:
    services.import_job_execute(job_id=job_id)


@shared_task(
    name=LLM_LABEL_RUN,
    acks_late=True,  # the run is claimed under a lease and resumes missing pairs: redelivery is safe
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
    soft_time_limit=3 * 3600 + 1800,  # under the broker's 4 h visibility timeout
    time_limit=3 * 3600 + 2100,
)
def llm_label_run(run_id: int) -> None:
    services.llm_run_execute(run_id=run_id)


@shared_task(
    name=TRAIN_STUDENT,
    # Not acks_late: a training interrupted by a crash is not restarted on its own (the
    # sweeper fails the run once its heartbeat stops); never two trainings from one message.
    soft_time_limit=6 * 3600,
    time_limit=6 * 3600 + 300,
)
def train_student(run_id: int) -> None:
    services.training_run_execute(run_id=run_id)


@shared_task(
    name=SCORE_POOL,
    acks_late=True,  # skips utterances already scored for the version: redelivery is harmless
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
    soft_time_limit=3 * 3600 + 1800,
    time_limit=3 * 3600 + 2100,
)
def score_pool(run_id: int) -> None:
    services.predictions_store(run_id=run_id)


@shared_task(name=DASHBOARD_REFRESH, soft_time_limit=240, time_limit=300)
def dashboard_refresh(task_id: int) -> None:
    """Recompute a task's dashboard snapshot (queued when a lead sees one older than a minute)."""
    task = LabelTask.objects.filter(pk=task_id).first()
    if task is not None:
        dashboards.dashboard_compute(task=task)


@shared_task(name=SWEEP, soft_time_limit=240, time_limit=300)
def sweep() -> None:
    """Send again the jobs whose message was lost; recover or fail those whose worker died;
    apply the retention policy (annotate/sweeper.py). Run by Celery beat."""
    sweeper.jobs_sweep()
