"""Training runs and pool scoring, with the tiny test backbone (services called directly)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from annotate import services
from annotate.models import HumanLabel, ModelVersion, Prediction, QueueItem, TrainingRun
from tests.conftest import jsonl
from tests.learner.conftest import tiny_backbone  # noqa: F401 - fixture

QUESTIONS = ["where is it?", "what time is it?", "who called?", "can you help?"]
ANSWERS = ["it is here", "five o'clock", "your mother", "sure I can"]


@pytest.fixture
def learner_settings(settings, tiny_backbone, tmp_path):  # noqa: F811
    settings.LEARNER_BACKBONE = tiny_backbone
    settings.LEARNER_EPOCHS = 1
    settings.LEARNER_DEVICE = "cpu"
    settings.LEARNER_MAX_LENGTH = 32
    settings.PARLEY_TRUST_FOLDS = 2
    settings.PARLEY_TRUST_MIN_HUMAN = 8
    settings.DATA_DIR = tmp_path
    return settings


@pytest.fixture
def act(project, learner_settings):
    lines = []
    for d in range(12):
        turns = []
        for t in range(4):
            question = t % 2 == 0
            text = (QUESTIONS if question else ANSWERS)[(d + t) % 4]
            wrong = (d + t) % 5 == 0  # one LLM label in five is wrong
            label = (
                ("inform" if wrong else "question")
                if question
                else ("question" if wrong else "inform")
            )
            turns.append(
                {
                    "speaker": "AB"[t % 2],
                    "text": text,
                    "llm": {
                        "act": [
                            {"prompt": "P1", "label": label, "confidence": 0.8},
                            {"prompt": "P2", "label": label, "confidence": 0.6},
                        ]
                    },
                }
            )
        lines.append({"id": f"d{d}", "turns": turns})
    services.transcripts_import(
        project=project, stream=io.BytesIO(jsonl(*lines)), name="t.jsonl"
    )
    task = project.tasks.get(name="act")
    services.queue_sync(task=task)
    return task


def test_a_run_trains_the_student_and_its_folds_then_activates_it(
    act, django_capture_on_commit_callbacks, monkeypatch
):
    scored = []
    monkeypatch.setattr("annotate.tasks.score_pool.delay", scored.append)
    run = TrainingRun.objects.create(task=act, config={"epochs": 1})
    with django_capture_on_commit_callbacks(execute=True):
        services.training_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded" and run.progress == 1.0 and run.finished_at
    version = ModelVersion.objects.get(task=act)
    assert version.is_active and version.version == 1 and version.run == run
    assert sorted(p.name for p in Path(version.artifact_path).iterdir()) == [
        "fold-0",
        "fold-1",
        "full",
    ]
    assert version.metrics["train_utterances"] == 48
    # No early-stopping split by default (it tied on dev): the students are scored on the
    # human labels that arrive after training (dashboards), and by the folds for trust.
    assert (
        version.metrics["validation"] is None and len(version.metrics["history"]) == 1
    )
    assert scored == [run.pk]


def test_a_run_trains_with_the_recorded_lambda_kd(settings):
    import learner
    from annotate.services.training import learner_config, learner_configs

    # LEARNER_KD_WEIGHT's default is the learner's own: the two homes of it agree.
    _, training = learner_configs(learner_config(), ["question", "inform"])
    assert training.kd_weight == learner.TrainingConfig().kd_weight == 0.1
    settings.LEARNER_KD_WEIGHT = 1.0
    recorded = learner_config()
    settings.LEARNER_KD_WEIGHT = 0.3  # changed after the run was queued
    _, training = learner_configs({**learner_config(), **recorded}, ["question"])
    assert recorded["kd_weight"] == 1.0 and training.kd_weight == 1.0


@pytest.mark.parametrize(
    "human_labels, two_stage, kd_weight", [(749, False, 0.1), (750, True, 1.0)]
)
def test_by_default_the_student_trains_two_stage_from_750_human_labels_at_lambda_kd_1(
    human_labels, two_stage, kd_weight
):
    # issue 17's q4 (docs/distillation.md): two-stage pref pre-trained at λ_kd 1 won on dev
    # with 764 human labels; one stage at λ_kd 0.1 stays the default before.
    from annotate.services.training import learner_config, learner_configs

    _, training = learner_configs(
        learner_config(), ["question", "inform"], human_labels=human_labels
    )
    assert (training.two_stage, training.kd_weight) == (two_stage, kd_weight)


@pytest.mark.parametrize("threshold, two_stage", [(0, False), (21, False), (20, True)])
def test_the_student_is_fine_tuned_on_human_labels_once_there_are_enough(
    act, django_user_model, learner_settings, threshold, two_stage
):
    learner_settings.LEARNER_FINETUNE_MIN_HUMAN = threshold
    answer_first(act, django_user_model, n=20)
    run = TrainingRun.objects.create(task=act)
    services.training_run_execute(run_id=run.pk)
    version = ModelVersion.objects.get(task=act)
    stages = {row["stage"] for row in version.metrics["history"]}
    assert version.metrics["human_labels"] == 20
    assert version.metrics["two_stage"] is two_stage
    assert version.metrics["kd_weight"] == (1.0 if two_stage else 0.1)
    assert stages == ({1, 2} if two_stage else {1})


def test_a_project_of_one_dialogue_trains_and_scores_without_the_empty_fold(
    project, learner_settings
):
    # The one dialogue falls in one of the two folds; the model of that fold would train on
    # the other fold's dialogues, of which there are none.
    turns = [
        {
            "speaker": "AB"[t % 2],
            "text": (QUESTIONS if t % 2 == 0 else ANSWERS)[t],
            "llm": {
                "act": [
                    {
                        "prompt": "P1",
                        "label": "question" if t % 2 == 0 else "inform",
                        "confidence": 0.9,
                    }
                ]
            },
        }
        for t in range(4)
    ]
    services.transcripts_import(
        project=project,
        name="one.jsonl",
        stream=io.BytesIO(jsonl({"id": "only", "turns": turns})),
    )
    task = project.tasks.get(name="act")
    services.queue_sync(task=task)
    run = TrainingRun.objects.create(task=task)
    services.training_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    version = ModelVersion.objects.get(task=task)
    saved = sorted(p.name for p in Path(version.artifact_path).iterdir())
    assert len(saved) == 2 and saved[-1] == "full"
    services.predictions_store(run_id=run.pk)
    assert Prediction.objects.filter(model_version=version).count() == 4
    assert QueueItem.objects.filter(task=task, trust_version=version).count() == 4


def test_a_redelivered_run_is_not_trained_twice(act):
    run = TrainingRun.objects.create(task=act, status="succeeded")
    services.training_run_execute(run_id=run.pk)
    assert not ModelVersion.objects.exists()


def test_a_failing_run_keeps_the_active_model_and_every_human_label(
    act, annotator_ann, learner_settings
):
    run = TrainingRun.objects.create(task=act)
    services.training_run_execute(run_id=run.pk)
    item = QueueItem.objects.filter(task=act).first()
    services.label_submit(
        item_id=item.pk, annotator=annotator_ann, label="inform", submission_key="k"
    )
    learner_settings.LEARNER_BACKBONE = "/nonexistent/model"
    broken = TrainingRun.objects.create(task=act)
    services.training_run_execute(run_id=broken.pk)
    broken.refresh_from_db()
    assert broken.status == "failed" and "nonexistent" in broken.error
    assert ModelVersion.objects.get(is_active=True).run == run
    assert HumanLabel.objects.filter(task=act).count() == 1


def test_scoring_stamps_predictions_and_trust_with_the_version_and_skips_what_is_done(
    act,
):
    run = TrainingRun.objects.create(task=act)
    services.training_run_execute(run_id=run.pk)
    services.predictions_store(run_id=run.pk, chunk_size=10)
    version = ModelVersion.objects.get(task=act)
    assert Prediction.objects.filter(model_version=version).count() == 48
    prediction = Prediction.objects.filter(model_version=version).first()
    assert len(prediction.probabilities) == 4 and sum(
        prediction.probabilities
    ) == pytest.approx(1, abs=1e-4)
    items = QueueItem.objects.filter(task=act)
    assert all(
        i.trust_version_id == version.pk and i.trust_source == "heuristic"
        for i in items
    )
    from django.core.cache import cache

    from annotate import dashboards

    assert (
        cache.get(dashboards._dashboard_key(act)) is not None
    )  # the new version's dashboard is ready
    before = list(Prediction.objects.order_by("pk").values_list("pk", "trust"))
    services.predictions_store(run_id=run.pk)  # redelivered: nothing new
    assert list(Prediction.objects.order_by("pk").values_list("pk", "trust")) == before


def answer_first(act, django_user_model, n: int = 16) -> list[QueueItem]:
    """The task's items by pk; the first `n` answered with their gold label by one annotator."""
    annotator = django_user_model.objects.create(username="gold")
    items = list(
        QueueItem.objects.filter(task=act).select_related("utterance").order_by("pk")
    )
    for k, item in enumerate(items[:n]):
        gold = "question" if item.utterance.text.endswith("?") else "inform"
        services.label_submit(
            item_id=item.pk, annotator=annotator, label=gold, submission_key=f"g{k}"
        )
    return items


@pytest.mark.parametrize("verifier", ["signals", "verifier"])
def test_trust_is_calibrated_once_enough_human_labels_exist(
    act, django_user_model, settings, verifier, monkeypatch
):
    from learner import audit

    settings.PARLEY_TRUST_VERIFIER = verifier
    calibrations = []
    fit = audit.PlattCalibration.fit
    monkeypatch.setattr(
        audit.PlattCalibration,
        "fit",
        lambda self, *a, **k: calibrations.append(len(a[0])) or fit(self, *a, **k),
    )
    items = answer_first(act, django_user_model)
    # twelve of the answers were audits, drawn from the whole pool
    QueueItem.objects.filter(pk__in=[i.pk for i in items[:12]]).update(
        audit=True, selection_probability=1 / len(items)
    )
    run = TrainingRun.objects.create(task=act)
    services.training_run_execute(run_id=run.pk)
    services.predictions_store(run_id=run.pk)
    assert set(
        QueueItem.objects.filter(task=act).values_list("trust_source", flat=True)
    ) == {"calibrated"}
    assert all(0 <= t <= 1 for t in QueueItem.objects.values_list("trust", flat=True))
    # the verifier calibrates on the twelve audit answers; the previous trust has no audit
    assert calibrations == ([12] if verifier == "verifier" else [])
    # the queue's priority is the trust, pushed back only by the diversity rule
    for trust, priority in QueueItem.objects.filter(task=act, open=True).values_list(
        "trust", "priority"
    ):
        assert priority >= trust - 1e-9


def test_the_verifier_reads_each_utterances_previous_llm_label(
    act, django_user_model, monkeypatch
):
    import numpy as np

    from learner import NO_PREVIOUS, trust

    seen: dict[str, list[list[int]]] = {"fit": [], "predict": []}
    fit, predict = trust.Verifier.fit, trust.Verifier.predict

    def spy(name, method):
        def wrapper(self, *args, previous=None, **kwargs):
            seen[name].append(np.asarray(previous).tolist())
            return method(self, *args, previous=previous, **kwargs)

        return wrapper

    monkeypatch.setattr(trust.Verifier, "fit", spy("fit", fit))
    monkeypatch.setattr(trust.Verifier, "predict", spy("predict", predict))
    items = answer_first(act, django_user_model)
    run = TrainingRun.objects.create(task=act)
    services.training_run_execute(run_id=run.pk)
    services.predictions_store(run_id=run.pk)

    # The fixture's LLM labels: turn t of dialogue d says "question" on even turns, unless
    # (d + t) % 5 == 0, when it says the other label.
    labels = list(act.ordered_labels().values_list("value", flat=True))

    def llm_label(d: int, t: int) -> int:
        question = (t % 2 == 0) != ((d + t) % 5 == 0)
        return labels.index("question" if question else "inform")

    def previous(d: int, t: int) -> int:
        return NO_PREVIOUS if t == 0 else llm_label(d, t - 1)

    answered = sorted(
        (int(i.utterance.dialogue.external_id[1:]), i.utterance.position)
        for i in items[:16]
    )
    assert seen["fit"] == [[previous(d, t) for d, t in answered]]
    every = sorted((d, t) for d in range(12) for t in range(4))
    assert seen["predict"] == [[previous(d, t) for d, t in every]]


def test_a_run_whose_worker_died_does_not_block_the_next_one(act):
    from datetime import timedelta

    from django.utils import timezone

    dead = TrainingRun.objects.create(
        task=act,
        status="running",
        started_at=timezone.now() - timedelta(hours=1),
        heartbeat_at=timezone.now() - timedelta(minutes=11),
    )
    alive = services.training_run_request(task=act)
    dead.refresh_from_db()
    assert dead.status == "failed" and "stopped reporting progress" in dead.error
    assert alive.pk != dead.pk and alive.status == "queued"
    TrainingRun.objects.filter(pk=alive.pk).update(
        status="running", heartbeat_at=timezone.now()
    )
    assert (
        services.training_run_request(task=act).pk == alive.pk
    )  # a live one is left alone


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_scoring_on_onnx_runtime_matches_torch(act, settings, backend):
    from pathlib import Path

    run = TrainingRun.objects.create(task=act)
    services.training_run_execute(run_id=run.pk)
    settings.LEARNER_INFERENCE = "torch"
    services.predictions_store(run_id=run.pk)
    version = ModelVersion.objects.get(task=act)
    torch_rows = dict(
        Prediction.objects.filter(model_version=version).values_list(
            "utterance_id", "probabilities"
        )
    )
    torch_trust = dict(QueueItem.objects.filter(task=act).values_list("pk", "trust"))
    Prediction.objects.all().delete()
    settings.LEARNER_INFERENCE = backend
    services.predictions_store(run_id=run.pk)
    # exported once, beside the checkpoint
    assert (Path(version.artifact_path) / "full" / "onnx" / "model.int8.onnx").is_file()
    tolerance = 1e-3 if backend == "onnx" else 0.05
    for utterance_id, probabilities in Prediction.objects.filter(
        model_version=version
    ).values_list("utterance_id", "probabilities"):
        assert probabilities == pytest.approx(torch_rows[utterance_id], abs=tolerance)
    for pk, trust in QueueItem.objects.filter(task=act).values_list("pk", "trust"):
        assert trust == pytest.approx(torch_trust[pk], abs=tolerance)
