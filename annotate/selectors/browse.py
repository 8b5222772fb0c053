"""The corpus browser (leads): a task's utterances, filtered and paged, and a dialogue with
every label of every utterance side by side.

Pages are keyset-paged by utterance id (the queue item's `utterance_id`, one item per
utterance and task), so page 1,000 costs what page 1 costs; every filter is an indexed
lookup per candidate row (`Exists` on the (utterance, task) indexes of the label tables), and
the rows of a page are read in a handful of bulk queries. `bench/corpus_http.py` measures it
on 500,000 utterances.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, QuerySet, Subquery
from django.http import QueryDict

from ..models import (
    Flag,
    HumanLabel,
    LabelTask,
    LlmLabel,
    ModelVersion,
    Prediction,
    QueueItem,
    SoftLabel,
    Utterance,
)
from .corpus import reference_labels

PAGE_SIZE = 50
# The scan of one page: utterance-id ranges from FIRST_SPAN ids, doubling up to MAX_SPAN, for
# at most SCAN_BUDGET_S seconds (then the page says how far it looked).
FIRST_SPAN = 2_000
MAX_SPAN = 32_000
SCAN_BUDGET_S = 0.15
DISAGREEMENTS = {
    "llm-human": "the LLM and the human label differ",
    "llm-student": "the LLM and the student differ",
    "annotators": "annotators differ among themselves",
}


@dataclass(frozen=True)
class Filters:
    """What the browser's form asks for (every field optional)."""

    q: str = ""
    dialogue: str = ""
    metadata: str = ""
    llm: str = ""
    human: str = ""
    student: str = ""
    disagree: str = ""
    source: str = ""
    trust_min: float | None = None
    trust_max: float | None = None
    flagged: bool = False
    after: int = 0

    @classmethod
    def from_query(cls, query: QueryDict) -> Filters:
        def number(name: str) -> float | None:
            try:
                return float(query.get(name, ""))
            except ValueError:
                return None

        after = query.get("after", "")
        return cls(
            q=query.get("q", "").strip(),
            dialogue=query.get("dialogue", "").strip(),
            metadata=query.get("metadata", "").strip(),
            llm=query.get("llm", ""),
            human=query.get("human", ""),
            student=query.get("student", ""),
            disagree=query.get("disagree", "")
            if query.get("disagree") in DISAGREEMENTS
            else "",
            source=query.get("source", "")
            if query.get("source") in SoftLabel.Source.values
            else "",
            trust_min=number("trust_min"),
            trust_max=number("trust_max"),
            flagged=query.get("flagged") == "1",
            after=int(after) if after.isdigit() else 0,
        )


def corpus_page(
    *, task: LabelTask, filters: Filters, size: int = PAGE_SIZE
) -> dict[str, Any]:
    """One page of the task's utterances that pass `filters`, after utterance id
    `filters.after`: rows with each utterance's labels, and the id to continue after.

    The scan walks utterance ids in ranges that double while they find little (an index
    range scan each, whatever the planner guesses a filter keeps), and stops at a full page
    or after SCAN_BUDGET_S: a rare filter then answers the rows found so far, with `scanned`
    (the last id looked at) to continue from, instead of reading the whole corpus at once.
    """
    last = (
        QueueItem.objects.filter(task=task)
        .order_by("-utterance_id")
        .values_list("utterance_id", flat=True)
        .first()
    ) or 0
    first = (
        QueueItem.objects.filter(task=task)
        .order_by("utterance_id")
        .values_list("utterance_id", flat=True)
        .first()
    ) or 1
    page: list[dict[str, Any]] = []
    cursor, span = max(filters.after, first - 1), FIRST_SPAN
    deadline = time.monotonic() + SCAN_BUDGET_S
    while len(page) <= size and cursor < last:
        end = cursor + span
        found: list[dict[str, Any]] = [
            dict(row)
            for row in _filtered(task, filters, cursor, end)
            .order_by("utterance_id")
            .values(
                "utterance_id",
                "trust",
                "open",
                "utterance__position",
                "utterance__speaker",
                "utterance__text",
                "utterance__dialogue_id",
                "utterance__dialogue__external_id",
            )[: size + 1 - len(page)]
        ]
        page += found
        cursor = end if len(page) <= size else page[-1]["utterance_id"]
        span = min(span * 2, MAX_SPAN)
        if time.monotonic() > deadline:
            break
    more = len(page) > size
    page = page[:size]
    partial = not more and cursor < last  # the time ran out before the corpus did
    ids = [row["utterance_id"] for row in page]
    labels = dict(task.labels.values_list("pk", "value"))
    soft = {
        u: (labels[label], confidence, source)
        for u, label, confidence, source in SoftLabel.objects.filter(
            task=task, utterance_id__in=ids
        ).values_list("utterance_id", "label_id", "confidence", "source")
    }
    version = _active_version(task)
    student = {
        u: labels[label]
        for u, label in Prediction.objects.filter(
            task=task, utterance_id__in=ids, model_version=version
        ).values_list("utterance_id", "label_id")
    }
    human = {
        u: labels[label]
        for u, label in reference_labels(task=task, utterance_id__in=ids).values_list(
            "utterance_id", "label_id"
        )
    }
    flagged = set(
        Flag.objects.filter(
            task=task, utterance_id__in=ids, resolved_at__isnull=True
        ).values_list("utterance_id", flat=True)
    )
    rows = [
        {
            "id": row["utterance_id"],
            "dialogue_id": row["utterance__dialogue_id"],
            "dialogue": row["utterance__dialogue__external_id"],
            "turn": row["utterance__position"] + 1,
            "speaker": row["utterance__speaker"],
            "text": row["utterance__text"],
            "trust": row["trust"],
            "open": row["open"],
            "llm": soft.get(row["utterance_id"]),
            "student": student.get(row["utterance_id"]),
            "human": human.get(row["utterance_id"]),
            "flagged": row["utterance_id"] in flagged,
        }
        for row in page
    ]
    if more:
        next_after: int | None = ids[-1]
    elif partial:
        next_after = min(cursor, last)
    else:
        next_after = None
    return {"rows": rows, "next_after": next_after, "partial": partial}


def _active_version(task: LabelTask) -> ModelVersion | None:
    return ModelVersion.objects.filter(task=task, is_active=True).first()


def _filtered(task: LabelTask, f: Filters, lo: int, hi: int) -> QuerySet[QueueItem]:
    """The task's queue items (one per utterance) with utterance ids in (lo, hi] that pass
    `f`. The range is put on every table a filter reads, so that each is an index range
    scan, whatever the planner guesses the filter keeps."""
    span = {"utterance_id__gt": lo, "utterance_id__lte": hi}
    items = QueueItem.objects.filter(task=task, **span)
    same = {"utterance_id": OuterRef("utterance_id"), "task": task}
    label_ids = dict(task.labels.values_list("value", "pk"))

    def label(value: str) -> int:
        return label_ids.get(value, 0)  # an unknown label matches nothing

    if f.q:  # per row in utterance order: a page of a common word stops early
        items = items.filter(
            Exists(
                Utterance.objects.filter(
                    pk=OuterRef("utterance_id"),
                    pk__gt=lo,
                    pk__lte=hi,
                    text__icontains=f.q,
                )
            )
        )
    if f.dialogue:
        items = items.filter(utterance__dialogue__external_id__startswith=f.dialogue)
    if f.metadata:
        items = items.filter(utterance__dialogue__metadata__icontains=f.metadata)
    if f.trust_min is not None:
        items = items.filter(trust__gte=f.trust_min)
    if f.trust_max is not None:
        items = items.filter(trust__lte=f.trust_max)
    if f.llm:
        items = items.filter(
            Exists(SoftLabel.objects.filter(label_id=label(f.llm), **same))
        )
    if f.source:
        items = items.filter(Exists(SoftLabel.objects.filter(source=f.source, **same)))
    if f.human:  # driven from the human labels (a small share of the corpus)
        items = items.filter(
            utterance_id__in=HumanLabel.objects.filter(
                task=task, retraction__isnull=True, label_id=label(f.human), **span
            ).values("utterance_id")
        )
    version = _active_version(task) if (f.student or f.disagree) else None
    predicted = Prediction.objects.filter(model_version=version, **same)
    if f.student:
        items = items.filter(Exists(predicted.filter(label_id=label(f.student))))
    if f.flagged:
        items = items.filter(
            Exists(Flag.objects.filter(resolved_at__isnull=True, **same))
        )
    if f.disagree == "llm-human":
        # driven from the human labels (a small share of the corpus), not per queue item
        llm = SoftLabel.objects.filter(
            utterance_id=OuterRef("utterance_id"), task=task
        ).values("label_id")[:1]
        differing = (
            HumanLabel.objects.filter(task=task, retraction__isnull=True, **span)
            .annotate(llm=Subquery(llm))
            .exclude(label_id=F("llm"))
            .filter(llm__isnull=False)
            .values("utterance_id")
        )
        items = items.filter(utterance_id__in=differing)
    elif f.disagree == "llm-student":
        items = items.annotate(
            llm_label=Subquery(SoftLabel.objects.filter(**same).values("label_id")[:1])
        ).filter(llm_label__isnull=False)
        items = items.filter(Exists(predicted.exclude(label_id=OuterRef("llm_label"))))
    elif f.disagree == "annotators":
        disputed = (
            HumanLabel.objects.filter(
                task=task,
                source=HumanLabel.Source.ANNOTATION,
                retraction__isnull=True,
                **span,
            )
            .values("utterance_id")
            .annotate(n=Count("label_id", distinct=True))
            .filter(n__gt=1)
            .values("utterance_id")
        )
        items = items.filter(utterance_id__in=disputed)
    return items


def dialogue_labels(
    *, dialogue_id: int, tasks: list[LabelTask]
) -> list[dict[str, Any]]:
    """Per task, every utterance of the dialogue with every label: each prompt's answer, the
    soft label (and its source), the active student's prediction and trust, every human
    label with who and when (retracted ones marked, adjudications marked, changes linked)."""
    utterances = list(
        Utterance.objects.filter(dialogue_id=dialogue_id).order_by("position")
    )
    ids = [u.pk for u in utterances]
    out = []
    for task in tasks:
        prompts: dict[int, list[LlmLabel]] = defaultdict(list)
        for answer in (
            LlmLabel.objects.filter(task=task, utterance_id__in=ids)
            .select_related("label")
            .order_by("prompt", "model")
        ):
            prompts[answer.utterance_id].append(answer)
        soft = {
            s.utterance_id: s
            for s in SoftLabel.objects.filter(
                task=task, utterance_id__in=ids
            ).select_related("label")
        }
        version = _active_version(task)
        predictions = {
            p.utterance_id: p
            for p in Prediction.objects.filter(
                task=task, utterance_id__in=ids, model_version=version
            ).select_related("label")
        }
        humans: dict[int, list[HumanLabel]] = defaultdict(list)
        for h in (
            HumanLabel.objects.filter(task=task, utterance_id__in=ids)
            .select_related("label", "annotator", "retraction", "replaces__label")
            .order_by("created_at", "pk")
        ):
            humans[h.utterance_id].append(h)
        items = dict(
            QueueItem.objects.filter(task=task, utterance_id__in=ids).values_list(
                "utterance_id", "pk"
            )
        )
        reference = dict(
            reference_labels(task=task, utterance_id__in=ids).values_list(
                "utterance_id", "pk"
            )
        )
        out.append(
            {
                "task": task,
                "version": version,
                "rows": [
                    {
                        "utterance": u,
                        "prompts": prompts.get(u.pk, []),
                        "soft": soft.get(u.pk),
                        "prediction": predictions.get(u.pk),
                        "humans": humans.get(u.pk, []),
                        "reference": reference.get(u.pk),
                        "item": items.get(u.pk),
                    }
                    for u in utterances
                ],
            }
        )
    return out


def label_choices(task: LabelTask) -> list[str]:
    return list(task.ordered_labels().values_list("value", flat=True))


__all__ = [
    "DISAGREEMENTS",
    "Filters",
    "corpus_page",
    "dialogue_labels",
    "label_choices",
]
