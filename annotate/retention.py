"""What Parley keeps on disk: model checkpoints and uploaded files (docs/operations.md).

- Checkpoints: the active model version, the PARLEY_KEEP_MODEL_VERSIONS newest versions
  (counting the active one) and any pinned version keep their files; the others lose them.
  Fold models (the cross-fitting students) are only needed to score the pool: they go once
  their version is scored, unless PARLEY_KEEP_FOLD_MODELS. Directories of runs that never
  became a version (failed trainings) go once the run is over.
- Uploads: an import's file goes PARLEY_KEEP_UPLOADS_DAYS days after the import finished
  (succeeded or failed).

Run after each scoring and by the sweeper; each pass is idempotent.
"""

from __future__ import annotations

import logging
import shutil
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from .models import ImportJob, LabelTask, ModelVersion, TrainingRun

logger = logging.getLogger(__name__)


def model_files_prune(*, task: LabelTask | None = None) -> int:
    """Delete the checkpoints the policy does not keep (one task's, or all); bytes freed."""
    tasks = [task] if task is not None else list(LabelTask.objects.all())
    return sum(_prune_task(t) for t in tasks)


def _prune_task(task: LabelTask) -> int:
    versions = list(
        ModelVersion.objects.filter(task=task, files_deleted_at__isnull=True).order_by(
            "-version"
        )
    )
    keep = {v.pk for v in versions[: settings.PARLEY_KEEP_MODEL_VERSIONS]}
    keep |= {v.pk for v in versions if v.is_active or v.pinned}
    freed = 0
    for version in versions:
        directory = Path(version.artifact_path)
        if version.pk not in keep:
            freed += _remove(directory)
            ModelVersion.objects.filter(pk=version.pk).update(
                files_deleted_at=timezone.now()
            )
        elif version.scored_at and not settings.PARLEY_KEEP_FOLD_MODELS:
            freed += sum(_remove(fold) for fold in directory.glob("fold-*"))
    return freed + _prune_orphan_runs(task)


def _prune_orphan_runs(task: LabelTask) -> int:
    """Checkpoints of runs that ended without a version (a training that failed late)."""
    root = Path(settings.DATA_DIR) / "models" / f"task-{task.pk}"
    if not root.is_dir():
        return 0
    with_version = set(
        ModelVersion.objects.filter(task=task).values_list("run_id", flat=True)
    )
    active = set(
        TrainingRun.objects.filter(
            task=task, status__in=TrainingRun.ACTIVE_STATUSES
        ).values_list("pk", flat=True)
    )
    freed = 0
    for directory in root.glob("run-*"):
        run_id = directory.name.removeprefix("run-")
        if run_id.isdigit() and int(run_id) not in with_version | active:
            freed += _remove(directory)
    return freed


def uploads_prune() -> int:
    """Delete the files of imports finished PARLEY_KEEP_UPLOADS_DAYS ago or more; files gone."""
    before = timezone.now() - timedelta(days=settings.PARLEY_KEEP_UPLOADS_DAYS)
    jobs = ImportJob.objects.filter(
        status__in=[ImportJob.Status.SUCCEEDED, ImportJob.Status.FAILED],
        finished_at__lte=before,
    ).exclude(file="")
    gone = 0
    for job in jobs:
        job.file.delete(save=False)
        ImportJob.objects.filter(pk=job.pk).update(file="")
        gone += 1
    return gone


def _remove(path: Path) -> int:
    """Delete a file or directory tree; the bytes it held (0 if it was not there)."""
    if not path.exists():
        return 0
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    shutil.rmtree(path, ignore_errors=True)
    logger.info("retention: deleted %s (%d bytes)", path, size)
    return size
