"""Dashboard selectors against hand-computed fixtures."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest

from annotate import dashboards, services
from annotate.models import (
    HumanLabel,
    Label,
    LabelRetraction,
    ModelVersion,
    Prediction,
    QueueItem,
    TrainingRun,
    Utterance,
)
from tests.conftest import jsonl

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LLM = [
    "inform",
    "inform",
    "question",
    "question",
    "directive",
    "inform",
]  # the ensemble's labels
REFERENCE = [
    "inform",
    "question",
    "question",
    "inform",
    "directive",
    None,
]  # the humans'


@pytest.fixture
def act(project, settings):
    settings.PARLEY_OVERLAP_FRACTION = 0.0
    turns = [
        {
            "speaker": "A",
            "text": f"u{i}",
            "llm": {
                "act": [
                    {"prompt": "P1", "label": label, "confidence": 0.9},
                    {"prompt": "P2", "label": "inform", "confidence": 0.6},
                ]
            },
        }
        for i, label in enumerate(LLM)
    ]
    services.transcripts_import(
        project=project,
        stream=io.BytesIO(jsonl({"id": "d", "turns": turns})),
        name="d.jsonl",
    )
    task = project.tasks.get(name="act")
    services.queue_sync(task=task)
    return task


def u(i: int) -> Utterance:
    return Utterance.objects.get(text=f"u{i}")


def label(task, value: str) -> Label:
    return Label.objects.get(task=task, value=value)


def human(
    task, i, value, *, who=None, at=T0, source="annotation", llm=None, trust=None
) -> HumanLabel:
    return HumanLabel.objects.create(
        utterance=u(i),
        task=task,
        label=label(task, value),
        annotator=who,
        annotator_name=who.username if who else "import",
        source=source if who or source != "annotation" else "import",
        created_at=at,
        llm_label=label(task, llm) if llm else None,
        trust=trust,
    )


@pytest.fixture
def references(act, annotator_ann):
    for i, value in enumerate(REFERENCE):
        if value:
            human(act, i, value, who=annotator_ann, at=T0 + timedelta(minutes=i))
    return act


def test_the_reference_is_the_adjudication_else_the_latest_label(
    act, annotator_ann, annotator_bob, lead_lena
):
    human(act, 0, "inform", who=annotator_ann, at=T0)
    human(act, 0, "question", who=annotator_bob, at=T0 + timedelta(minutes=5))
    assert dashboards.reference_labels(act).get().label.value == "question"
    human(
        act,
        0,
        "directive",
        who=lead_lena,
        at=T0 + timedelta(minutes=1),
        source="adjudication",
    )
    assert dashboards.reference_labels(act).get().label.value == "directive"
    late = human(act, 1, "inform", who=annotator_ann, at=T0)
    LabelRetraction.objects.create(label=late)
    assert dashboards.reference_labels(act).count() == 1


def test_llm_accuracy_overall_per_class_and_per_prompt(references):
    result = dashboards.llm_accuracy(task=references)
    scores = result["ensemble"]
    assert scores.n == 5 and scores.accuracy == pytest.approx(3 / 5)
    per = {row["label"]: row for row in scores.per_class}
    assert (per["inform"]["precision"], per["inform"]["recall"]) == (0.5, 0.5)
    assert (per["question"]["precision"], per["question"]["recall"]) == (0.5, 0.5)
    assert per["directive"]["f1"] == 1.0 and per["commissive"]["support"] == 0
    assert scores.macro_f1 == pytest.approx(
        (0.5 + 0.5 + 1.0) / 3
    )  # commissive is absent from both
    assert scores.confusion[0] == [
        1,
        1,
        0,
        0,
    ]  # reference inform: predicted inform once, question once
    # imported answers name no model: the column says so instead of staying blank
    assert {row["model"] for row in result["per_prompt"]} == {"imported, not named"}
    prompts = {row["prompt"]: row["accuracy"] for row in result["per_prompt"]}
    assert prompts == {
        "P1": pytest.approx(3 / 5),
        "P2": pytest.approx(2 / 5),
    }  # P2 always says inform


def test_student_accuracy_counts_only_labels_the_version_did_not_train_on(
    act, annotator_ann
):
    run = TrainingRun.objects.create(task=act, status="succeeded", started_at=T0)
    version = ModelVersion.objects.create(
        task=act, run=run, version=1, artifact_path="/x", is_active=True
    )
    for i, value in enumerate(["inform", "question", "inform"]):
        Prediction.objects.create(
            utterance=u(i),
            task=act,
            model_version=version,
            probabilities=[1, 0, 0, 0],
            label=label(act, value),
            trust=0.5,
        )
    human(
        act, 0, "question", who=annotator_ann, at=T0 - timedelta(hours=1)
    )  # trained on: left out
    human(act, 1, "question", who=annotator_ann, at=T0 + timedelta(hours=1))  # right
    human(act, 2, "question", who=annotator_ann, at=T0 + timedelta(hours=1))  # wrong
    [row] = dashboards.student_accuracy(task=act)
    assert (
        row["version"] == version
        and row["scores"].n == 2
        and row["scores"].accuracy == 0.5
    )


def test_trust_reliability_and_ece(act, annotator_ann):
    for i, (trust, llm, value) in enumerate(
        [
            (0.15, "inform", "question"),
            (0.15, "inform", "inform"),
            (0.95, "inform", "inform"),
            (0.95, "question", "question"),
            (1.0, "question", "question"),
        ]
    ):
        human(act, i, value, who=annotator_ann, llm=llm, trust=trust)
    result = dashboards.trust_calibration(task=act)
    assert [(b["bin"], b["n"]) for b in result["bins"]] == [(1, 2), (9, 3)]
    assert result["bins"][0]["accuracy"] == 0.5 and result["bins"][1][
        "trust"
    ] == pytest.approx(2.9 / 3)
    assert result["ece"] == pytest.approx(2 / 5 * 0.35 + 3 / 5 * (1 - 2.9 / 3))


def test_the_estimate_of_wrong_labels_left_in_the_pool(act, annotator_ann):
    trusts = [0.9, 0.6, 0.2, 0.5, 0.5, 0.5]
    for i, t in enumerate(trusts):
        QueueItem.objects.filter(utterance=u(i)).update(trust=t)
    QueueItem.objects.filter(utterance__in=[u(3), u(4)]).update(
        answers=1, open=False
    )  # reviewed
    QueueItem.objects.filter(utterance=u(5)).update(
        answers=1
    )  # one of two answers in: not unreviewed
    result = dashboards.remaining_errors(task=act)
    assert result["items"] == 3 and result["estimate"] == pytest.approx(0.1 + 0.4 + 0.8)
    band = 1.96 * (0.09 + 0.24 + 0.16) ** 0.5
    assert result["low"] == pytest.approx(max(0.0, 1.3 - band)) and result[
        "high"
    ] == pytest.approx(1.3 + band)


def test_burndown_counts_each_utterance_once_on_its_first_label(
    act, annotator_ann, annotator_bob
):
    human(act, 0, "inform", who=annotator_ann, at=T0)
    human(
        act, 0, "inform", who=annotator_bob, at=T0 + timedelta(days=1)
    )  # a second opinion
    human(act, 1, "inform", who=annotator_ann, at=T0)
    human(act, 2, "inform", who=annotator_bob, at=T0 + timedelta(days=1))
    rows = dashboards.burndown(task=act)
    assert [(r["day"].isoformat(), r["labelled"], r["left"]) for r in rows] == [
        ("2026-11-02", 2, 4),
        ("2026-11-03", 1, 3),
    ]


def test_throughput_and_accepted_suggestions_per_annotator(
    act, annotator_ann, annotator_bob
):
    # ann: 3 labels 2 and 20 minutes apart (the 20 count as 5: she was away)
    for i, (value, llm, minute) in enumerate(
        [
            ("inform", "inform", 0),
            ("question", "question", 2),
            ("inform", "question", 22),
        ]
    ):
        human(
            act, i, value, who=annotator_ann, at=T0 + timedelta(minutes=minute), llm=llm
        )
    # bob: 8 labels in 3 minutes and a half, one every 30 s
    for i in range(8):
        human(
            act, 3 + i % 3, "inform", who=annotator_bob,
            at=T0 + timedelta(seconds=30 * i), llm="inform",
        )  # fmt: skip
    stats = {row["annotator"]: row for row in dashboards.annotator_stats(task=act)}
    assert stats["ann"]["labels"] == 3
    assert stats["ann"]["active_seconds"] == 7 * 60  # 2 min + 5 min (cut off)
    assert stats["ann"]["per_hour"] == pytest.approx(2 / (7 / 60))
    assert stats["ann"]["accepted_share"] == pytest.approx(2 / 3)
    assert stats["bob"]["active_seconds"] == 210
    assert stats["bob"]["per_hour"] == pytest.approx(7 / 210 * 3600)  # 120 an hour
    assert stats["bob"]["accepted_share"] == 1.0  # rubber-stamping shows


def test_durations_read_to_the_second():
    from annotate.templatetags.parley import duration_text

    assert duration_text(0.4) == "0 s"
    assert duration_text(42) == "42 s"
    assert duration_text(200) == "3 min 20 s"
    assert duration_text(3900) == "1 h 05 min"


def test_cohen_kappa_on_a_hand_computed_table():
    # a/b agree on 3 of 4; marginals a: (3, 1), b: (2, 2) → p_e = (3·2 + 1·2)/16 = 0.5 → κ = 0.5
    assert dashboards.cohen_kappa({(1, 1): 2, (1, 2): 1, (2, 2): 1}) == pytest.approx(
        0.5
    )
    assert dashboards.cohen_kappa({}) is None
    assert dashboards.cohen_kappa({(1, 1): 3}) == 1.0


def test_agreement_between_annotators_and_with_adjudication(
    act, annotator_ann, annotator_bob, lead_lena
):
    for i, (a, b) in enumerate(
        [
            ("inform", "inform"),
            ("inform", "inform"),
            ("inform", "question"),
            ("question", "question"),
        ]
    ):
        human(act, i, a, who=annotator_ann)
        human(act, i, b, who=annotator_bob)
    human(act, 2, "question", who=lead_lena, source="adjudication")
    result = dashboards.agreement(task=act)
    assert [(p["a"], p["b"], p["items"]) for p in result["pairs"]] == [
        ("ann", "bob", 4)
    ]
    assert result["pairs"][0]["kappa"] == pytest.approx(0.5)
    versus = {row["annotator"]: row for row in result["adjudicated"]}
    assert (
        versus["ann"]["items"] == 1 and versus["ann"]["kappa"] == 0.0
    )  # ann said inform
    assert versus["bob"]["kappa"] == 1.0


def test_the_dashboard_page_renders_every_panel(
    client, references, lead_lena, annotator_ann
):
    run = TrainingRun.objects.create(
        task=references, status="running", progress=0.4, started_at=T0
    )
    client.force_login(lead_lena)
    page = client.get("/projects/support/tasks/act/dashboard/").content.decode()
    for text in (
        "Student against human labels",
        "Training runs",
        "Per prompt of the bank",
        "Confusion matrix",
        "Reliability of trust scores",
        "wrong LLM labels left in the unreviewed pool",
        "The audit has 0 of the 30 answers",
        "Burn-down",
        "Annotators",
        "Cohen's κ",
        "Corpus (JSONL)",
        '<svg class="chart"',
        'hx-trigger="every 2s"',
    ):
        assert text in page, text
    assert "<td>0.600</td>" in page  # P1's accuracy, from the fixture
    assert (
        '<th scope="row">inform</th><td>1</td><td>1</td><td>0</td><td>0</td>' in page
    )  # confusion row
    status = client.get(f"/projects/support/tasks/act/dashboard/runs/{run.pk}/")
    assert status.status_code == 200 and "40 %" in status.content.decode()
    TrainingRun.objects.filter(pk=run.pk).update(status="succeeded", progress=1.0)
    assert (
        client.get(f"/projects/support/tasks/act/dashboard/runs/{run.pk}/").status_code
        == 286
    )  # stop polling
    client.force_login(annotator_ann)
    assert client.get("/projects/support/tasks/act/dashboard/").status_code == 403


def test_retrain_now_queues_one_run(
    client, act, lead_lena, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr("annotate.tasks.train_student.delay", sent.append)
    client.force_login(lead_lena)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/projects/support/tasks/act/dashboard/retrain")
        client.post("/projects/support/tasks/act/dashboard/retrain")
    assert TrainingRun.objects.filter(task=act).count() == 1 and len(sent) == 1


def test_the_student_export_is_a_hugging_face_directory_in_a_zip(
    client, act, lead_lena, tmp_path
):
    import zipfile

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "config.json").write_text("{}")
    (tmp_path / "full" / "parley.json").write_text("{}")
    client.force_login(lead_lena)
    assert client.get("/projects/support/tasks/act/student.zip").status_code == 404
    ModelVersion.objects.create(
        task=act, version=3, artifact_path=str(tmp_path), is_active=True
    )
    response = client.get("/projects/support/tasks/act/student.zip")
    assert (
        response["Content-Disposition"]
        == 'attachment; filename="support-act-student-v3.zip"'
    )
    names = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).namelist()
    assert names == [
        "support-act-student-v3/config.json",
        "support-act-student-v3/parley.json",
    ]


def test_an_old_snapshot_is_shown_while_a_worker_refreshes_it(act, monkeypatch):
    from django.core.cache import cache

    sent = []
    monkeypatch.setattr("annotate.tasks.dashboard_refresh.delay", sent.append)
    first = dashboards.dashboard_data(task=act)
    assert (
        dashboards.dashboard_data(task=act)["computed_at"] == first["computed_at"]
        and sent == []
    )
    key = dashboards._dashboard_key(act)
    cache.set(
        key, {**first, "computed_at": first["computed_at"] - timedelta(minutes=2)}
    )
    stale = dashboards.dashboard_data(task=act)
    dashboards.dashboard_data(
        task=act
    )  # a second look while refreshing queues nothing more
    assert stale["computed_at"] < first["computed_at"] and sent == [act.pk]
    from annotate.tasks import dashboard_refresh

    dashboard_refresh(act.pk)  # what the worker runs
    assert dashboards.dashboard_data(task=act)["computed_at"] > stale["computed_at"]


def test_the_student_export_offers_onnx_with_its_tokenizer(
    client, act, lead_lena, tmp_path
):
    import zipfile

    full = tmp_path / "full"
    (full / "onnx").mkdir(parents=True)
    for name in ("config.json", "parley.json", "tokenizer.json", "model.safetensors"):
        (full / name).write_text("{}")
    (full / "onnx" / "model.onnx").write_bytes(b"fp32")
    (full / "onnx" / "model.int8.onnx").write_bytes(b"int8")
    ModelVersion.objects.create(
        task=act, version=4, artifact_path=str(tmp_path), is_active=True
    )
    client.force_login(lead_lena)
    page = client.get("/projects/support/tasks/act/dashboard/").content.decode()
    assert "ONNX (int8, zip)" in page

    def names_and_model(query):
        response = client.get(f"/projects/support/tasks/act/student.zip{query}")
        archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
        return response, archive.namelist(), archive

    response, names, _ = names_and_model("")
    assert not any("onnx" in n for n in names)  # the Hugging Face zip stays as it was
    response, names, archive = names_and_model("?format=onnx-int8")
    assert response["Content-Disposition"].endswith(
        'support-act-student-v4-onnx-int8.zip"'
    )
    prefix = "support-act-student-v4-onnx-int8/"
    assert sorted(names) == sorted(
        prefix + n
        for n in ("config.json", "parley.json", "tokenizer.json", "model.onnx")
    )
    assert archive.read(prefix + "model.onnx") == b"int8"
    _, _, archive = names_and_model("?format=onnx")
    assert archive.read("support-act-student-v4-onnx/model.onnx") == b"fp32"
    assert (
        client.get("/projects/support/tasks/act/student.zip?format=pt").status_code
        == 400
    )
    (full / "onnx" / "model.int8.onnx").unlink()
    assert (
        client.get("/projects/support/tasks/act/student.zip?format=onnx").status_code
        == 404
    )


def test_an_empty_chart_says_why_instead_of_standing_blank(client, act, lead_lena):
    from annotate import charts

    svg = charts.line_chart("Student", [], {"accuracy": []}, empty="No model yet.")
    assert "No model yet." in svg and "<polyline" not in svg
    client.force_login(lead_lena)
    page = client.get("/projects/support/tasks/act/dashboard/").content.decode()
    assert "No model yet: the first retrain draws this chart." in page
