"""Scoring a model version: predictions and the queue's trust for every utterance."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

import learner
from learner import (
    NO_PREVIOUS,
    CrossFitted,
    Example,
    TrustModel,
    Verifier,
    heuristic_trust,
    prompt_votes,
    trust_features,
)

from .. import dashboards, retention, selectors
from ..models import (
    HumanLabel,
    LabelTask,
    ModelVersion,
    Prediction,
    QueueItem,
    SoftLabel,
    Utterance,
)
from .budget import budget_calibrate
from .queue import queue_diversify
from .training import learner_config


def predictions_store(*, run_id: int, chunk_size: int = 2000) -> None:
    """Score every utterance of the task with the run's model version; refresh the queue.

    Predictions (stamped with the version) come from the full student. Trust uses the
    cross-fitted students: each utterance is scored by the fold model that did not train on
    its dialogue. With PARLEY_TRUST_MIN_HUMAN human labels (both outcomes present), a
    calibrated model is fitted on them (`TrustScorer`); before that, the heuristic. Then the
    diversity rule re-ranks the front of the queue (`queue_diversify`). Utterances already
    scored for this version are skipped, so a redelivered task only finishes the rest.
    """
    version = ModelVersion.objects.select_related("task").filter(run_id=run_id).first()
    if version is None:
        return
    task = version.task
    # The folds it was trained with (settings added since take today's default).
    config = {**learner_config(), **(version.run.config if version.run else {})}
    students = CrossFitted.load(
        version.artifact_path,
        int(config["folds"]),
        device=settings.LEARNER_DEVICE,
        backend=settings.LEARNER_INFERENCE,
    )
    context_turns = students.context_turns
    label_ids = list(task.ordered_labels().values_list("pk", flat=True))
    scorer = TrustScorer.fit(task, students, context_turns)
    ModelVersion.objects.filter(pk=version.pk).update(
        budget=budget_calibrate(
            task=task, students=students, context_turns=context_turns
        )
    )
    label_index = {pk: i for i, pk in enumerate(label_ids)}
    done = set(
        Prediction.objects.filter(model_version=version).values_list(
            "utterance_id", flat=True
        )
    )
    ids = [pk for pk in selectors.training_example_ids(task=task) if pk not in done]
    front = _Front(settings.PARLEY_DIVERSITY_WINDOW)
    for start in range(0, len(ids), chunk_size):
        ModelVersion.objects.filter(pk=version.pk).update(
            scoring_heartbeat_at=timezone.now()
        )
        chunk = ids[start : start + chunk_size]
        examples = selectors.training_examples(
            task=task, utterance_ids=chunk, context_turns=context_turns
        )
        by_student = dict(
            SoftLabel.objects.filter(
                task=task, utterance_id__in=chunk, source=SoftLabel.Source.STUDENT
            ).values_list("utterance_id", "label_id")
        )
        probabilities, _ = learner.predict(students.full, examples)
        student, embeddings = students.proba_and_embeddings(examples)
        values = scorer.trust(examples, student)
        # A label the student gave in budget mode: its trust is the student's probability
        # of it (there is no LLM answer to verify).
        for i, pk in enumerate(chunk):
            if pk in by_student:
                values[i] = probabilities[i, label_index[by_student[pk]]]
        front.add(chunk, values, embeddings)
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
                        priority=float(t),
                        trust_version=version,
                        trust_source=scorer.source,
                    )
                    for pk, t in zip(chunk, values, strict=True)
                    if pk in items
                ],
                ["trust", "priority", "trust_version", "trust_source"],
                batch_size=2000,
            )
    queue_diversify(task=task, embeddings=front.embeddings())
    # The live prediction API reads the active version through ONNX Runtime (no torch in the
    # web process): export it here, on the worker, once.
    learner.ensure_onnx(Path(version.artifact_path) / "full")
    ModelVersion.objects.filter(pk=version.pk).update(scored_at=timezone.now())
    retention.model_files_prune(task=task)
    # The new version starts a new dashboard snapshot: compute it here, on the worker, rather
    # than on the first lead who looks.
    dashboards.dashboard_compute(task=task)


@dataclass
class _Front:
    """The embeddings of the `size` least trusted utterances seen so far (the front of the
    queue, where the diversity rule looks for near-duplicates), kept as chunks stream by."""

    size: int
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    trust: np.ndarray = field(default_factory=lambda: np.zeros(0))
    vectors: np.ndarray | None = None

    def add(self, ids: list[int], trust: np.ndarray, vectors: np.ndarray) -> None:
        if not len(ids) or vectors.shape[1] == 0:
            return
        all_ids = np.concatenate([self.ids, np.asarray(ids, dtype=np.int64)])
        all_trust = np.concatenate([self.trust, np.asarray(trust, dtype=np.float64)])
        all_vectors = (
            vectors if self.vectors is None else np.concatenate([self.vectors, vectors])
        )
        keep = np.argsort(all_trust, kind="stable")[: self.size]
        self.ids, self.trust = all_ids[keep], all_trust[keep]
        self.vectors = all_vectors[keep].astype(np.float32)

    def embeddings(self) -> dict[int, np.ndarray]:
        if self.vectors is None:
            return {}
        return dict(zip(self.ids.tolist(), self.vectors, strict=True))


@dataclass
class TrustScorer:
    """`trust(examples, student probabilities)`: P(the LLM label is right) for a chunk of
    utterances, from the model fitted on the human answers (docs/active-loop.md).

    PARLEY_TRUST_VERIFIER=verifier (the default): a `Verifier` on the ensemble and student
    signals, the prompts' reliability, the LLM label's class accuracy and its accuracy after
    the previous turn's LLM label, learnt from the answers, calibrated on the audit answers
    (weighted by 1/π). `signals`: the previous trust, a `TrustModel` on the ensemble and
    student signals only. Before PARLEY_TRUST_MIN_HUMAN answers with both outcomes, the
    heuristic.
    """

    n_classes: int
    source: str = QueueItem.TrustSource.HEURISTIC
    model: TrustModel | None = None
    verifier: Verifier | None = None
    n_prompts: int = 0

    @classmethod
    def fit(
        cls, task: LabelTask, students: CrossFitted, context_turns: int
    ) -> TrustScorer:
        """Fit on the task's answered utterances (each scored by the student that did not
        see its dialogue)."""
        scorer = cls(task.labels.count())
        answered = set(
            HumanLabel.objects.filter(task=task).values_list("utterance_id", flat=True)
        )
        if len(answered) < settings.PARLEY_TRUST_MIN_HUMAN:
            return scorer
        ids = list(
            Utterance.objects.filter(pk__in=answered)
            .order_by("dialogue_id", "position")
            .values_list("pk", flat=True)
        )
        examples = selectors.training_examples(
            task=task, utterance_ids=ids, context_turns=context_turns
        )
        keep = [i for i, ex in enumerate(examples) if ex.llm and ex.human is not None]
        examples, ids = [examples[i] for i in keep], [ids[i] for i in keep]
        features = trust_features(examples, scorer.n_classes, students.proba(examples))
        labels = _llm_labels(examples)
        truth = np.array([ex.human for ex in examples])
        right = labels == truth
        if (
            len(examples) < settings.PARLEY_TRUST_MIN_HUMAN
            or right.all()
            or not right.any()
        ):
            return scorer  # a calibration needs both right and wrong LLM labels
        scorer.source = QueueItem.TrustSource.CALIBRATED
        if settings.PARLEY_TRUST_VERIFIER == "signals":
            scorer.model = TrustModel().fit(features, right.astype(float))
            return scorer
        served = {
            pk: (audit, probability)
            for pk, audit, probability in QueueItem.objects.filter(
                task=task, utterance_id__in=ids
            ).values_list("utterance_id", "audit", "selection_probability")
        }
        audit = np.array([served.get(pk, (False, None))[0] for pk in ids])
        weights = np.array(
            [1.0 / (served.get(pk, (False, None))[1] or 1.0) for pk in ids]
        )
        scorer.n_prompts = max(len(ex.llm) for ex in examples)
        scorer.verifier = Verifier(scorer.n_classes).fit(
            features,
            prompt_votes([ex.llm for ex in examples], scorer.n_prompts),
            labels,
            truth,
            previous=_previous_labels(examples),
            audit=audit,
            weights=weights,
        )
        return scorer

    def trust(self, examples: list[Example], student: np.ndarray) -> np.ndarray:
        """(N,) trust of a chunk; 0 for an utterance without an LLM label."""
        features = trust_features(examples, self.n_classes, student)
        if self.model is not None:
            values = self.model.predict(features)
        elif self.verifier is not None:
            values = self.verifier.predict(
                features,
                prompt_votes([ex.llm for ex in examples], self.n_prompts),
                _llm_labels(examples),
                previous=_previous_labels(examples),
            )
        else:
            values = heuristic_trust(features)
        has_llm = np.array([bool(ex.llm) for ex in examples])
        return np.asarray(np.where(has_llm, values, 0.0))


def _previous_labels(examples: list[Example]) -> np.ndarray:
    """Each utterance's previous turn's LLM label (`NO_PREVIOUS` where there is none)."""
    return np.array(
        [
            NO_PREVIOUS if ex.previous_label is None else ex.previous_label
            for ex in examples
        ],
        dtype=np.int64,
    )


def _llm_labels(examples: list[Example]) -> np.ndarray:
    """Each utterance's LLM label (argmax ȳ; 0 where there is none: its trust is 0)."""
    return np.array([int(np.argmax(ex.soft)) if ex.llm else 0 for ex in examples])
