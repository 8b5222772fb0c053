"""The whole active loop through a real Celery worker on Redis and PostgreSQL:
import → LLM labelling (fake OpenAI-compatible server) → training (tiny student) → scoring →
queue → submits → an automatic retrain → rescoring."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from annotate import services
from annotate.models import (
    ImportJob,
    LlmLabel,
    LlmRun,
    ModelVersion,
    Prediction,
    PromptTemplate,
    QueueItem,
    TrainingRun,
)
from tests.conftest import jsonl
from tests.fake_llm import FakeLlm
from tests.learner.conftest import tiny_backbone  # noqa: F401 - fixture
from tests.processes import start_worker, stop, worker_env

pytestmark = pytest.mark.worker

QUESTIONS = ["where is it?", "what time is it?", "who called?", "can you help?"]
ANSWERS = ["it is here", "five o'clock", "your mother", "sure I can"]


@pytest.fixture
def loop_settings(settings, tiny_backbone):  # noqa: F811
    values = {
        "LEARNER_BACKBONE": tiny_backbone,
        "LEARNER_EPOCHS": "1",
        "LEARNER_DEVICE": "cpu",
        "LEARNER_MAX_LENGTH": "32",
        "PARLEY_TRUST_FOLDS": "2",
        "PARLEY_RETRAIN_EVERY": "6",
        "PARLEY_OVERLAP_FRACTION": "0",
        "LLM_MODEL": "fake-1",
        "LLM_CONCURRENCY": "4",
    }
    for name, value in values.items():
        setattr(settings, name, int(value) if value.isdigit() else value)
    return values


@pytest.fixture
def fake() -> Iterator[FakeLlm]:
    with FakeLlm() as server:
        yield server


@pytest.fixture
def worker(transactional_db, loop_settings, fake, settings, tmp_path) -> Iterator[None]:
    import redis

    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    settings.LLM_BASE_URL = fake.base_url
    env = worker_env(**loop_settings, LLM_BASE_URL=fake.base_url)
    process = start_worker(env, tmp_path / "worker.log")
    yield
    stop(process)
    print((tmp_path / "worker.log").read_text()[-5000:])  # shown when the test fails


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_active_loop_runs_end_to_end_on_a_real_worker(
    worker, project, admin_alice, annotator_ann, fake
):
    assert connection.vendor == "postgresql"
    lines = [
        {
            "id": f"d{d}",
            "turns": [
                {
                    "speaker": "AB"[t % 2],
                    "text": (QUESTIONS if t % 2 == 0 else ANSWERS)[(d + t) % 4],
                }
                for t in range(4)
            ],
        }
        for d in range(10)
    ]
    job = services.import_job_create(
        project=project,
        upload=SimpleUploadedFile("loop.jsonl", jsonl(*lines)),
        user=admin_alice,
    )
    wait_for(lambda: ImportJob.objects.get(pk=job.pk).is_finished, "the import")
    task = project.tasks.get(name="act")
    assert QueueItem.objects.filter(task=task).count() == 40

    for name in ("P1", "P2"):
        PromptTemplate.objects.create(
            task=task, name=name, template="{context}\nUtterance: {utterance}"
        )
    run = services.llm_run_request(task=task, requested_by=admin_alice)
    wait_for(
        lambda: LlmRun.objects.get(pk=run.pk).status in ("succeeded", "failed"),
        "the LLM run",
    )
    run.refresh_from_db()
    assert (run.status, run.done, run.requests) == ("succeeded", 80, 80), run.error
    assert LlmLabel.objects.filter(task=task, model="fake-1").count() == 80

    first = services.training_run_request(task=task, requested_by=admin_alice)
    wait_for(
        lambda: Prediction.objects.filter(task=task).count() == 40, "the first scoring"
    )
    v1 = ModelVersion.objects.get(task=task, run=first)
    assert QueueItem.objects.filter(task=task, trust_version=v1).count() == 40

    for n in range(6):  # PARLEY_RETRAIN_EVERY
        item = services.queue_claim(task=task, annotator=annotator_ann)
        gold = "question" if item.utterance.text.endswith("?") else "inform"
        services.label_submit(
            item_id=item.pk,
            annotator=annotator_ann,
            label=gold,
            submission_key=f"loop-{n}",
        )
    second = TrainingRun.objects.exclude(pk=first.pk).get(task=task)
    wait_for(
        lambda: (
            Prediction.objects.filter(task=task, model_version__run=second).count()
            == 40
        ),
        "the retrain",
    )
    v2 = ModelVersion.objects.get(run=second)
    assert (
        v2.version == 2
        and v2.is_active
        and not ModelVersion.objects.get(pk=v1.pk).is_active
    )
    assert v2.metrics["human_labels"] == 6
    assert QueueItem.objects.filter(task=task, trust_version=v2).count() == 40
