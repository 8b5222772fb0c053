"""Import jobs: an uploaded file imported on a worker (the admin upload and the API)."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..jobs import IMPORT_TRANSCRIPTS, enqueue_on_commit, hold_job_lock
from ..models import (
    ImportJob,
    Project,
)
from ..transcripts import (
    TranscriptError,
    format_for,
)
from .imports import check_file_size, transcripts_import

logger = logging.getLogger(__name__)


def import_job_create(
    *,
    project: Project,
    upload: UploadedFile,
    user: User | None,
    fmt: str | None = None,
    update: bool = False,
) -> ImportJob:
    """Store an uploaded file and queue its import on a worker.

    The job exists once this returns, even if the broker is down: its message is then sent
    by the sweeper (annotate/jobs.py).
    """
    name = upload.name or "upload"
    fmt = fmt or format_for(name)
    check_file_size(upload.size or 0, name)
    with transaction.atomic():
        job = ImportJob.objects.create(
            project=project,
            file=upload,
            original_name=name,
            format=fmt,
            update_existing=update,
            created_by=user,
            nudged_at=timezone.now(),
        )
        enqueue_on_commit(IMPORT_TRANSCRIPTS, job.pk)
    return job


IMPORT_LOCK = "import"


def import_job_execute(*, job_id: int) -> None:
    """Run a queued import job; a job already claimed (a redelivery) is left alone.

    The import, its queue items and the job's "succeeded" are one transaction, which holds
    the job's lock while it runs: a worker killed anywhere in it leaves the database as it
    was and the job "running" under a free lock, which the sweeper puts back in the queue.
    """
    claimed = ImportJob.objects.filter(
        pk=job_id, status=ImportJob.Status.QUEUED
    ).update(
        status=ImportJob.Status.RUNNING,
        started_at=timezone.now(),
        attempts=F("attempts") + 1,
    )
    if not claimed:
        return
    job = ImportJob.objects.select_related("project").get(pk=job_id)

    def progress(done: int, total: int) -> None:
        cache.set(job.progress_cache_key, (done, total), timeout=24 * 3600)

    try:
        with transaction.atomic():
            hold_job_lock(IMPORT_LOCK, job_id)
            with job.file.open("rb") as stream:
                result = transcripts_import(
                    project=job.project,
                    stream=stream,
                    name=job.original_name,
                    fmt=job.format,
                    update=job.update_existing,
                    on_progress=progress,
                )
            _import_job_finish(
                job_id, status=ImportJob.Status.SUCCEEDED, **result.as_dict()
            )
    except TranscriptError as exc:
        _import_job_finish(job_id, status=ImportJob.Status.FAILED, error=str(exc))
    except Exception as exc:
        logger.exception("import job %s failed", job_id)
        _import_job_finish(
            job_id, status=ImportJob.Status.FAILED, error=f"internal error: {exc}"
        )
        raise


def _import_job_finish(job_id: int, **fields: Any) -> None:
    ImportJob.objects.filter(pk=job_id).update(finished_at=timezone.now(), **fields)


def import_job_progress(job: ImportJob) -> float:
    """Share of the file read so far, 0..1."""
    if job.is_finished:
        return 1.0
    value = cache.get(job.progress_cache_key)
    if not value:
        return 0.0
    done, total = value
    return min(1.0, done / total) if total else 0.0
