"""What stays on disk: checkpoints of the versions the policy keeps, uploads for a while."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from annotate import retention
from annotate.models import ImportJob, ModelVersion, TrainingRun


def _checkpoints(root: Path, run: TrainingRun) -> Path:
    directory = root / "models" / f"task-{run.task_id}" / f"run-{run.pk}"
    for name in ("full", "fold-0", "fold-1"):
        (directory / name).mkdir(parents=True)
        (directory / name / "model.safetensors").write_bytes(b"x" * 1000)
    return directory


@pytest.fixture
def versions(project, settings, tmp_path):
    """Five versions of act, v5 active and being scored, v2 pinned."""
    settings.DATA_DIR = tmp_path
    task = project.tasks.get(name="act")
    out = []
    for n in range(1, 6):
        run = TrainingRun.objects.create(task=task, status="succeeded")
        out.append(
            ModelVersion.objects.create(
                task=task,
                run=run,
                version=n,
                artifact_path=str(_checkpoints(tmp_path, run)),
                is_active=n == 5,
                pinned=n == 2,
                scored_at=None if n == 5 else timezone.now(),
            )
        )
    return out


def _left(version: ModelVersion) -> list[str]:
    return sorted(p.name for p in Path(version.artifact_path).glob("*"))


def test_the_active_the_newest_and_pinned_versions_keep_their_files(versions, settings):
    settings.PARLEY_KEEP_MODEL_VERSIONS = 2
    freed = retention.model_files_prune()
    v1, v2, v3, v4, v5 = versions
    assert _left(v1) == [] and _left(v3) == []
    assert _left(v2) == ["full"] and _left(v4) == ["full"]  # folds go once scored
    assert _left(v5) == ["fold-0", "fold-1", "full"]  # still being scored
    assert freed == 2 * 3000 + 2 * 2000
    assert ModelVersion.objects.filter(files_deleted_at__isnull=False).count() == 2
    assert retention.model_files_prune() == 0  # idempotent


def test_fold_models_can_be_kept(versions, settings):
    settings.PARLEY_KEEP_FOLD_MODELS = True
    retention.model_files_prune()
    assert _left(versions[3]) == ["fold-0", "fold-1", "full"]


def test_the_checkpoints_of_a_failed_run_go_once_it_is_over(
    project, settings, tmp_path
):
    settings.DATA_DIR = tmp_path
    task = project.tasks.get(name="act")
    failed = TrainingRun.objects.create(task=task, status="failed")
    running = TrainingRun.objects.create(task=task, status="running")
    gone, kept = _checkpoints(tmp_path, failed), _checkpoints(tmp_path, running)
    retention.model_files_prune()
    assert not gone.exists() and kept.exists()


def test_uploads_go_some_days_after_their_import_finished(project, settings):
    settings.PARLEY_KEEP_UPLOADS_DAYS = 7
    old, recent, queued = (
        ImportJob.objects.create(
            project=project,
            file=SimpleUploadedFile(f"{n}.jsonl", b"{}"),
            original_name=f"{n}.jsonl",
            format="jsonl",
            status=status,
            finished_at=finished,
        )
        for n, status, finished in [
            ("old", "failed", timezone.now() - timedelta(days=8)),
            ("recent", "succeeded", timezone.now() - timedelta(days=1)),
            ("queued", "queued", None),
        ]
    )
    path = Path(old.file.path)
    assert retention.uploads_prune() == 1
    assert not path.exists() and ImportJob.objects.get(pk=old.pk).file.name == ""
    assert Path(recent.file.path).exists() and Path(queued.file.path).exists()
