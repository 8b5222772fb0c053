"""The dashboard's Trust panel: the reliability of past trust scores, the model-based estimate
of the wrong LLM labels left, and what the audit says about the unanswered pool
(learner/audit.py). Read by `dashboards.dashboard_compute`."""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.db.models import (
    Avg,
    Case,
    Count,
    Exists,
    F,
    FloatField,
    IntegerField,
    OuterRef,
    Sum,
    When,
)
from django.db.models.functions import Cast, Floor

from learner import audit_estimate, ece_from_bins

from .models import HumanLabel, LabelTask, QueueItem, SoftLabel


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
    ece = ece_from_bins((int(r["n"]), r["trust"], r["accuracy"]) for r in table)
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


def budget_figures(*, task: LabelTask) -> dict[str, Any]:
    """The LLM budget panel: utterances the student labelled in the LLM's place, the LLM
    calls that saved (one per active prompt and utterance), the threshold in use, and the
    accuracy of each source of soft labels against the human labels that count."""
    from .selectors import reference_labels
    from .services.budget import budget_threshold

    student_labelled = SoftLabel.objects.filter(
        task=task, source=SoftLabel.Source.STUDENT
    ).count()
    prompts = task.prompts.filter(active=True).count()
    human = dict(reference_labels(task=task).values_list("utterance_id", "label_id"))
    tally = {source: [0, 0] for source in SoftLabel.Source.values}
    for chunk in range(0, len(human), 5000):
        ids = list(human)[chunk : chunk + 5000]
        for utterance_id, label_id, source in SoftLabel.objects.filter(
            task=task, utterance_id__in=ids
        ).values_list("utterance_id", "label_id", "source"):
            tally[source][0] += 1
            tally[source][1] += int(label_id == human[utterance_id])
    version = task.model_versions.filter(is_active=True).first()
    threshold = budget_threshold(task, version).as_dict()
    for key in ("student_macro_f1", "llm_macro_f1"):  # NaN: chosen on right/wrong only
        if math.isnan(threshold[key]):
            threshold[key] = None
    return {
        "on": task.budget_mode,
        "student_labelled": student_labelled,
        "calls_saved": student_labelled * prompts * settings.LLM_SAMPLES,
        "threshold": threshold,
        "sources": [
            {
                "source": name,
                "answered": tally[source][0],
                "accuracy": tally[source][1] / tally[source][0]
                if tally[source][0]
                else None,
            }
            for source, name in SoftLabel.Source.choices
        ],
    }
