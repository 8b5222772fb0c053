"""Training runs (design: annotate/queue.md, "Retrain"): request, claim, train, activate."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

import learner

from .. import selectors
from ..jobs import SCORE_POOL, TRAIN_STUDENT, enqueue_on_commit
from ..models import (
    HumanLabel,
    LabelTask,
    ModelVersion,
    TrainingRun,
)

logger = logging.getLogger(__name__)


def training_run_request(
    *, task: LabelTask, requested_by: User | None = None
) -> TrainingRun:
    """Queue a training run for `task`, or return the one queued or running.

    At most one active run per task is a database constraint, so two requests racing each
    other end with one run.
    """
    training_runs_fail_stale(task=task)
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(
                task=task,
                requested_by=requested_by,
                config=learner_config(),
                nudged_at=timezone.now(),
            )
            enqueue_on_commit(TRAIN_STUDENT, run.pk)
    except IntegrityError:
        return TrainingRun.objects.get(
            task=task, status__in=TrainingRun.ACTIVE_STATUSES
        )
    return run


def job_stale_before() -> Any:
    """A running job whose last sign of life is older than this is taken for dead
    (PARLEY_JOB_STALE_S)."""
    return timezone.now() - timedelta(seconds=settings.PARLEY_JOB_STALE_S)


def training_runs_fail_stale(*, task: LabelTask | None = None) -> int:
    """A run whose worker died (no progress for PARLEY_JOB_STALE_S) would block every later
    run of the task (one active run per task): mark it failed so that a new one can start.
    Every task's, or one task's."""
    runs = TrainingRun.objects.filter(
        status=TrainingRun.Status.RUNNING, heartbeat_at__lt=job_stale_before()
    )
    if task is not None:
        runs = runs.filter(task=task)
    return runs.update(
        status=TrainingRun.Status.FAILED,
        finished_at=timezone.now(),
        error="the worker stopped reporting progress (crashed or killed); nothing was changed",
    )


def _is_stale(run: TrainingRun) -> bool:
    return (
        run.status == TrainingRun.Status.RUNNING
        and run.heartbeat_at is not None
        and run.heartbeat_at < job_stale_before()
    )


def training_run_maybe_request(*, task: LabelTask) -> TrainingRun | None:
    """Start a retrain once PARLEY_RETRAIN_EVERY human labels arrived since the last run."""
    last = TrainingRun.objects.filter(task=task).order_by("-created_at").first()
    if (
        last is not None
        and last.status in TrainingRun.ACTIVE_STATUSES
        and not _is_stale(last)
    ):
        return None  # (a stale one is failed by training_run_request, only when it matters)
    new = HumanLabel.objects.filter(task=task, retraction__isnull=True).exclude(
        source=HumanLabel.Source.IMPORT
    )
    if last is not None:
        new = new.filter(created_at__gt=last.created_at)
    if (
        new.order_by()[: settings.PARLEY_RETRAIN_EVERY].count()
        < settings.PARLEY_RETRAIN_EVERY
    ):
        return None  # counted up to the threshold only: cheap however many labels exist
    return training_run_request(task=task)


def learner_config() -> dict[str, Any]:
    """The learner settings a training run records (LEARNER_*, PARLEY_TRUST_FOLDS)."""
    return {
        "backbone": settings.LEARNER_BACKBONE,
        "objective": settings.LEARNER_OBJECTIVE,
        "kd_weight": settings.LEARNER_KD_WEIGHT,
        "finetune_min_human": settings.LEARNER_FINETUNE_MIN_HUMAN,
        "pretrain_kd_weight": settings.LEARNER_PRETRAIN_KD_WEIGHT,
        "epochs": settings.LEARNER_EPOCHS,
        "batch_size": settings.LEARNER_BATCH_SIZE,
        "max_length": settings.LEARNER_MAX_LENGTH,
        "context_turns": settings.LEARNER_CONTEXT_TURNS,
        "device": settings.LEARNER_DEVICE,
        "folds": settings.PARLEY_TRUST_FOLDS,
        "precision": settings.LEARNER_PRECISION,
    }


def learner_configs(
    config: dict[str, Any], labels: list[str], *, human_labels: int = 0
) -> tuple[Any, Any]:
    """The StudentConfig and TrainingConfig of a run's recorded config (the one builder).

    Two-stage training (the objective on the LLM labels at λ_kd `pretrain_kd_weight`, then
    the human labels alone) once the task has `finetune_min_human` human labels
    (`human_labels`; 0 turns it off); one stage on everything at λ_kd `kd_weight` before.
    """
    finetune = int(config["finetune_min_human"])
    two_stage = 0 < finetune <= human_labels
    student = learner.StudentConfig(
        labels=labels,
        backbone=config["backbone"],
        context_turns=config["context_turns"],
        max_length=config["max_length"],
    )
    training = learner.TrainingConfig(
        objective=config["objective"],
        kd_weight=config["pretrain_kd_weight" if two_stage else "kd_weight"],
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        device=config["device"],
        precision=config["precision"],
        two_stage=two_stage,
    )
    return student, training


def training_run_execute(*, run_id: int) -> None:
    """Train the student of a queued run, then activate it and queue the pool's scoring.

    Trains one student on everything (the model that is exported and predicts) and one per
    dialogue fold on the other folds (for cross-fitted trust signals). Claimed with a
    conditional update, so a redelivered task does nothing. Training happens outside any
    transaction; the new ModelVersion is activated in one. On any error the run is marked
    failed with the error and the active model stays as it was.
    """
    claimed = TrainingRun.objects.filter(
        pk=run_id, status=TrainingRun.Status.QUEUED
    ).update(
        status=TrainingRun.Status.RUNNING,
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
        progress=0.0,
    )
    if not claimed:
        return
    run = TrainingRun.objects.select_related("task").get(pk=run_id)
    try:
        version = _train_and_save(run)
    except Exception as exc:
        logger.exception("training run %s failed", run_id)
        TrainingRun.objects.filter(pk=run_id).update(
            status=TrainingRun.Status.FAILED,
            error=f"{type(exc).__name__}: {exc}",
            finished_at=timezone.now(),
        )
        return
    with transaction.atomic():
        ModelVersion.objects.filter(task=run.task, is_active=True).update(
            is_active=False
        )
        ModelVersion.objects.create(**version, is_active=True)
        TrainingRun.objects.filter(pk=run_id).update(
            status=TrainingRun.Status.SUCCEEDED,
            progress=1.0,
            finished_at=timezone.now(),
            metrics=version["metrics"],
        )
        enqueue_on_commit(SCORE_POOL, run.pk)


def _train_and_save(run: TrainingRun) -> dict[str, Any]:
    task = run.task
    # A run records the settings it started with; ones added since take today's default.
    config = {**learner_config(), **run.config}
    labels = list(task.ordered_labels().values_list("value", flat=True))
    examples = [
        ex
        for ex in selectors.training_examples(
            task=task, context_turns=config["context_turns"]
        )
        if ex.has_target
    ]
    if not examples:
        raise ValueError("no utterance of this task has an LLM or a human label yet")
    human_labels = sum(ex.human is not None for ex in examples)
    student_config, training = learner_configs(
        config, labels, human_labels=human_labels
    )
    jobs = learner.training_sets(examples, int(config["folds"]))
    number = (
        ModelVersion.objects.filter(task=task).aggregate(n=Max("version"))["n"] or 0
    ) + 1
    directory = Path(settings.DATA_DIR) / "models" / f"task-{task.pk}" / f"run-{run.pk}"
    metrics: dict[str, Any] = {}
    last_write = 0.0
    for j, (name, data) in enumerate(jobs):

        def progress(p: Any, j: int = j) -> None:  # learner.Progress
            nonlocal last_write
            if time.monotonic() - last_write > 1.0 or p.fraction >= 1.0:
                last_write = time.monotonic()
                TrainingRun.objects.filter(pk=run.pk).update(
                    progress=min((j + p.fraction) / len(jobs), 0.99),
                    heartbeat_at=timezone.now(),
                )

        result = learner.train(data, student_config, training, on_progress=progress)
        if name == "full":
            metrics = {
                "validation": result.validation.as_dict()
                if result.validation
                else None,
                "history": result.history,
                "seconds": result.seconds,
                "best_epoch": result.best_epoch,
                "precision": result.precision,
                "train_utterances": len(data),
                "human_labels": sum(ex.human is not None for ex in data),
                "two_stage": training.two_stage,
                "kd_weight": training.kd_weight,
            }
        learner.save_student(
            result.student,
            directory / name,
            version=number,
            metrics=metrics,
            training=config,
        )
    return {
        "task": task,
        "run": run,
        "version": number,
        "artifact_path": str(directory),
        "metrics": metrics,
    }
