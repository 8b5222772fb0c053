"""LLM budget mode: the active student labels the utterances it is sure of; the LLM the rest.

At scoring (`budget_calibrate`), every human answer whose utterance also has an LLM label is
scored by the cross-fitted student that never saw its dialogue; the version keeps, per answer,
that confidence and the human's, the student's and the LLM's labels. Before an LLM run
(`budget_student_label`), `learner.choose_threshold` turns those answers into the confidence
above which the student loses at most the task's `budget_tolerance` against the LLM, in
accuracy and in macro-F1, and the student's distribution becomes the soft label of every
utterance without an LLM answer that it is that sure of (`SoftLabel.source = student`); the
run asks the LLM for the rest only.

The answers the queue serves are where the LLM is weakest, which would flatter the student:
when enough of them exist (PARLEY_BUDGET_MIN_ANSWERS), only the uniformly drawn ones count
(audit answers and imported human labels).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef

import learner
from learner import BudgetThreshold, CrossFitted, choose_threshold

from .. import selectors
from ..models import (
    HumanLabel,
    LabelTask,
    LlmLabel,
    ModelVersion,
    QueueItem,
    SoftLabel,
    Utterance,
)

logger = logging.getLogger(__name__)


def budget_calibrate(
    *, task: LabelTask, students: CrossFitted, context_turns: int
) -> dict[str, Any]:
    """The answers budget mode chooses its threshold on (stored as `ModelVersion.budget`):
    per human answer with an LLM label, the cross-fitted student's confidence, and whether
    the student and the LLM agreed with the human."""
    reference = dict(
        selectors.reference_labels(task=task).values_list("utterance_id", "source")
    )
    if not reference:
        return {}
    audited = set(
        QueueItem.objects.filter(
            task=task, audit=True, utterance_id__in=list(reference)
        ).values_list("utterance_id", flat=True)
    )
    ids = list(
        Utterance.objects.filter(pk__in=list(reference))
        .order_by("dialogue_id", "position")
        .values_list("pk", flat=True)
    )
    examples = selectors.training_examples(
        task=task, utterance_ids=ids, context_turns=context_turns
    )
    # `training_examples` keeps the (dialogue, position) order of `ids`
    kept = [
        (ex, pk)
        for ex, pk in zip(examples, ids, strict=True)
        if ex.llm and ex.human is not None
    ]
    if not kept:
        return {}
    probabilities = students.proba([ex for ex, _ in kept])
    student = probabilities.argmax(axis=1)
    llm = np.array([int(np.argmax(ex.soft)) for ex, _ in kept])
    truth = np.array([ex.human for ex, _ in kept])
    uniform = [
        reference[pk] == HumanLabel.Source.IMPORT or pk in audited for _, pk in kept
    ]
    return {
        "confidence": [round(float(p), 5) for p in probabilities.max(axis=1)],
        "student_right": (student == truth).astype(int).tolist(),
        "llm_right": (llm == truth).astype(int).tolist(),
        "uniform": [int(u) for u in uniform],
        # the labels themselves (indices in the task's order), for the macro-F1 guard
        "truth": truth.astype(int).tolist(),
        "student_label": student.astype(int).tolist(),
        "llm_label": llm.astype(int).tolist(),
    }


def budget_threshold(task: LabelTask, version: ModelVersion | None) -> BudgetThreshold:
    """The threshold budget mode uses with this version, at the task's current tolerance
    (no threshold without a calibrated version or enough answers)."""
    tolerance = task.budget_tolerance / 100.0
    minimum = settings.PARLEY_BUDGET_MIN_ANSWERS
    data = (version.budget if version else None) or {}
    if not data.get("confidence"):
        return BudgetThreshold(None, 0, 0, float("nan"), float("nan"), tolerance)
    keep = np.ones(len(data["confidence"]), dtype=bool)
    uniform = np.asarray(data.get("uniform", []), dtype=bool)
    if uniform.sum() >= minimum:
        keep = uniform
    labels = None  # versions scored before the macro-F1 guard keep right/wrong only
    if "truth" in data:
        truth, by_student, by_llm = (
            np.asarray(data[key], dtype=np.int64)[keep]
            for key in ("truth", "student_label", "llm_label")
        )
        labels = (truth, by_student, by_llm)
    return choose_threshold(
        np.asarray(data["confidence"])[keep],
        np.asarray(data["student_right"], dtype=bool)[keep],
        np.asarray(data["llm_right"], dtype=bool)[keep],
        tolerance=tolerance,
        min_support=minimum,
        labels=labels,
    )


def budget_student_label(*, task: LabelTask, chunk_size: int = 2000) -> int:
    """In budget mode, the active student's soft label for every utterance of the task that
    has no LLM answer (nor soft label) yet and that it is confident enough on; returns how
    many it labelled. The LLM run then asks for the others only."""
    if not task.budget_mode:
        return 0
    version = task.model_versions.filter(is_active=True).first()
    threshold = budget_threshold(task, version)
    if version is None or threshold.threshold is None:
        logger.info(
            "budget mode on task %s: no threshold yet (%s answers), the LLM labels all",
            task.pk,
            threshold.answers,
        )
        return 0
    ids = list(
        Utterance.objects.filter(dialogue__project_id=task.project_id)
        .filter(
            ~Exists(LlmLabel.objects.filter(task=task, utterance=OuterRef("pk"))),
            ~Exists(SoftLabel.objects.filter(task=task, utterance=OuterRef("pk"))),
        )
        .order_by("dialogue_id", "position")
        .values_list("pk", flat=True)
    )
    if not ids:
        return 0
    try:  # the full student alone (no folds): the one the predictions and the API use
        students = CrossFitted.load(
            version.artifact_path,
            0,
            device=settings.LEARNER_DEVICE,
            backend=settings.LEARNER_INFERENCE,
        )
    except OSError as exc:
        logger.warning(
            "budget mode on task %s: model version %s cannot be loaded (%s); "
            "the LLM labels all",
            task.pk,
            version.version,
            exc,
        )
        return 0
    labels = list(task.ordered_labels().values_list("value", "pk"))
    labelled = 0
    for start in range(0, len(ids), chunk_size):
        chunk = ids[start : start + chunk_size]
        examples = selectors.training_examples(
            task=task, utterance_ids=chunk, context_turns=students.context_turns
        )
        probabilities, _ = learner.predict(students.full, examples)
        rows = [
            SoftLabel(
                utterance_id=pk,
                task=task,
                label_id=labels[int(p.argmax())][1],
                confidence=float(p.max()),
                distribution={
                    value: round(float(q), 6)
                    for (value, _), q in zip(labels, p, strict=True)
                },
                agreement=1.0,
                n_sources=0,
                source=SoftLabel.Source.STUDENT,
                model_version=version,
            )
            for pk, p in zip(chunk, probabilities, strict=True)
            if p.max() >= threshold.threshold
        ]
        with transaction.atomic():
            SoftLabel.objects.bulk_create(rows, ignore_conflicts=True)
        labelled += len(rows)
    return labelled
