"""Scoring a model version: predictions and the queue's trust for every utterance."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from learner import trust
from learner.data import Example

from .. import selectors
from ..models import (
    HumanLabel,
    LabelTask,
    ModelVersion,
    Prediction,
    QueueItem,
)
from .training import fold_of


def predictions_store(*, run_id: int, chunk_size: int = 2000) -> None:
    """Score every utterance of the task with the run's model version; refresh the queue's trust.

    Predictions (stamped with the version) come from the full student. Trust uses the
    cross-fitted students: each utterance is scored by the fold model that did not train on
    its dialogue. With PARLEY_TRUST_MIN_HUMAN human labels (both outcomes present), a
    calibrated TrustModel is fitted on them; before that, the heuristic. Utterances already
    scored for this version are skipped, so a redelivered task only finishes the rest.
    """
    from learner import checkpoint
    from learner.training import predict_proba

    version = ModelVersion.objects.select_related("task").filter(run_id=run_id).first()
    if version is None:
        return
    task = version.task
    directory = Path(version.artifact_path)
    folds = int(
        (version.run.config if version.run else {}).get(
            "folds", settings.PARLEY_TRUST_FOLDS
        )
    )
    full, _ = checkpoint.load(directory / "full", device=settings.LEARNER_DEVICE)

    def fold_model(k: int) -> Any:
        # A fold trained on nothing has no model (see _train_and_save): its dialogues are
        # scored by the full student, the only one there is, which has seen them.
        path = directory / f"fold-{k}"
        if not path.exists():
            return full
        return checkpoint.load(path, device=settings.LEARNER_DEVICE)[0]

    fold_models = [fold_model(k) for k in range(folds)]
    label_ids = list(task.labels.order_by("order", "pk").values_list("pk", flat=True))

    def cross_fitted(examples: list[Example]) -> np.ndarray:
        out = np.zeros((len(examples), len(label_ids)))
        for k, model in enumerate(fold_models):
            index = [
                i
                for i, ex in enumerate(examples)
                if fold_of(ex.dialogue_id, folds) == k
            ]
            if index:
                out[index] = predict_proba(model, [examples[i] for i in index]).numpy()
        return out

    calibrated = _trust_model(task, cross_fitted)
    done = set(
        Prediction.objects.filter(model_version=version).values_list(
            "utterance_id", flat=True
        )
    )
    ids = [pk for pk in selectors.training_example_ids(task=task) if pk not in done]
    for start in range(0, len(ids), chunk_size):
        ModelVersion.objects.filter(pk=version.pk).update(
            scoring_heartbeat_at=timezone.now()
        )
        chunk = ids[start : start + chunk_size]
        examples = selectors.training_examples(task=task, utterance_ids=chunk)
        probabilities = predict_proba(full, examples).numpy()
        features = _trust_features(examples, len(label_ids), cross_fitted(examples))
        values = (
            calibrated.predict(features)
            if calibrated
            else trust.heuristic_trust(features)
        )
        has_llm = np.array([bool(ex.llm) for ex in examples])
        values = np.where(has_llm, values, 0.0)
        source = (
            QueueItem.TrustSource.CALIBRATED
            if calibrated
            else QueueItem.TrustSource.HEURISTIC
        )
        with transaction.atomic():
            Prediction.objects.bulk_create(
                [Prediction(utterance_id=pk, task=task, model_version=version,
                            probabilities=[round(float(p), 6) for p in probs],
                            label_id=label_ids[int(probs.argmax())], trust=float(t))
                 for pk, probs, t in zip(chunk, probabilities, values, strict=True)],
                ignore_conflicts=True,
            )  # fmt: skip
            items = dict(
                QueueItem.objects.filter(task=task, utterance_id__in=chunk).values_list(
                    "utterance_id", "pk"
                )
            )
            QueueItem.objects.bulk_update(
                [QueueItem(pk=items[pk], trust=float(t), trust_version=version, trust_source=source)
                 for pk, t in zip(chunk, values, strict=True) if pk in items],
                ["trust", "trust_version", "trust_source"], batch_size=2000,
            )  # fmt: skip
    ModelVersion.objects.filter(pk=version.pk).update(scored_at=timezone.now())
    from .. import retention

    retention.model_files_prune(task=task)
    # The new version starts a new dashboard snapshot: compute it here, on the worker, rather
    # than on the first lead who looks.
    from .. import dashboards

    dashboards.dashboard_compute(task=task)


def _trust_features(
    examples: list[Example], n_classes: int, student: np.ndarray
) -> np.ndarray:
    soft = np.array(
        [ex.soft if ex.llm else [1.0 / n_classes] * n_classes for ex in examples]
    )
    agree = np.array([ex.agreement if ex.llm else 0.0 for ex in examples])
    return trust.signals(soft, agree, student)


def _trust_model(
    task: LabelTask, cross_fitted: Callable[[list[Example]], np.ndarray]
) -> trust.TrustModel | None:
    """A calibrated trust model from the human labels, once there are enough of both outcomes."""
    labelled = list(
        HumanLabel.objects.filter(task=task)
        .values_list("utterance_id", flat=True)
        .distinct()
    )
    if len(labelled) < settings.PARLEY_TRUST_MIN_HUMAN:
        return None
    examples = [ex for ex in selectors.training_examples(task=task, utterance_ids=labelled)
                if ex.llm and ex.human is not None]  # fmt: skip
    n_classes = task.labels.count()
    features = _trust_features(examples, n_classes, cross_fitted(examples))
    right = np.array([float(np.argmax(ex.soft) == ex.human) for ex in examples])
    if len(examples) < settings.PARLEY_TRUST_MIN_HUMAN or right.min() == right.max():
        return None
    return trust.TrustModel().fit(features, right)
