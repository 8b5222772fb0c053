"""Reads for the annotator's workspace and the leads' review."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import transaction
from django.db.models import (
    Count,
)
from django.utils import timezone

from ..models import (
    Flag,
    HumanLabel,
    LabelTask,
    QueueItem,
    SoftLabel,
    Utterance,
)


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
    """Open items of the task, the same on every page: counted (O(queue)) at most once a
    minute, and kept exact in between by `open_items_changed`, which every submit, undo and
    adjudication calls once it commits."""
    key = _open_items_key(task.pk)
    value = cache.get(key)
    if value is None:
        value = QueueItem.objects.filter(task=task, open=True).count()
        cache.set(key, value, timeout=60)
    return int(value)


def _open_items_key(task_id: int) -> str:
    return f"queue-open:{task_id}"


def open_items_changed(task_id: int, delta: int) -> None:
    """Items of the task opened (+) or closed (−): adjust the cached count after the commit
    (without a cached count, the next read counts)."""

    def adjust() -> None:
        # not cached (or the cache is down): the next read counts
        with contextlib.suppress(ValueError):
            cache.incr(_open_items_key(task_id), delta)

    transaction.on_commit(adjust)


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
        .select_related("label", "replaces__label")
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


def annotator_history(
    *, task: LabelTask, user: User, limit: int = 50
) -> list[HumanLabel]:
    """The annotator's last `limit` answers on the task that still count (newest first),
    with what each changed."""
    return list(
        HumanLabel.objects.filter(
            task=task,
            annotator=user,
            source=HumanLabel.Source.ANNOTATION,
            retraction__isnull=True,
        )
        .select_related("utterance__dialogue", "label", "replaces__label")
        .order_by("-created_at", "-pk")[:limit]
    )
