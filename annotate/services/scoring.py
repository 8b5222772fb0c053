"""Scoring a model version: predictions and the queue's trust for every utterance."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

import learner
from learner import (
    CrossFitted,
    Example,
    TrustModel,
    Verifier,
    heuristic_trust,
    prompt_votes,
    trust_features,
)

from .. import dashboards, retention, selectors
from ..models import HumanLabel, LabelTask, ModelVersion, Prediction, QueueItem
from .training import learner_config


def predictions_store(*, run_id: int, chunk_size: int = 2000) -> None:
    """Score every utterance of the task with the run's model version; refresh the queue's trust.

    Predictions (stamped with the version) come from the full student. Trust uses the
    cross-fitted students: each utterance is scored by the fold model that did not train on
    its dialogue. With PARLEY_TRUST_MIN_HUMAN human labels (both outcomes present), a
    calibrated TrustModel is fitted on them; before that, the heuristic. Utterances already
    scored for this version are skipped, so a redelivered task only finishes the rest.
    """
    version = ModelVersion.objects.select_related("task").filter(run_id=run_id).first()
    if version is None:
        return
    task = version.task
    # The folds it was trained with (settings added since take today's default).
    config = {**learner_config(), **(version.run.config if version.run else {})}
    students = CrossFitted.load(
        version.artifact_path, int(config["folds"]), device=settings.LEARNER_DEVICE
    )
    context_turns = students.full.config.context_turns
    label_ids = list(task.ordered_labels().values_list("pk", flat=True))
    calibrated = _trust_model(task, students, context_turns)
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
        examples = selectors.training_examples(
            task=task, utterance_ids=chunk, context_turns=context_turns
        )
        probabilities = learner.predict_proba(students.full, examples).numpy()
        features = trust_features(examples, len(label_ids), students.proba(examples))
        values = (
            calibrated(examples, features) if calibrated else heuristic_trust(features)
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
                [
                    Prediction(
                        utterance_id=pk,
                        task=task,
                        model_version=version,
                        probabilities=[round(float(p), 6) for p in probs],
                        label_id=label_ids[int(probs.argmax())],
                        trust=float(t),
                    )
                    for pk, probs, t in zip(chunk, probabilities, values, strict=True)
                ],
                ignore_conflicts=True,
            )
            items = dict(
                QueueItem.objects.filter(task=task, utterance_id__in=chunk).values_list(
                    "utterance_id", "pk"
                )
            )
            QueueItem.objects.bulk_update(
                [
                    QueueItem(
                        pk=items[pk],
                        trust=float(t),
                        trust_version=version,
                        trust_source=source,
                    )
                    for pk, t in zip(chunk, values, strict=True)
                    if pk in items
                ],
                ["trust", "trust_version", "trust_source"],
                batch_size=2000,
            )
    ModelVersion.objects.filter(pk=version.pk).update(scored_at=timezone.now())
    retention.model_files_prune(task=task)
    # The new version starts a new dashboard snapshot: compute it here, on the worker, rather
    # than on the first lead who looks.
    dashboards.dashboard_compute(task=task)


def _trust_model(
    task: LabelTask, students: CrossFitted, context_turns: int
) -> Callable[[list[Example], Any], Any] | None:
    """A calibrated trust model from the human labels, once there are enough of both outcomes:
    `(examples, their trust_features) -> P(LLM label right)`.

    PARLEY_TRUST_VERIFIER=signals (the default): the TrustModel on the ensemble and student
    signals; `prompts`: a `Verifier`, which adds the prompts' reliability and the LLM label's
    class accuracy learnt from the answers (docs/active-loop.md).
    """
    labelled = list(
        HumanLabel.objects.filter(task=task)
        .values_list("utterance_id", flat=True)
        .distinct()
    )
    if len(labelled) < settings.PARLEY_TRUST_MIN_HUMAN:
        return None
    examples = [
        ex
        for ex in selectors.training_examples(
            task=task, utterance_ids=labelled, context_turns=context_turns
        )
        if ex.llm and ex.human is not None
    ]
    n_classes = task.labels.count()
    features = trust_features(examples, n_classes, students.proba(examples))
    labels = np.array([int(np.argmax(ex.soft)) for ex in examples])
    truth = np.array([ex.human for ex in examples])
    right = labels == truth
    if (
        len(examples) < settings.PARLEY_TRUST_MIN_HUMAN
        or right.all()
        or not right.any()
    ):
        return None  # a calibration needs both right and wrong LLM labels
    if settings.PARLEY_TRUST_VERIFIER == "signals":
        model = TrustModel().fit(features, right.astype(float))
        return lambda _examples, signals: model.predict(signals)
    n_prompts = max(len(ex.llm) for ex in examples)
    verifier = Verifier(n_classes).fit(
        features, prompt_votes([ex.llm for ex in examples], n_prompts), labels, truth
    )

    def predict(batch: list[Example], signals: Any) -> Any:
        # Utterances without an LLM label get 0 from the caller; any label index will do.
        batch_labels = np.array(
            [int(np.argmax(ex.soft)) if ex.llm else 0 for ex in batch]
        )
        votes = prompt_votes([ex.llm for ex in batch], n_prompts)
        return verifier.predict(signals, votes, batch_labels)

    return predict
