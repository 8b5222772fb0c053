"""The sweeper: every job whose message was lost or whose worker died is sent again or ended.

Run every PARLEY_SWEEP_EVERY_S seconds by Celery beat (`annotate.sweep`). A message is only a
nudge (annotate/jobs.py): the rows say what is left to do.

- queued longer than PARLEY_JOB_QUEUED_GRACE_S since its message was last sent (a broker
  outage, a purged queue): sent again. Workers claim rows with conditional updates, so a
  message that was only slow makes the second one a no-op.
- running without a sign of life for PARLEY_JOB_STALE_S (a worker killed, out of memory, a
  machine gone):
  * an import (its lock is free: nothing of it was written) goes back to the queue, and
    fails after IMPORT_MAX_ATTEMPTS starts (a file that kills its worker every time);
  * an LLM run whose lease ran out is sent again and resumes the pairs still missing;
  * a training run is failed (the active model stays), so the next retrain can start;
  * the scoring of the active version is sent again and scores what is still missing.
- then the retention policy (annotate/retention.py).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from . import retention, services
from .jobs import (
    IMPORT_TRANSCRIPTS,
    LLM_LABEL_RUN,
    SCORE_POOL,
    TRAIN_STUDENT,
    job_lock_is_free,
    send,
)
from .models import ImportJob, LlmRun, ModelVersion, TrainingRun

logger = logging.getLogger(__name__)

IMPORT_MAX_ATTEMPTS = 3


def jobs_sweep() -> dict[str, int]:
    """One pass over every kind of job; counts of what was done, by kind."""
    report = {
        "imports_resent": _resend_queued(ImportJob, IMPORT_TRANSCRIPTS),
        "imports_requeued": 0,
        "imports_failed": 0,
        "llm_runs_resent": _resend_llm_runs(),
        "trainings_resent": _resend_queued(TrainingRun, TRAIN_STUDENT),
        "trainings_failed": services.training_runs_fail_stale(),
        "scorings_resent": _resend_scorings(),
    }
    requeued, failed = _recover_imports()
    report["imports_requeued"], report["imports_failed"] = requeued, failed
    report["model_bytes_freed"] = retention.model_files_prune()
    report["uploads_deleted"] = retention.uploads_prune()
    done = {k: v for k, v in report.items() if v}
    if done:
        logger.info("sweep: %s", done)
    return report


def _grace_before() -> Any:
    return timezone.now() - timedelta(seconds=settings.PARLEY_JOB_QUEUED_GRACE_S)


def _resend(model: Any, task_name: str, due: Q) -> int:
    """Send again the message of every row that is `due` and whose message was last sent
    longer than the grace ago; note when it was sent."""
    rows = model.objects.annotate(last_sent=Coalesce("nudged_at", "created_at")).filter(
        due, last_sent__lt=_grace_before()
    )
    sent = 0
    for pk in rows.values_list("pk", flat=True):
        if send(task_name, pk):
            model.objects.filter(pk=pk).update(nudged_at=timezone.now())
            sent += 1
    return sent


def _resend_queued(model: Any, task_name: str) -> int:
    """Rows queued for longer than the grace (their message was lost, or is very late)."""
    return _resend(model, task_name, Q(status="queued"))


def _resend_llm_runs() -> int:
    """Queued runs whose message may be lost, and running ones whose lease ran out."""
    due = Q(status=LlmRun.Status.QUEUED) | Q(
        status=LlmRun.Status.RUNNING, lease_until__lt=timezone.now()
    )
    return _resend(LlmRun, LLM_LABEL_RUN, due)


def _resend_scorings() -> int:
    """The active version of a task whose scoring never finished and shows no sign of life."""
    versions = ModelVersion.objects.annotate(
        last_seen=Coalesce("scoring_heartbeat_at", "created_at")
    ).filter(
        is_active=True,
        scored_at__isnull=True,
        run__isnull=False,
        last_seen__lt=services.job_stale_before(),
    )
    sent = 0
    for pk, run_id in versions.values_list("pk", "run_id"):
        if send(SCORE_POOL, run_id):
            ModelVersion.objects.filter(pk=pk).update(
                scoring_heartbeat_at=timezone.now()
            )
            sent += 1
    return sent


def _recover_imports() -> tuple[int, int]:
    """Running imports whose worker is gone: back to the queue, or failed after a few tries."""
    running = ImportJob.objects.filter(
        status=ImportJob.Status.RUNNING, started_at__lt=_grace_before()
    )
    requeued = failed = 0
    for job in running:
        if not job_lock_is_free(services.IMPORT_LOCK, job.pk):
            continue  # a worker is importing it right now
        if job.attempts >= IMPORT_MAX_ATTEMPTS:
            failed += ImportJob.objects.filter(
                pk=job.pk, status=ImportJob.Status.RUNNING
            ).update(
                status=ImportJob.Status.FAILED,
                finished_at=timezone.now(),
                error=(
                    f"the worker stopped {job.attempts} times while importing this file "
                    "(killed, or out of memory); nothing was imported"
                ),
            )
            continue
        back = ImportJob.objects.filter(
            pk=job.pk, status=ImportJob.Status.RUNNING
        ).update(status=ImportJob.Status.QUEUED, nudged_at=timezone.now())
        if back:
            logger.warning("import job %s: its worker stopped; queued again", job.pk)
            send(IMPORT_TRANSCRIPTS, job.pk)
            requeued += 1
    return requeued, failed
