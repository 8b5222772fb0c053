"""LLM budget mode: the student labels what it is sure of, the LLM is asked for the rest only."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest

from annotate import dashboards, selectors, services
from annotate.models import (
    LlmLabel,
    LlmRun,
    ModelVersion,
    PromptTemplate,
    QueueItem,
    SoftLabel,
    TrainingRun,
    Utterance,
)
from annotate.transcripts import dialogue_to_json
from learner import CrossFitted, predict
from tests.annotate.test_llm import client_for, fake  # noqa: F401 - fixture
from tests.annotate.test_training_run import (  # noqa: F401
    act,
    answer_first,
    learner_settings,
)
from tests.conftest import jsonl
from tests.learner.conftest import tiny_backbone  # noqa: F401 - fixture

NEW = [
    "shall we meet at noon?",
    "I will bring the papers",
    "please close the door",
    "is the shop open?",
    "thanks a lot",
    "could you call me later?",
    "we sold the old car",
    "why not today?",
]


@pytest.fixture
def budget_task(act, fake, settings):  # noqa: F811
    """The `act` task answered by the fake LLM's model, a trained student, budget mode on,
    and two new dialogues no one has labelled."""
    settings.LLM_BASE_URL, settings.LLM_MODEL = fake.base_url, "fake-1"
    settings.PARLEY_BUDGET_MIN_ANSWERS = 5
    LlmLabel.objects.filter(task=act).update(model="fake-1")
    for name in ("P1", "P2"):
        PromptTemplate.objects.create(
            task=act, name=name, template="Utterance: {utterance}", context_turns=0
        )
    run = TrainingRun.objects.create(task=act)
    services.training_run_execute(run_id=run.pk)
    services.predictions_store(run_id=run.pk)
    lines = [
        {
            "id": f"new{d}",
            "turns": [
                {"speaker": "AB"[t % 2], "text": NEW[4 * d + t]} for t in range(4)
            ],
        }
        for d in range(2)
    ]
    services.transcripts_import(
        project=act.project, stream=io.BytesIO(jsonl(*lines)), name="new.jsonl"
    )
    act.budget_mode = True
    act.save()
    return act


def new_confidence(task) -> dict[str, float]:
    """The active student's confidence on each new utterance, by text."""
    version = ModelVersion.objects.get(task=task, is_active=True)
    students = CrossFitted.load(version.artifact_path, 0, device="cpu")
    ids = list(
        Utterance.objects.filter(dialogue__external_id__startswith="new")
        .order_by("dialogue_id", "position")
        .values_list("pk", flat=True)
    )
    examples = selectors.training_examples(
        task=task, utterance_ids=ids, context_turns=students.context_turns
    )
    probabilities, _ = predict(students.full, examples)
    return {
        ex.text: float(p.max()) for ex, p in zip(examples, probabilities, strict=True)
    }


def calibrate_at(task, threshold: float) -> None:
    """Human answers that put the threshold at `threshold`: right above it, wrong below."""
    version = ModelVersion.objects.get(task=task, is_active=True)
    version.budget = {
        "confidence": [threshold] * 10 + [threshold - 1e-6] * 10,
        "student_right": [1] * 10 + [0] * 10,
        "llm_right": [1] * 20,
        "uniform": [1] * 20,
    }
    version.save()


def asked_texts(fake) -> set[str]:  # noqa: F811
    texts = set()
    for request in fake.requests:
        content = request["messages"][-1]["content"]
        texts.add(re.search(r"Utterance: \w+: (.*)$", content).group(1))
    return texts


def test_the_llm_is_asked_only_where_the_student_is_unsure(budget_task, fake):  # noqa: F811
    confidence = new_confidence(budget_task)
    threshold = float(np.median(list(confidence.values())))
    calibrate_at(budget_task, threshold)
    sure = {text for text, c in confidence.items() if c >= threshold}
    assert 0 < len(sure) < len(NEW)

    run = LlmRun.objects.create(task=budget_task, model="fake-1")
    services.llm_run_execute(run_id=run.pk, client=client_for(fake))

    run.refresh_from_db()
    assert run.status == "succeeded" and run.student_labelled == len(sure)
    assert asked_texts(fake) == set(NEW) - sure
    assert run.done == 2 * len(set(NEW) - sure)  # two prompts each
    version = ModelVersion.objects.get(task=budget_task, is_active=True)
    by_student = SoftLabel.objects.filter(task=budget_task, source="student")
    assert {s.utterance.text for s in by_student} == sure
    assert all(
        s.model_version_id == version.pk and s.n_sources == 0 for s in by_student
    )
    assert not LlmLabel.objects.filter(utterance__text__in=sure).exists()
    # every new utterance is in the queue, whichever source labelled it
    assert QueueItem.objects.filter(
        task=budget_task, utterance__text__in=NEW
    ).count() == len(NEW)


def test_without_enough_answers_the_llm_labels_everything(budget_task, fake, settings):  # noqa: F811
    settings.PARLEY_BUDGET_MIN_ANSWERS = 1000
    calibrate_at(budget_task, 0.0)
    run = LlmRun.objects.create(task=budget_task, model="fake-1")
    services.llm_run_execute(run_id=run.pk, client=client_for(fake))
    run.refresh_from_db()
    assert run.student_labelled == 0 and asked_texts(fake) == set(NEW)


def test_turned_off_the_llm_labels_what_the_student_had(budget_task, fake):  # noqa: F811
    calibrate_at(budget_task, 0.0)  # the student takes every new utterance
    services.llm_run_execute(
        run_id=LlmRun.objects.create(task=budget_task, model="fake-1").pk,
        client=client_for(fake),
    )
    assert SoftLabel.objects.filter(source="student").count() == len(NEW)
    assert fake.requests == []
    budget_task.budget_mode = False
    budget_task.save()
    services.llm_run_execute(
        run_id=LlmRun.objects.create(task=budget_task, model="fake-1").pk,
        client=client_for(fake),
    )
    assert asked_texts(fake) == set(NEW)
    soft = SoftLabel.objects.filter(utterance__text__in=NEW)
    assert {(s.source, s.model_version_id, s.n_sources) for s in soft} == {
        ("llm", None, 2)
    }


def test_the_source_shows_in_the_queue_the_export_the_trust_and_the_dashboard(
    budget_task,
    fake,  # noqa: F811
    django_user_model,
):
    calibrate_at(budget_task, 0.0)
    services.llm_run_execute(
        run_id=LlmRun.objects.create(task=budget_task, model="fake-1").pk,
        client=client_for(fake),
    )
    version = ModelVersion.objects.get(task=budget_task, is_active=True)
    # the export says which labels the student gave, and which student
    lines = [
        json.loads(dialogue_to_json(record, predictions))
        for record, predictions in selectors.transcript_records(
            project=budget_task.project
        )
    ]
    new = [t for line in lines if line["id"].startswith("new") for t in line["turns"]]
    assert {t["soft_label"]["act"]["source"] for t in new} == {"student"}
    assert {t["soft_label"]["act"]["model_version"] for t in new} == {version.version}
    old = [
        t for line in lines if not line["id"].startswith("new") for t in line["turns"]
    ]
    assert {t["soft_label"]["act"]["source"] for t in old} == {"llm"}
    # rescoring: a student label's trust is the student's probability of it, not 0
    run = TrainingRun.objects.create(task=budget_task)
    services.training_run_execute(run_id=run.pk)
    services.predictions_store(run_id=run.pk)
    trusts = QueueItem.objects.filter(
        task=budget_task, utterance__text__in=NEW
    ).values_list("trust", flat=True)
    assert len(trusts) == len(NEW) and all(t > 0 for t in trusts)
    # an annotator answers one: the dashboard counts the calls saved and each source's accuracy
    annotator = django_user_model.objects.create(username="gold")
    item = QueueItem.objects.get(task=budget_task, utterance__text="thanks a lot")
    soft = SoftLabel.objects.get(utterance_id=item.utterance_id)
    services.label_submit(
        item_id=item.pk,
        annotator=annotator,
        label=soft.label.value,
        submission_key="b1",
    )
    figures = dashboards.dashboard_compute(task=budget_task)["budget"]
    assert figures["on"] and figures["student_labelled"] == len(NEW)
    assert figures["calls_saved"] == 2 * len(NEW)
    student = next(s for s in figures["sources"] if s["source"].startswith("Student"))
    assert (student["answered"], student["accuracy"]) == (1, 1.0)
    # the workspace names the student as the source of the suggestion
    context = selectors.queue_item_context(
        item=QueueItem.objects.get(task=budget_task, utterance__text="why not today?")
    )
    assert context["suggestion"].source == "student"


def test_scoring_keeps_each_answer_for_the_threshold(act, django_user_model):  # noqa: F811
    items = answer_first(act, django_user_model, 10)
    QueueItem.objects.filter(pk__in=[i.pk for i in items[:4]]).update(audit=True)
    run = TrainingRun.objects.create(task=act)
    services.training_run_execute(run_id=run.pk)
    services.predictions_store(run_id=run.pk)
    budget = ModelVersion.objects.get(run=run).budget
    assert len(budget["confidence"]) == 10 and sum(budget["uniform"]) == 4
    assert all(0 < c <= 1 for c in budget["confidence"])
    # the fixture's LLM labels are wrong on one utterance in five
    llm_wrong = sum(
        1
        for item in items[:10]
        if SoftLabel.objects.get(utterance_id=item.utterance_id).label.value
        != ("question" if item.utterance.text.endswith("?") else "inform")
    )
    assert sum(budget["llm_right"]) == 10 - llm_wrong
    # the labels themselves, for the macro-F1 guard, agree with right/wrong
    assert len(budget["truth"]) == len(budget["student_label"]) == 10
    for key in ("student", "llm"):
        labels = zip(budget[f"{key}_label"], budget["truth"], strict=True)
        right = [int(a == t) for a, t in labels]
        assert right == budget[f"{key}_right"]


def test_a_student_that_drops_the_rare_label_gets_no_threshold(
    budget_task, client, lead_lena
):
    # 20 answers the student is sure of: it says label 0 to all, and 4 are label 1; the LLM
    # finds those 4 but calls 4 of the 0s 1. Both are right on 16 of 20: accuracy alone (a
    # version scored before the guard keeps right/wrong only) lets the student in.
    from annotate.services.budget import budget_threshold

    version = ModelVersion.objects.get(task=budget_task, is_active=True)
    truth = [0] * 16 + [1] * 4
    llm_label = [1] * 4 + [0] * 12 + [1] * 4  # wrong on 4 of the 0s, right on the 1s
    version.budget = {
        "confidence": [0.9] * 20,
        "student_right": [int(t == 0) for t in truth],
        "llm_right": [int(m == t) for m, t in zip(llm_label, truth, strict=True)],
        "uniform": [1] * 20,
    }
    version.save()
    before_the_guard = budget_threshold(budget_task, version)
    assert before_the_guard.threshold == 0.9  # 0.8 against 0.8
    figures = dashboards.dashboard_compute(task=budget_task)["budget"]["threshold"]
    assert figures["student_macro_f1"] is None  # chosen on right/wrong only
    version.budget |= {
        "truth": truth,
        "student_label": [0] * 20,
        "llm_label": llm_label,
    }
    version.save()
    # macro-F1: the student (2·16/36 + 0) / 2 = 0.444, the LLM (2·12/28 + 2·4/12) / 2 = 0.762
    assert budget_threshold(budget_task, version).threshold is None
    version.budget["student_label"] = (
        truth  # a student that finds the rare label passes
    )
    version.budget["student_right"] = [1] * 20
    version.save()
    chosen = budget_threshold(budget_task, version)
    assert chosen.threshold == 0.9 and chosen.student_macro_f1 == 1.0
    figures = dashboards.dashboard_compute(task=budget_task)["budget"]["threshold"]
    assert figures["llm_macro_f1"] == pytest.approx((24 / 28 + 8 / 12) / 2)
    client.force_login(lead_lena)
    page = client.get("/projects/support/tasks/act/dashboard/").content.decode()
    assert "macro-F1 1.000 against 0.762" in " ".join(page.split())
