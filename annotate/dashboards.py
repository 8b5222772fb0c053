"""Selectors for the leads' dashboards: every figure is an SQL aggregate, finished in Python
only over its small result (a confusion matrix, a handful of bins).

The reference for "right" is the human label of an utterance: its adjudication if there is one,
else its latest label (retracted labels never count).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import (
    Avg,
    Case,
    Count,
    Exists,
    F,
    FloatField,
    IntegerField,
    Max,
    OuterRef,
    Q,
    Sum,
    When,
)
from django.db.models.functions import Cast, Floor
from django.utils import timezone

from learner import (
    accuracy,
    audit_estimate,
    cohen_kappa,
    ece_from_bins,
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


def _answers_to_suggestions(task: LabelTask) -> Any:
    """Annotators' standing labels that answered an LLM suggestion shown with its trust."""
    return HumanLabel.objects.filter(
        task=task,
        source="annotation",
        retraction__isnull=True,
        trust__isnull=False,
        llm_label__isnull=False,
    )


def trust_calibration(*, task: LabelTask, bins: int = 10) -> dict[str, Any]:
    """Reliability of past trust scores: the trust an item had when its human label arrived,
    against whether the LLM label shown then was right. Bins of equal width; ECE."""
    rows = (
        _answers_to_suggestions(task)
        .annotate(
            bin=Cast(Floor(F("trust") * bins), IntegerField()),
            right=Case(
                When(label_id=F("llm_label_id"), then=1.0),
                default=0.0,
                output_field=FloatField(),
            ),
        )
        .values("bin")
        .annotate(n=Count("pk"), trust=Avg("trust"), accuracy=Avg("right"))
        .order_by("bin")
    )
    merged: dict[int, dict[str, float]] = {}
    for row in rows:
        b = min(int(row["bin"]), bins - 1)  # trust 1.0 belongs to the last bin
        slot = merged.setdefault(b, {"n": 0, "trust_sum": 0.0, "right_sum": 0.0})
        slot["n"] += row["n"]
        slot["trust_sum"] += row["trust"] * row["n"]
        slot["right_sum"] += row["accuracy"] * row["n"]
    total = sum(s["n"] for s in merged.values())
    table = [
        {
            "bin": b,
            "low": b / bins,
            "high": (b + 1) / bins,
            "n": int(s["n"]),
            "trust": s["trust_sum"] / s["n"],
            "accuracy": s["right_sum"] / s["n"],
        }
        for b, s in sorted(merged.items())
    ]
    ece = ece_from_bins((r["n"], r["trust"], r["accuracy"]) for r in table)
    return {"bins": table, "n": total, "ece": ece}


def remaining_errors(*, task: LabelTask) -> dict[str, Any]:
    """Estimated wrong LLM labels left in the unreviewed pool: Σ (1 − trust) over open,
    unanswered items with an LLM label, ± 1.96 √Σ t(1 − t) (independent Bernoulli errors;
    the calibration error above adds to it)."""
    has_llm = Exists(
        SoftLabel.objects.filter(task=task, utterance_id=OuterRef("utterance_id"))
    )
    agg = (
        QueueItem.objects.filter(task=task, open=True, answers=0)
        .filter(has_llm)
        .aggregate(
            n=Count("pk"),
            wrong=Sum(1.0 - F("trust"), output_field=FloatField()),
            variance=Sum(F("trust") * (1.0 - F("trust")), output_field=FloatField()),
        )
    )
    n, wrong, variance = agg["n"] or 0, agg["wrong"] or 0.0, agg["variance"] or 0.0
    band = 1.96 * math.sqrt(variance)
    return {
        "items": n,
        "estimate": wrong,
        "low": max(0.0, wrong - band),
        "high": wrong + band,
    }


def audit_figures(*, task: LabelTask) -> dict[str, Any]:
    """What the audit says about the unanswered pool (learner/audit.py): the trust ECE, the
    LLM's error rate and the wrong LLM labels left, each with a bootstrap 95 % interval, from
    the answers to items drawn uniformly from the pool (PARLEY_AUDIT_FRACTION), each weighted
    by one over its selection probability. Each audit item counts once: its first answer,
    against the LLM label, the trust it had when it was served (the ECE) and its current
    trust (the wrong labels left, beside the open items' current trust)."""
    first = (
        _answers_to_suggestions(task)
        .filter(
            utterance__queue_items__task=task,
            utterance__queue_items__audit=True,
            utterance__queue_items__selection_probability__gt=0,
        )
        .order_by("utterance_id", "created_at", "pk")
        .values_list(
            "utterance_id",
            "trust",
            "label_id",
            "llm_label_id",
            "utterance__queue_items__selection_probability",
            "utterance__queue_items__trust",
        )
    )
    answers: dict[int, tuple[float, bool, float, float]] = {}
    for utterance_id, served_trust, label, llm_label, probability, now in first:
        # served_trust and probability are non-null by the filter above
        answers.setdefault(
            utterance_id,
            (float(served_trust or 0), label == llm_label, probability or 1, now),
        )
    needed = settings.PARLEY_AUDIT_MIN_ANSWERS
    out: dict[str, Any] = {"answers": len(answers), "needed": needed}
    if len(answers) < needed:
        return out
    has_llm = Exists(
        SoftLabel.objects.filter(task=task, utterance_id=OuterRef("utterance_id"))
    )
    open_trust = list(
        QueueItem.objects.filter(task=task, open=True, answers=0)
        .filter(has_llm)
        .values_list("trust", flat=True)
    )
    columns = list(zip(*answers.values(), strict=True))
    estimate = audit_estimate(
        columns[0], columns[1], columns[2], open_trust, columns[3]
    )
    return {**out, **estimate.as_dict(), "items": len(open_trust)}


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
    return f"dashboard:v2:{task.pk}:{last_version}"
