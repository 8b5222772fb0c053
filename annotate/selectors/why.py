"""Why an item is in front of the queue, in words: its trust and the signals behind it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

from ..models import LabelTask, LlmLabel, Prediction, QueueItem, SoftLabel
from .corpus import reference_labels

# The LLM's error rates are read from every answer of the task: kept a minute per task.
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
    errors = _llm_errors(task)
    checked, wrong = errors.by_class.get(soft.label_id, (0, 0))
    if checked >= 5:
        reasons.append(
            f"The LLM is wrong on {_percent(wrong / checked)} of its {shown} labels that "
            f"annotators checked ({wrong} of {checked})."
        )
    previous = _previous_llm_label(task, item)
    in_context, wrong_in_context = errors.by_context.get(
        (soft.label_id, previous[0] if previous else None), (0, 0)
    )
    # The context is worth a line where it says more than the class does.
    if in_context >= 5 and (
        checked == 0
        or wrong_in_context / in_context >= wrong / checked + _CONTEXT_MARGIN
    ):
        if item.utterance.position == 0:
            where = "On the first turn of a dialogue"
        elif previous is None:
            where = "After a turn without an LLM label"
        elif hidden:
            where = "After a turn with the label this one's previous turn has"
        else:
            where = f"After a turn the LLM labelled “{previous[1]}”"
        reasons.append(
            f"{where}, the LLM is wrong on {_percent(wrong_in_context / in_context)} of "
            f"its {shown} labels that annotators checked "
            f"({wrong_in_context} of {in_context})."
        )
    return reasons


# A context's error rate is named when it is this much over its class's.
_CONTEXT_MARGIN = 0.1


@dataclass(frozen=True)
class _Errors:
    by_class: dict[int, tuple[int, int]]
    """LLM label → (answers, answers that differ from it)."""
    by_context: dict[tuple[int, int | None], tuple[int, int]]
    """(LLM label, the previous turn's LLM label or None on a first turn) → the same."""


def _llm_errors(task: LabelTask) -> _Errors:
    """How often the LLM's labels were wrong among the answers, per label and per label after
    each previous label (what trust's `ContextAccuracy` learns, counted here in words)."""
    key = f"why:llm-errors:{task.pk}"
    cached: _Errors | None = cache.get(key)
    if cached is not None:
        return cached
    human = dict(reference_labels(task=task).values_list("utterance_id", "label_id"))
    ids = list(human)
    answered: dict[
        int, tuple[int, int, int]
    ] = {}  # utterance → (dialogue, position, LLM)
    for start in range(0, len(ids), 5000):
        for utterance_id, dialogue_id, position, label_id in SoftLabel.objects.filter(
            task=task,
            utterance_id__in=ids[start : start + 5000],
            source=SoftLabel.Source.LLM,
        ).values_list(
            "utterance_id", "utterance__dialogue_id", "utterance__position", "label_id"
        ):
            answered[utterance_id] = (dialogue_id, position, label_id)
    dialogues = sorted({d for d, _, _ in answered.values()})
    llm_at: dict[tuple[int, int], int] = {}
    for start in range(0, len(dialogues), 5000):
        for dialogue_id, position, label_id in SoftLabel.objects.filter(
            task=task,
            utterance__dialogue_id__in=dialogues[start : start + 5000],
            source=SoftLabel.Source.LLM,
        ).values_list("utterance__dialogue_id", "utterance__position", "label_id"):
            llm_at[(dialogue_id, position)] = label_id
    by_class: dict[int, list[int]] = {}
    by_context: dict[tuple[int, int | None], list[int]] = {}
    for utterance_id, (dialogue_id, position, label_id) in answered.items():
        miss = int(human[utterance_id] != label_id)
        previous = llm_at.get((dialogue_id, position - 1))
        for row in (
            by_class.setdefault(label_id, [0, 0]),
            by_context.setdefault((label_id, previous), [0, 0]),
        ):
            row[0] += 1
            row[1] += miss
    result = _Errors(
        {k: (n, w) for k, (n, w) in by_class.items()},
        {k: (n, w) for k, (n, w) in by_context.items()},
    )
    cache.set(key, result, timeout=_CLASS_ERRORS_S)
    return result


def _previous_llm_label(task: LabelTask, item: QueueItem) -> tuple[int, str] | None:
    """(label id, value) of the LLM label of the turn before the item's; None on a first turn
    or where that turn has no LLM label."""
    utterance = item.utterance
    if utterance.position == 0:
        return None
    row = (
        SoftLabel.objects.filter(
            task=task,
            source=SoftLabel.Source.LLM,
            utterance__dialogue_id=utterance.dialogue_id,
            utterance__position=utterance.position - 1,
        )
        .values_list("label_id", "label__value")
        .first()
    )
    return (row[0], row[1]) if row else None


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
