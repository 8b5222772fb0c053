"""Reads of the corpus: the export records, the human label that counts (`reference_labels`), and
the learner examples of a task.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from django.conf import settings
from django.db.models import (
    Case,
    F,
    QuerySet,
    Value,
    When,
    Window,
)
from django.db.models.functions import RowNumber

from learner import Example, with_context

from ..models import (
    Dialogue,
    HumanLabel,
    Label,
    LabelTask,
    LlmLabel,
    ModelVersion,
    Prediction,
    Project,
    SoftLabel,
    Utterance,
)
from ..transcripts import (
    DialogueRecord,
    HumanAnswer,
    LlmAnswer,
    TurnRecord,
    csv_header,
)
from .projects import llm_sources, project_schema


def transcript_records(
    *, project: Project, batch_size: int = 500
) -> Iterator[tuple[DialogueRecord, dict[int, dict[str, Any]]]]:
    """Every dialogue of the project with its labels, and the active student's predictions.

    Streams in batches of dialogues (keyset pagination by id): five queries a batch, memory
    bounded by the batch.
    """
    labels = {
        label.pk: (label.task.name, label.value)
        for label in Label.objects.filter(task__project=project).select_related("task")
    }
    task_names = dict(
        LabelTask.objects.filter(project=project).values_list("pk", "name")
    )
    versions = dict(
        ModelVersion.objects.filter(task__project=project, is_active=True).values_list(
            "pk", "version"
        )
    )
    last_id = 0
    while True:
        dialogues = list(
            Dialogue.objects.filter(project=project, pk__gt=last_id).order_by("pk")[
                :batch_size
            ]
        )
        if not dialogues:
            return
        last_id = dialogues[-1].pk
        yield from _records_for(dialogues, labels, task_names, versions)


def _records_for(
    dialogues: list[Dialogue],
    labels: dict[int, tuple[str, str]],
    task_names: dict[int, str],
    versions: dict[int, int],
) -> Iterator[tuple[DialogueRecord, dict[int, dict[str, Any]]]]:
    ids = [d.pk for d in dialogues]
    turns: dict[int, TurnRecord] = {}
    by_dialogue: dict[int, list[TurnRecord]] = defaultdict(list)
    for pk, dialogue_id, position, speaker, text, timestamp in (
        Utterance.objects.filter(dialogue_id__in=ids)
        .order_by("dialogue_id", "position")
        .values_list("pk", "dialogue_id", "position", "speaker", "text", "timestamp")
    ):
        turn = TurnRecord(position, speaker, text, timestamp)
        turns[pk] = turn
        by_dialogue[dialogue_id].append(turn)
    for utt_id, task_id, prompt, model, label_id, confidence, distribution in (
        LlmLabel.objects.filter(utterance__dialogue_id__in=ids)
        .order_by("utterance_id", "task_id", "prompt", "model")
        .values_list(
            "utterance_id",
            "task_id",
            "prompt",
            "model",
            "label_id",
            "confidence",
            "distribution",
        )
    ):
        answer = LlmAnswer(prompt, model, labels[label_id][1], confidence, distribution)
        turns[utt_id].llm.setdefault(task_names[task_id], []).append(answer)
    for utt_id, task_id, label_id, name, username, created_at in (
        HumanLabel.objects.filter(utterance__dialogue_id__in=ids)
        .order_by("utterance_id", "task_id", "created_at", "pk")
        .values_list(
            "utterance_id",
            "task_id",
            "label_id",
            "annotator_name",
            "annotator__username",
            "created_at",
        )
    ):
        human = HumanAnswer(labels[label_id][1], name or username or "", created_at)
        turns[utt_id].human.setdefault(task_names[task_id], []).append(human)
    for utt_id, task_id, label_id, confidence, source, version in (
        SoftLabel.objects.filter(utterance__dialogue_id__in=ids)
        .order_by("utterance_id", "task_id")
        .values_list(
            "utterance_id",
            "task_id",
            "label_id",
            "confidence",
            "source",
            "model_version__version",
        )
    ):
        soft: dict[str, Any] = {
            "label": labels[label_id][1],
            "confidence": confidence,
            "source": source,
        }
        if version is not None:
            soft["model_version"] = version
        turns[utt_id].soft_label[task_names[task_id]] = soft
    for utt_id, task_id, label_id in reference_labels(
        task_id__in=task_names, utterance__dialogue_id__in=ids
    ).values_list("utterance_id", "task_id", "label_id"):
        turns[utt_id].reference[task_names[task_id]] = labels[label_id][1]
    predictions: dict[int, dict[int, dict[str, Any]]] = defaultdict(dict)
    for (
        utt_id,
        task_id,
        version_id,
        label_id,
        probabilities,
        trust,
        dialogue_id,
    ) in Prediction.objects.filter(
        utterance__dialogue_id__in=ids, model_version_id__in=versions
    ).values_list(
        "utterance_id",
        "task_id",
        "model_version_id",
        "label_id",
        "probabilities",
        "trust",
        "utterance__dialogue_id",
    ):
        predictions[dialogue_id].setdefault(turns[utt_id].position, {})[
            task_names[task_id]
        ] = {
            "label": labels[label_id][1],
            "probabilities": probabilities,
            "trust": trust,
            "model_version": versions[version_id],
        }
    for dialogue in dialogues:
        record = DialogueRecord(
            dialogue.external_id, 0, dialogue.metadata, by_dialogue[dialogue.pk]
        )
        yield record, predictions.get(dialogue.pk, {})


def export_csv_header(*, project: Project) -> list[str]:
    return csv_header(project_schema(project=project), llm_sources(project=project))


def reference_labels(
    task: LabelTask | None = None, **where: Any
) -> QuerySet[HumanLabel]:
    """The human label that counts, one per (utterance, task): its latest adjudication, else
    its latest label; retracted labels never count. One task's, or filtered by `where` on
    HumanLabel (`utterance_id__in=`, …), applied before the choice.

    The one home of that rule: dashboards, training examples and exports all read it here.
    """
    if task is not None:
        where["task"] = task
    ranked = HumanLabel.objects.filter(retraction__isnull=True, **where).annotate(
        rank=Window(
            RowNumber(),
            partition_by=[F("utterance_id"), F("task_id")],
            order_by=[
                Case(
                    When(source="adjudication", then=Value(0)), default=Value(1)
                ).asc(),
                F("created_at").desc(),
                F("pk").desc(),
            ],
        )
    )
    return ranked.filter(rank=1)


def training_examples(
    *,
    task: LabelTask,
    utterance_ids: Iterable[int] | None = None,
    context_turns: int | None = None,
) -> list[Example]:
    """Learner examples of the task's project: every utterance (or these), whole dialogues first
    to last, with `context_turns` previous turns as context (LEARNER_CONTEXT_TURNS by default),
    per-prompt LLM distributions and the reference human label (`reference_labels`).
    """
    ordered = list(task.ordered_labels().values_list("pk", "value"))
    labels = [value for _, value in ordered]
    index = {pk: i for i, (pk, _) in enumerate(ordered)}
    utterances = Utterance.objects.filter(dialogue__project_id=task.project_id)
    if utterance_ids is not None:
        wanted = set(utterance_ids)
        dialogue_ids = set(
            Utterance.objects.filter(pk__in=wanted).values_list(
                "dialogue_id", flat=True
            )
        )
        utterances = utterances.filter(dialogue_id__in=dialogue_ids)
    rows = list(
        utterances.order_by("dialogue_id", "position").values_list(
            "pk", "dialogue_id", "position", "speaker", "text"
        )
    )
    ids = [r[0] for r in rows]
    llm: dict[int, list[tuple[float, ...]]] = defaultdict(list)
    for chunk in _chunks(ids, 5000):
        for utterance_id, dist in (
            LlmLabel.objects.filter(task=task, utterance_id__in=chunk)
            .order_by("utterance_id", "prompt", "model")
            .values_list("utterance_id", "distribution")
        ):
            llm[utterance_id].append(tuple(float(dist.get(v, 0.0)) for v in labels))
    human: dict[int, int] = {}
    for chunk in _chunks(ids, 5000):
        for utterance_id, label_id in reference_labels(
            task=task, utterance_id__in=chunk
        ).values_list("utterance_id", "label_id"):
            human[utterance_id] = index[label_id]
    examples = [
        Example(
            str(dialogue_id),
            position,
            speaker,
            text,
            llm=tuple(llm.get(pk, ())),
            human=human.get(pk),
        )
        for pk, dialogue_id, position, speaker, text in rows
    ]
    out: list[Example] = with_context(
        examples,
        settings.LEARNER_CONTEXT_TURNS if context_turns is None else context_turns,
    )
    if utterance_ids is not None:
        keep = [i for i, pk in enumerate(ids) if pk in wanted]
        return [out[i] for i in keep]
    return out


def training_example_ids(*, task: LabelTask) -> list[int]:
    """Utterance ids in the order `training_examples(task=task)` returns them."""
    return list(
        Utterance.objects.filter(dialogue__project_id=task.project_id)
        .order_by("dialogue_id", "position")
        .values_list("pk", flat=True)
    )


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
