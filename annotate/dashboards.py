"""Selectors for the leads' dashboards: every figure is an SQL aggregate, finished in Python
only over its small result (a confusion matrix, a handful of bins).

The reference for "right" is the human label of an utterance: its adjudication if there is one,
else its latest label (retracted labels never count).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.db.models import (
    Count,
    F,
    Max,
    Q,
)
from django.utils import timezone

from learner import (
    accuracy,
    cohen_kappa,
    macro_f1,
    per_class_scores,
)

from .jobs import DASHBOARD_REFRESH, send
from .models import (
    HumanLabel,
    LabelRetraction,
    LabelTask,
    LlmLabel,
    ModelVersion,
    Prediction,
    QueueItem,
    SoftLabel,
)
from .selectors import reference_labels
from .trust_figures import (
    audit_figures,
    budget_figures,
    remaining_errors,
    trust_calibration,
)


@dataclass
class Scores:
    """Accuracy, macro-F1 and per-class precision/recall from a confusion matrix."""

    n: int
    accuracy: float | None
    macro_f1: float | None
    per_class: list[dict[str, Any]] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)
    """Rows: the reference (human) label; columns: the predicted label; in label order."""


def _reference_sql(task: LabelTask) -> tuple[str, tuple[Any, ...]]:
    """SQL (and params) of `reference_labels` with columns utterance_id, label_id, created_at."""
    query = (
        reference_labels(task=task)
        .values("utterance_id", "label_id", "created_at")
        .query
    )
    sql, params = query.sql_with_params()
    return sql, tuple(params)


def _rows(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _table(model: type[Any]) -> str:
    return str(connection.ops.quote_name(model._meta.db_table))


def scores_from_pairs(
    pairs: dict[tuple[int, int], int], label_ids: list[int], names: list[str]
) -> Scores:
    """Scores from {(reference label id, predicted label id): count}."""
    index = {pk: i for i, pk in enumerate(label_ids)}
    size = len(label_ids)
    matrix = [[0] * size for _ in range(size)]
    for (ref, pred), count in pairs.items():
        if ref in index and pred in index:
            matrix[index[ref]][index[pred]] += count
    n = sum(map(sum, matrix))
    if n == 0:
        return Scores(
            n=0,
            accuracy=None,
            macro_f1=None,
            confusion=matrix,
            per_class=[
                {
                    "label": name,
                    "precision": None,
                    "recall": None,
                    "f1": None,
                    "support": 0,
                }
                for name in names
            ],
        )
    scores = per_class_scores(matrix)
    per_class = [
        {
            "label": name,
            "precision": score.precision,
            "recall": score.recall,
            "f1": score.f1,
            "support": score.support,
        }
        for name, score in zip(names, scores, strict=True)
    ]
    return Scores(
        n=n,
        accuracy=accuracy(matrix),
        macro_f1=macro_f1(scores),
        per_class=per_class,
        confusion=matrix,
    )


def _labels(task: LabelTask) -> tuple[list[int], list[str]]:
    rows = list(task.ordered_labels().values_list("pk", "value"))
    return [pk for pk, _ in rows], [value for _, value in rows]


def llm_accuracy(*, task: LabelTask) -> dict[str, Any]:
    """The LLM ensemble's label against the human reference, overall and per prompt.

    One statement: the reference labels are computed once (a CTE) and joined to the soft
    labels and to every prompt's answers.
    """
    label_ids, names = _labels(task)
    ref, params = _reference_sql(task)
    pairs: dict[tuple[int, int], int] = {}
    prompts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for kind, prompt, model, r, p, n in _rows(
        f"WITH r AS ({ref}) "
        f"SELECT 'ensemble', '', '', r.label_id, s.label_id, COUNT(*) FROM r JOIN {_table(SoftLabel)} s "
        "ON s.utterance_id = r.utterance_id AND s.task_id = %s GROUP BY r.label_id, s.label_id "
        f"UNION ALL SELECT 'prompt', l.prompt, l.model, r.label_id, l.label_id, COUNT(*) FROM r "
        f"JOIN {_table(LlmLabel)} l ON l.utterance_id = r.utterance_id AND l.task_id = %s "
        "GROUP BY l.prompt, l.model, r.label_id, l.label_id",
        (*params, task.pk, task.pk),
    ):
        if kind == "ensemble":
            pairs[(r, p)] = n
        else:
            counts = prompts[(prompt, model)]
            counts[0] += n
            counts[1] += n if r == p else 0
    per_prompt = [
        {
            "prompt": prompt or "(answer)",
            # an imported answer names no model: say so rather than leave a blank
            "model": model or "imported, not named",
            "n": n,
            "accuracy": right / n if n else None,
        }
        for (prompt, model), (n, right) in sorted(prompts.items())
    ]
    ensemble = scores_from_pairs(pairs, label_ids, names)
    return {
        "ensemble": ensemble,
        "per_prompt": per_prompt,
        "labels": names,
        "confusion_rows": list(zip(names, ensemble.confusion, strict=True)),
    }


def student_accuracy(*, task: LabelTask) -> list[dict[str, Any]]:
    """Per model version: its predictions against human labels it did not train on.

    A version trained on the labels that existed when its run started; only reference labels
    created after that count.
    """
    label_ids, names = _labels(task)
    ref, params = _reference_sql(task)
    out = []
    for version in (
        ModelVersion.objects.filter(task=task).select_related("run").order_by("version")
    ):
        since = (
            version.run.started_at
            if version.run and version.run.started_at
            else version.created_at
        )
        pairs = {
            (r, p): n
            for r, p, n in _rows(
                f"SELECT r.label_id, p.label_id, COUNT(*) FROM ({ref}) r JOIN {_table(Prediction)} p "
                "ON p.utterance_id = r.utterance_id AND p.model_version_id = %s "
                "WHERE r.created_at > %s GROUP BY r.label_id, p.label_id",
                (*params, version.pk, since),
            )
        }
        out.append(
            {"version": version, "scores": scores_from_pairs(pairs, label_ids, names)}
        )
    return out


def burndown(*, task: LabelTask) -> list[dict[str, Any]]:
    """Items left to label at the end of each day with human labels: all items minus the
    utterances labelled by then (an utterance counts on the day of its first label)."""
    total = QueueItem.objects.filter(task=task).count()
    rows = _rows(
        f"SELECT date(f.first_at), COUNT(*) FROM (SELECT h.utterance_id, MIN(h.created_at) AS first_at "
        f"FROM {_table(HumanLabel)} h WHERE h.task_id = %s AND NOT EXISTS "
        f"(SELECT 1 FROM {_table(LabelRetraction)} x WHERE x.label_id = h.id) GROUP BY h.utterance_id) f "
        "GROUP BY date(f.first_at) ORDER BY date(f.first_at)",
        (task.pk,),
    )
    out, done = [], 0
    for day, labelled in rows:
        done += labelled
        out.append(
            {
                "day": date.fromisoformat(str(day)),
                "labelled": labelled,
                "left": max(total - done, 0),
            }
        )
    return out


ACTIVE_GAP_S = 300
"""A pause between two of an annotator's labels longer than this counts as this long: time
away from the queue is not labelling time."""


def annotator_stats(*, task: LabelTask) -> list[dict[str, Any]]:
    """Per annotator: labels, active time, items per active hour, and the share of suggestions
    accepted unchanged (rubber-stamping shows here).

    Active time is the sum of the gaps between consecutive labels, each cut off at
    ACTIVE_GAP_S (5 minutes); items per hour is the number of those gaps over it."""
    base = HumanLabel.objects.filter(
        task=task, source="annotation", retraction__isnull=True
    )
    active: dict[int, list[float]] = defaultdict(lambda: [0.0, 0])
    previous: tuple[int | None, Any] = (None, None)
    for annotator_id, created_at in base.order_by(
        "annotator_id", "created_at"
    ).values_list("annotator_id", "created_at"):
        if previous[0] == annotator_id:
            gap = (created_at - previous[1]).total_seconds()
            active[annotator_id][0] += min(gap, ACTIVE_GAP_S)
            active[annotator_id][1] += 1
        previous = (annotator_id, created_at)
    rows = (
        base.values("annotator_id", "annotator_name")
        .annotate(
            n=Count("pk"),
            shown=Count("pk", filter=Q(llm_label__isnull=False)),
            accepted=Count("pk", filter=Q(label_id=F("llm_label_id"))),
            last=Max("created_at"),
        )
        .order_by("annotator_name")
    )
    out = []
    for r in rows:
        seconds, gaps = active.get(r["annotator_id"], (0.0, 0))
        out.append(
            {
                "annotator": r["annotator_name"],
                "labels": r["n"],
                "active_seconds": seconds,
                "per_hour": gaps / seconds * 3600 if seconds > 0 else None,
                "accepted_share": r["accepted"] / r["shown"] if r["shown"] else None,
                "last": r["last"],
            }
        )
    return out


def agreement(*, task: LabelTask) -> dict[str, Any]:
    """Cohen's κ for each pair of annotators over the items both labelled, and of each
    annotator against the adjudicated labels (a self-join of the label table, grouped)."""
    labels, retractions = _table(HumanLabel), _table(LabelRetraction)
    live = f"NOT EXISTS (SELECT 1 FROM {retractions} x WHERE x.label_id = {{t}}.id)"
    pairs: dict[tuple[str, str], dict[tuple[int, int], int]] = defaultdict(
        lambda: defaultdict(int)
    )
    for a, b, la, lb, n in _rows(
        f"SELECT a.annotator_name, b.annotator_name, a.label_id, b.label_id, COUNT(*) FROM {labels} a "
        f"JOIN {labels} b ON b.utterance_id = a.utterance_id AND b.task_id = a.task_id "
        "AND b.annotator_id > a.annotator_id "
        "WHERE a.task_id = %s AND a.source = 'annotation' AND b.source = 'annotation' "
        f"AND {live.format(t='a')} AND {live.format(t='b')} "
        "GROUP BY a.annotator_name, b.annotator_name, a.label_id, b.label_id",
        (task.pk,),
    ):
        pairs[(a, b)][(la, lb)] += n
    versus: dict[str, dict[tuple[int, int], int]] = defaultdict(
        lambda: defaultdict(int)
    )
    for name, label, decided, n in _rows(
        f"SELECT a.annotator_name, a.label_id, d.label_id, COUNT(*) FROM {labels} a "
        f"JOIN {labels} d ON d.utterance_id = a.utterance_id AND d.task_id = a.task_id "
        "AND d.source = 'adjudication' "
        f"WHERE a.task_id = %s AND a.source = 'annotation' AND {live.format(t='a')} "
        "GROUP BY a.annotator_name, a.label_id, d.label_id",
        (task.pk,),
    ):
        versus[name][(label, decided)] += n
    return {
        "pairs": [
            {"a": a, "b": b, "items": sum(m.values()), "kappa": cohen_kappa(m)}
            for (a, b), m in sorted(pairs.items())
        ],
        "adjudicated": [
            {"annotator": a, "items": sum(m.values()), "kappa": cohen_kappa(m)}
            for a, m in sorted(versus.items())
        ],
    }


DASHBOARD_FRESH_S = 60
DASHBOARD_KEEP_S = 24 * 3600


def dashboard_data(*, task: LabelTask) -> dict[str, Any]:
    """Every dashboard figure of a task, from a snapshot refreshed in the background.

    Computing them reads the whole task (about a second at 500,000 utterances). Requests are
    served from the task's snapshot; one older than a minute is recomputed by a worker
    (`annotate.dashboard_refresh`) while the old one is still shown, and scoring a new model
    version computes that version's snapshot on the worker. Only the very first view of a
    task that was never scored computes while the lead waits.
    """
    key = _dashboard_key(task)
    data: dict[str, Any] | None = cache.get(key)
    if data is None:
        data = dashboard_compute(task=task)
    elif (
        timezone.now() - data["computed_at"]
    ).total_seconds() > DASHBOARD_FRESH_S and cache.add(
        f"{key}:refreshing", 1, timeout=300
    ):
        send(DASHBOARD_REFRESH, task.pk)
    return data


def dashboard_compute(*, task: LabelTask) -> dict[str, Any]:
    """Compute every figure of the task now and store the snapshot."""
    key = _dashboard_key(task)
    data = {
        "llm": llm_accuracy(task=task),
        "student": student_accuracy(task=task),
        "trust": trust_calibration(task=task),
        "remaining": remaining_errors(task=task),
        "audit": audit_figures(task=task),
        "budget": budget_figures(task=task),
        "burndown": burndown(task=task),
        "annotators": annotator_stats(task=task),
        "agreement": agreement(task=task),
        "computed_at": timezone.now(),
    }
    cache.set(key, data, timeout=DASHBOARD_KEEP_S)
    cache.delete(f"{key}:refreshing")
    return data


def _dashboard_key(task: LabelTask) -> str:
    last_version = (
        ModelVersion.objects.filter(task=task).aggregate(m=Max("pk"))["m"] or 0
    )
    return f"dashboard:v3:{task.pk}:{last_version}"
