"""Why an item is in front of the queue, in words: its trust and the signals behind it."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache

from ..models import LabelTask, LlmLabel, Prediction, QueueItem, SoftLabel
from .corpus import reference_labels

# Class error rates are read from every answer of the task: kept a minute per task.
_CLASS_ERRORS_S = 60


def item_reasons(*, item: QueueItem) -> dict[str, Any]:
    """The item's trust (and where it comes from), the reasons in words, and the dialogue's
    metadata. With `hide_suggestion`, no reason names the LLM's label. An audit item (drawn
    uniformly) reads like any other: annotators are not told which items are audits."""
    task = item.task
    soft = (
        SoftLabel.objects.filter(utterance_id=item.utterance_id, task=task)
        .select_related("label")
        .first()
    )
    hidden = task.hide_suggestion
    reasons: list[str] = []
    if soft is None:
        reasons.append("No LLM label yet: nothing to trust, so it comes first.")
    elif soft.source == SoftLabel.Source.STUDENT:
        reasons.append(
            "The student labelled it in LLM budget mode (the LLM was not asked), "
            f"{_percent(soft.confidence)} sure."
        )
    else:
        reasons += _llm_reasons(task, item, soft, hidden)
    prediction = _student_prediction(task, item)
    if soft is not None and prediction is not None:
        label, probability = prediction
        if hidden:
            reasons.append(
                f"The student is {_percent(probability)} sure of its own label."
            )
        elif label == soft.label.value:
            reasons.append(
                f"The student agrees ({_percent(probability)} for “{label}”)."
            )
        else:
            reasons.append(
                f"The student disagrees: it says “{label}” ({_percent(probability)})."
            )
    if item.priority > item.trust + 1e-9:
        reasons.append(
            "Similar items were served just before it, so the diversity rule moved it back "
            "a little."
        )
    return {
        "trust": item.trust,
        "calibrated": item.trust_source == QueueItem.TrustSource.CALIBRATED,
        "version": item.trust_version.version if item.trust_version else None,
        "reasons": reasons,
        "metadata": item.utterance.dialogue.metadata,
    }


def _llm_reasons(
    task: LabelTask, item: QueueItem, soft: SoftLabel, hidden: bool
) -> list[str]:
    reasons = []
    label = soft.label.value
    shown = "its label" if hidden else f"“{label}”"
    if soft.confidence < 0.7:
        reasons.append(f"The LLM is unsure: {_percent(soft.confidence)} for {shown}.")
    if soft.n_sources > 1 and soft.agreement < 0.9:
        votes = list(
            LlmLabel.objects.filter(utterance_id=item.utterance_id, task=task)
            .order_by("prompt")
            .values_list("prompt", "label__value")
        )
        said = {value for _, value in votes}
        if hidden:
            reasons.append(
                f"The prompts disagree ({len(said)} different labels over {len(votes)} "
                "prompts)."
            )
        elif len(said) > 1:
            reasons.append(
                "The prompts disagree: "
                + ", ".join(f"{prompt} says “{value}”" for prompt, value in votes)
                + "."
            )
        else:
            reasons.append(
                f"The prompts agree on the label but not on how sure they are "
                f"(agreement {soft.agreement:.2f})."
            )
    checked, wrong = _class_errors(task).get(soft.label_id, (0, 0))
    if checked >= 5:
        reasons.append(
            f"The LLM is wrong on {_percent(wrong / checked)} of its {shown} labels that "
            f"annotators checked ({wrong} of {checked})."
        )
    return reasons


def _class_errors(task: LabelTask) -> dict[int, tuple[int, int]]:
    """Per LLM label: (answers, answers that differ from it)."""
    key = f"why:class-errors:{task.pk}"
    cached: dict[int, tuple[int, int]] | None = cache.get(key)
    if cached is not None:
        return cached
    human = dict(reference_labels(task=task).values_list("utterance_id", "label_id"))
    counts: dict[int, list[int]] = {}
    ids = list(human)
    for start in range(0, len(ids), 5000):
        for utterance_id, label_id in SoftLabel.objects.filter(
            task=task,
            utterance_id__in=ids[start : start + 5000],
            source=SoftLabel.Source.LLM,
        ).values_list("utterance_id", "label_id"):
            row = counts.setdefault(label_id, [0, 0])
            row[0] += 1
            row[1] += int(human[utterance_id] != label_id)
    result = {label_id: (n, w) for label_id, (n, w) in counts.items()}
    cache.set(key, result, timeout=_CLASS_ERRORS_S)
    return result


def _student_prediction(task: LabelTask, item: QueueItem) -> tuple[str, float] | None:
    prediction = (
        Prediction.objects.filter(
            utterance_id=item.utterance_id,
            task=task,
            model_version__is_active=True,
        )
        .select_related("label")
        .first()
    )
    if prediction is None:
        return None
    return prediction.label.value, max(prediction.probabilities)


def _percent(value: float) -> str:
    return f"{100 * value:.0f} %"
