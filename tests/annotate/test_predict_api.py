"""POST /api/projects/<p>/tasks/<t>/predict: the active student, live, without PyTorch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from annotate import predictor, services
from annotate.models import ModelVersion, TrainingRun
from tests.annotate.test_training_run import act, learner_settings  # noqa: F401
from tests.learner.conftest import tiny_backbone  # noqa: F401
from tests.processes import embedded_env

ROOT = Path(__file__).resolve().parents[2]
URL = "/api/projects/support/tasks/act/predict"


@pytest.fixture
def token(admin_alice):
    _, key = services.api_token_create(user=admin_alice, name="predict")
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


@pytest.fixture
def trained(act):  # noqa: F811
    run = TrainingRun.objects.create(task=act)
    services.training_run_execute(run_id=run.pk)
    services.predictions_store(run_id=run.pk)
    return ModelVersion.objects.get(run=run)


def post(client, token, body, url=URL):
    return client.post(
        url,
        data=body if isinstance(body, str) else json.dumps(body),
        content_type="application/json",
        **token,
    )


def test_a_token_is_required(client, act):  # noqa: F811
    assert post(client, {}, {"text": "hi"}).status_code == 401


def test_before_any_model_the_answer_is_409_and_says_what_to_do(client, act, token):  # noqa: F811
    response = post(client, token, {"text": "where is it?"})
    assert response.status_code == 409
    assert "no trained model yet" in response.json()["error"]


def test_one_utterance(client, trained, token):
    response = post(
        client,
        token,
        {
            "text": "where is it?",
            "speaker": "A",
            "context": [{"speaker": "B", "text": "hi"}],
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == trained.version
    assert body["labels"] == list(
        trained.task.ordered_labels().values_list("value", flat=True)
    )
    assert set(body["probabilities"]) == set(body["labels"])
    assert sum(body["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    assert body["label"] == max(body["probabilities"], key=body["probabilities"].get)


def test_a_batch_answers_each_utterance_in_order(client, trained, token):
    texts = ["where is it?", "it is here", "who called?"]
    response = post(client, token, {"utterances": [{"text": t} for t in texts]})
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == 3
    alone = [post(client, token, {"text": t}).json()["probabilities"] for t in texts]
    for one, batched in zip(alone, predictions, strict=True):
        assert batched["probabilities"] == pytest.approx(one, abs=1e-3)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "must be JSON"),
        ({"text": "   "}, "text is missing or empty"),
        ({"speaker": "A"}, "text is missing or empty"),
        ({"text": "x" * 10_001}, "at most 10000"),
        ({"utterances": []}, 'give {"text"'),
        (
            {"utterances": [{"text": "ok"}, {"text": ""}]},
            "utterances[1]: text is missing",
        ),
        ({"text": "ok", "context": "hi"}, "context must be a list"),
        ({"text": "ok", "context": [{"text": ""}]}, "context[0]: text is missing"),
        ({"text": "ok", "speaker": 3}, "speaker must be a string"),
    ],
)
def test_bad_input_gets_a_clear_400(client, trained, token, body, message):
    response = post(client, token, body)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_too_large_a_batch_and_an_unknown_task(client, trained, token, settings):
    settings.PARLEY_PREDICT_MAX_BATCH = 2
    response = post(client, token, {"utterances": [{"text": "a"}] * 3})
    assert response.status_code == 400 and "at most 2" in response.json()["error"]
    response = post(client, token, {"text": "a"}, url=URL.replace("/act/", "/acts/"))
    assert response.status_code == 400
    assert "unknown task 'acts'" in response.json()["error"]
    assert "act, sentiment" in response.json()["error"]


def test_other_projects_and_outsiders_get_404(client, trained, outsider_olga):
    _, key = services.api_token_create(user=outsider_olga, name="x")
    response = post(client, {"HTTP_AUTHORIZATION": f"Bearer {key}"}, {"text": "a"})
    assert response.status_code == 404


def test_an_annotator_may_ask(client, trained, annotator_ann):
    _, key = services.api_token_create(user=annotator_ann, name="x")
    response = post(client, {"HTTP_AUTHORIZATION": f"Bearer {key}"}, {"text": "a"})
    assert response.status_code == 200


def test_the_rate_limit_answers_429(client, trained, token, settings):
    settings.PARLEY_API_REQUESTS_PER_MIN = 2
    codes = [post(client, token, {"text": "a"}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_a_new_active_version_replaces_the_loaded_one(
    client,
    trained,
    token,
    act,  # noqa: F811
    settings,
):
    settings.PARLEY_PREDICT_VERSION_CHECK_S = 3600
    first = post(client, token, {"text": "where is it?"}).json()
    loaded = predictor._loaded[act.pk]
    run = TrainingRun.objects.create(task=act)
    services.training_run_execute(run_id=run.pk)
    services.predictions_store(run_id=run.pk)
    # within PARLEY_PREDICT_VERSION_CHECK_S the process does not look again
    assert (
        post(client, token, {"text": "x"}).json()["model_version"]
        == first["model_version"]
    )
    settings.PARLEY_PREDICT_VERSION_CHECK_S = 0
    second = post(client, token, {"text": "where is it?"}).json()
    assert second["model_version"] == first["model_version"] + 1
    assert predictor._loaded[act.pk] is not loaded
    # the same version again: no reload
    post(client, token, {"text": "again"})
    assert predictor._loaded[act.pk].version.pk == ModelVersion.objects.get(run=run).pk


def test_a_version_without_its_onnx_export_is_503_with_the_reason(
    client, trained, token
):
    full = Path(trained.artifact_path) / "full"
    for f in (full / "onnx").iterdir():
        f.unlink()
    (full / "onnx.failed").write_text("RuntimeError: unsupported operator\n")
    predictor._loaded.clear()
    response = post(client, token, {"text": "a"})
    assert response.status_code == 503
    assert "unsupported operator" in response.json()["error"]


def test_the_web_process_answers_without_loading_torch(trained, tmp_path):
    """A process that only set Django up answers a prediction from the exported model."""
    labels = list(trained.task.ordered_labels().values_list("value", flat=True))
    code = f"""
import django, sys
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from annotate import predictor, services
from annotate.models import ModelVersion
project = services.project_create(name="P", slug="p", tasks={{"act": {labels!r}}})
task = project.tasks.get(name="act")
ModelVersion.objects.create(task=task, version=1, artifact_path={trained.artifact_path!r}, is_active=True)
out = predictor.predict(task, [{{"text": "where is it?"}}])
assert len(out["predictions"]) == 1
print("torch" in sys.modules)
"""
    env = embedded_env(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "False"
