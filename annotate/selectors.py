"""Selectors: reads for views, exports and tasks, aggregated in SQL."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.cache import cache
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    OuterRef,
    QuerySet,
    Value,
    When,
    Window,
)
from django.db.models.functions import RowNumber
from django.utils import timezone

from learner.data import Example, with_context

from .models import (
    Dialogue,
    Flag,
    HumanLabel,
    Label,
    LabelTask,
    LlmLabel,
    Membership,
    ModelVersion,
    Prediction,
    Project,
    QueueItem,
    Role,
    SoftLabel,
    Utterance,
)
from .transcripts import (
    DialogueRecord,
    HumanAnswer,
    LlmAnswer,
    Schema,
    TurnRecord,
    csv_header,
)


def project_role(*, user: User | AnonymousUser, project: Project) -> str | None:
    """The user's role in the project; superusers act as admins everywhere."""
    if not user.is_authenticated:
        return None
    if getattr(user, "is_superuser", False):
        return Role.ADMIN
    return (
        Membership.objects.filter(project=project, user=user)
        .values_list("role", flat=True)
        .first()
    )


def projects_for_user(*, user: User) -> QuerySet[Project]:
    """The projects a user may see, with counts for the project list."""
    projects = Project.objects.all()
    if not getattr(user, "is_superuser", False):
        projects = projects.filter(memberships__user=user)
    return projects.annotate(
        n_dialogues=Count("dialogues", distinct=True),
        n_tasks=Count("tasks", distinct=True),
    ).order_by("name")


def project_overview(
    *, project: Project, user: User | None = None
) -> list[dict[str, Any]]:
    """Per task: utterances with an LLM label, with a human label, its labels, the queue's
    size, and (given a user) that user's progress."""
    n_utterances = Utterance.objects.filter(dialogue__project=project).count()
    rows = []
    for task in LabelTask.objects.filter(project=project).prefetch_related("labels"):
        human = Utterance.objects.filter(
            Exists(HumanLabel.objects.filter(utterance=OuterRef("pk"), task=task)),
            dialogue__project=project,
        ).count()
        rows.append(
            {
                "task": task,
                "labels": list(task.labels.all()),
                "utterances": n_utterances,
                "llm_labelled": task.soft_labels.count(),
                "human_labelled": human,
                "queue_left": _open_items(task),
                "progress": annotator_progress(task=task, user=user, total=True)
                if user
                else None,
            }
        )
    return rows


def project_schema(*, project: Project) -> Schema:
    schema: Schema = {}
    for task_name, value in (
        Label.objects.filter(task__project=project)
        .order_by("task__name", "order", "pk")
        .values_list("task__name", "value")
    ):
        schema.setdefault(task_name, []).append(value)
    return schema


def llm_sources(*, project: Project) -> dict[str, list[str]]:
    """Task name → the prompts that labelled it, sorted."""
    sources: dict[str, list[str]] = defaultdict(list)
    for task_name, prompt in (
        LlmLabel.objects.filter(task__project=project)
        .values_list("task__name", "prompt")
        .distinct()
        .order_by("task__name", "prompt")
    ):
        sources[task_name].append(prompt)
    return dict(sources)


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


__all__ = [
    "export_csv_header",
    "llm_sources",
    "project_overview",
    "project_role",
    "project_schema",
    "projects_for_user",
    "transcript_records",
]


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
    out = with_context(
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


# --- The annotator workspace ----------------------------------------------------------------


def queue_item_context(*, item: QueueItem, whole: bool = False) -> dict[str, Any]:
    """What the workspace shows for an item: its dialogue, labels, the LLM suggestion.

    The dialogue is a window of PARLEY_QUEUE_CONTEXT_BEFORE turns before the utterance and
    PARLEY_QUEUE_CONTEXT_AFTER after it (a long call would make every page megabytes), with
    the number of turns left out on each side; `whole` gives every turn.
    """
    task = item.task
    utterance = Utterance.objects.select_related("dialogue").get(pk=item.utterance_id)
    turns = Utterance.objects.filter(dialogue_id=utterance.dialogue_id)
    first = utterance.position - settings.PARLEY_QUEUE_CONTEXT_BEFORE
    last = utterance.position + settings.PARLEY_QUEUE_CONTEXT_AFTER
    hidden_before = hidden_after = 0
    if not whole:
        hidden_before = turns.filter(position__lt=first).count()
        hidden_after = turns.filter(position__gt=last).count()
        turns = turns.filter(position__gte=first, position__lte=last)
    soft = (
        SoftLabel.objects.filter(utterance=utterance, task=task)
        .select_related("label")
        .defer("distribution")
        .first()
    )
    return {
        "item": item,
        "utterance": utterance,
        "turns": list(turns.order_by("position")),
        "hidden_before": hidden_before,
        "hidden_after": hidden_after,
        "labels": list(task.ordered_labels()),
        "suggestion": None if task.hide_suggestion or soft is None else soft,
    }


def annotator_progress(
    *, task: LabelTask, user: User, total: bool = False
) -> dict[str, int]:
    """Done today (own labels since local midnight), left in the queue and, with `total`,
    done in all (the project page shows it; the queue's every submit does not need it)."""
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    mine = HumanLabel.objects.filter(task=task, annotator=user, retraction__isnull=True)
    progress = {
        "done_today": mine.filter(created_at__gte=midnight).count(),
        "left": _open_items(task),
    }
    if total:
        progress["done_total"] = mine.count()
    return progress


def _open_items(task: LabelTask) -> int:
    """Open items of the task; cached for 5 s (every submit shows it, counting is O(queue))."""
    key = f"queue-open:{task.pk}"
    value = cache.get(key)
    if value is None:
        value = QueueItem.objects.filter(task=task, open=True).count()
        cache.set(key, value, timeout=5)
    return int(value)


def review_rows(*, task: LabelTask) -> list[dict[str, Any]]:
    """Items a lead should decide: open flags, and answers from annotators that disagree
    (without an adjudication yet). Each row: utterance, its labels so far, its flags."""
    flagged = set(
        Flag.objects.filter(task=task, resolved_at__isnull=True).values_list(
            "utterance_id", flat=True
        )
    )
    adjudicated = set(
        HumanLabel.objects.filter(task=task, source="adjudication").values_list(
            "utterance_id", flat=True
        )
    )
    disputed = (
        set(
            HumanLabel.objects.filter(
                task=task, source="annotation", retraction__isnull=True
            )
            .values("utterance_id")
            .annotate(n=Count("label", distinct=True))
            .filter(n__gt=1)
            .values_list("utterance_id", flat=True)
        )
        - adjudicated
    )
    ids = sorted(flagged | disputed)
    labels: dict[int, list[HumanLabel]] = defaultdict(list)
    for h in (
        HumanLabel.objects.filter(
            task=task, utterance_id__in=ids, retraction__isnull=True
        )
        .select_related("label")
        .order_by("created_at")
    ):
        labels[h.utterance_id].append(h)
    flags: dict[int, list[Flag]] = defaultdict(list)
    for f in Flag.objects.filter(
        task=task, utterance_id__in=ids, resolved_at__isnull=True
    ).select_related("annotator"):
        flags[f.utterance_id].append(f)
    utterances = Utterance.objects.select_related("dialogue").in_bulk(ids)
    soft = {
        sl.utterance_id: sl
        for sl in SoftLabel.objects.filter(
            task=task, utterance_id__in=ids
        ).select_related("label")
    }
    return [
        {
            "utterance": utterances[pk],
            "labels": labels[pk],
            "flags": flags[pk],
            "suggestion": soft.get(pk),
            "reason": "flagged" if pk in flagged else "disagreement",
        }
        for pk in ids
    ]
