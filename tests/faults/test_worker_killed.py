"""A worker killed with SIGKILL in the middle of each kind of job: nothing half-written stays,
no human label or active model is lost, and the sweeper gets the job going again (or fails it
cleanly, for a training)."""

from __future__ import annotations

import io
import time

import pytest

from annotate import jobs, services, sweeper
from annotate.models import (
    Dialogue,
    HumanLabel,
    ImportJob,
    LlmLabel,
    LlmRun,
    ModelVersion,
    Prediction,
    PromptTemplate,
    QueueItem,
    TrainingRun,
    Utterance,
)
from tests.conftest import jsonl
from tests.fake_llm import FakeLlm
from tests.faults.conftest import redis_env
from tests.learner.conftest import tiny_backbone  # noqa: F401 - fixture
from tests.processes import kill, start_worker, stop, wait_for, worker_env


def _big_file(dialogues: int, turns: int = 10) -> bytes:
    return jsonl(
        *[
            {
                "id": f"d{d}",
                "turns": [
                    {
                        "speaker": "AB"[t % 2],
                        "text": f"turn {t} of {d}",
                        "llm": {"act": {"label": "inform", "confidence": 0.7}},
                    }
                    for t in range(turns)
                ],
            }
            for d in range(dialogues)
        ]
    )


def test_an_import_killed_mid_way_leaves_nothing_and_is_imported_again(
    transactional_db, private_redis, project, settings, tmp_path
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    job = services.import_job_create(
        project=project,
        upload=SimpleUploadedFile("big.jsonl", _big_file(6000)),
        user=None,
    )
    env = worker_env(**redis_env(private_redis))
    worker = start_worker(env, tmp_path / "w1.log")
    wait_for(
        lambda: ImportJob.objects.get(pk=job.pk).status == "running", what="started"
    )
    time.sleep(1.0)  # well inside the import's transaction
    kill(worker)
    job.refresh_from_db()
    assert job.status == "running", (
        "the import finished before the kill: make it bigger"
    )
    assert not Dialogue.objects.exists() and not QueueItem.objects.exists()

    # PostgreSQL ends the dead worker's session (and lets its lock go) once it notices.
    wait_for(
        lambda: jobs.job_lock_is_free(services.IMPORT_LOCK, job.pk), what="lock free"
    )
    settings.PARLEY_JOB_QUEUED_GRACE_S = 0
    report = sweeper.jobs_sweep()
    assert report["imports_requeued"] == 1
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("queued", 1)

    worker = start_worker(env, tmp_path / "w2.log")
    try:
        wait_for(
            lambda: ImportJob.objects.get(pk=job.pk).is_finished,
            timeout=120,
            what="import done",
        )
    finally:
        stop(worker)
    job.refresh_from_db()
    assert (job.status, job.created, job.attempts) == ("succeeded", 6000, 2)
    assert QueueItem.objects.count() == 2 * 60000  # both tasks, in the same transaction


def test_a_worker_killed_right_after_the_import_commits_leaves_a_complete_queue(
    transactional_db, private_redis, project, tmp_path
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    job = services.import_job_create(
        project=project, upload=SimpleUploadedFile("m.jsonl", _big_file(300)), user=None
    )
    worker = start_worker(worker_env(**redis_env(private_redis)), tmp_path / "w.log")
    wait_for(Dialogue.objects.exists, every=0.005, what="import committed")
    kill(worker)
    assert ImportJob.objects.get(pk=job.pk).status == "succeeded"
    assert QueueItem.objects.count() == 2 * Utterance.objects.count() == 6000


@pytest.fixture
def trained(transactional_db, project, settings, tiny_backbone, annotator_ann):  # noqa: F811
    """An act task with an active student and 20 human labels."""
    settings.LEARNER_BACKBONE = tiny_backbone
    settings.LEARNER_EPOCHS = 1
    settings.LEARNER_DEVICE = "cpu"
    settings.LEARNER_MAX_LENGTH = 32
    services.transcripts_import(
        project=project, stream=io.BytesIO(_big_file(40, turns=5)), name="t.jsonl"
    )
    task = project.tasks.get(name="act")
    for n, item in enumerate(QueueItem.objects.filter(task=task).order_by("pk")[:20]):
        services.label_submit(
            item_id=item.pk,
            annotator=annotator_ann,
            label="question" if n % 2 else "inform",
            submission_key=f"k{n}",
        )
    run = services.training_run_request(task=task)
    services.training_run_execute(run_id=run.pk)
    return task


def _learner_env(settings, **extra):
    return {
        "LEARNER_BACKBONE": settings.LEARNER_BACKBONE,
        "LEARNER_DEVICE": "cpu",
        "LEARNER_MAX_LENGTH": "32",
        **extra,
    }


def test_a_training_killed_mid_way_is_failed_and_changes_nothing(
    trained, private_redis, settings, tmp_path
):
    active = ModelVersion.objects.get(task=trained, is_active=True)
    labels = set(HumanLabel.objects.values_list("pk", "label_id"))
    TrainingRun.objects.filter(task=trained).exclude(status="succeeded").delete()
    run = services.training_run_request(task=trained)
    env = worker_env(
        **redis_env(private_redis), **_learner_env(settings, LEARNER_EPOCHS="500")
    )
    worker = start_worker(env, tmp_path / "w.log", queues="training")
    wait_for(
        lambda: TrainingRun.objects.get(pk=run.pk).heartbeat_at,
        timeout=120,
        what="training started",
    )
    kill(worker)
    assert TrainingRun.objects.get(pk=run.pk).status == "running"

    settings.PARLEY_JOB_STALE_S = 1
    time.sleep(1.5)
    assert sweeper.jobs_sweep()["trainings_failed"] == 1
    run.refresh_from_db()
    assert run.status == "failed" and "stopped reporting progress" in run.error
    assert ModelVersion.objects.get(task=trained, is_active=True).pk == active.pk
    assert set(HumanLabel.objects.values_list("pk", "label_id")) == labels
    assert services.training_run_request(task=trained).pk != run.pk  # not blocked


def test_a_scoring_killed_mid_way_is_sent_again_and_finishes(
    trained, private_redis, settings, tmp_path
):
    version = ModelVersion.objects.get(task=trained, is_active=True)
    Prediction.objects.all().delete()
    ModelVersion.objects.filter(pk=version.pk).update(scored_at=None)
    # A bigger pool than it trained on, so that scoring takes a while.
    services.transcripts_import(
        project=trained.project, stream=io.BytesIO(_big_file(1000)), name="more.jsonl"
    )
    total = Utterance.objects.count()
    env = worker_env(**redis_env(private_redis), **_learner_env(settings))
    worker = start_worker(env, tmp_path / "w1.log", queues="training")
    jobs.send(jobs.SCORE_POOL, version.run_id)
    wait_for(Prediction.objects.exists, timeout=120, every=0.01, what="scoring started")
    kill(worker)
    scored = Prediction.objects.count()
    assert 0 < scored < total, "scoring finished before the kill: make the pool bigger"
    assert ModelVersion.objects.get(pk=version.pk).scored_at is None

    settings.PARLEY_JOB_STALE_S = 1
    time.sleep(1.5)
    assert sweeper.jobs_sweep()["scorings_resent"] == 1
    worker = start_worker(env, tmp_path / "w2.log", queues="training")
    try:
        wait_for(
            lambda: ModelVersion.objects.get(pk=version.pk).scored_at,
            timeout=180,
            what="scoring done",
        )
    finally:
        stop(worker)
    assert Prediction.objects.filter(model_version=version).count() == total
    assert not QueueItem.objects.filter(
        task=trained, trust_version__isnull=True
    ).exists()


def test_an_llm_run_killed_mid_way_resumes_where_it_stopped(
    transactional_db, private_redis, project, settings, tmp_path
):
    settings.PARLEY_OVERLAP_FRACTION = 0.0
    lines = [
        {
            "id": f"d{d}",
            "turns": [{"speaker": "A", "text": f"is {d}-{t} here?"} for t in range(10)],
        }
        for d in range(20)
    ]
    services.transcripts_import(
        project=project, stream=io.BytesIO(jsonl(*lines)), name="l.jsonl"
    )
    task = project.tasks.get(name="act")
    for name in ("P1", "P2"):
        PromptTemplate.objects.create(
            task=task, name=name, template="Utterance: {utterance}"
        )
    with FakeLlm(slow_s=0.05) as fake:
        fake.always = "slow"
        llm = {
            "LLM_BASE_URL": fake.base_url,
            "LLM_MODEL": "fake",
            "LLM_CONCURRENCY": "2",
            "LLM_LOGPROBS": "false",
            "PARLEY_JOB_STALE_S": "2",
        }
        settings.LLM_BASE_URL, settings.LLM_MODEL = fake.base_url, "fake"
        run = services.llm_run_request(task=task)
        env = worker_env(**redis_env(private_redis), **llm)
        worker = start_worker(env, tmp_path / "w1.log")
        wait_for(
            lambda: LlmRun.objects.get(pk=run.pk).done >= 64,
            timeout=60,
            what="first batch stored",
        )
        kill(worker)
        run.refresh_from_db()
        assert run.status == "running" and 64 <= run.done < 400
        asked_before = len(fake.requests)

        fake.always = None
        settings.PARLEY_JOB_QUEUED_GRACE_S = 0
        wait_for(
            lambda: (
                LlmRun.objects.get(pk=run.pk).lease_until
                < __import__("django.utils.timezone").utils.timezone.now()
            ),
            timeout=10,
            what="lease over",
        )
        assert sweeper.jobs_sweep()["llm_runs_resent"] == 1
        worker = start_worker(env, tmp_path / "w2.log")
        try:
            wait_for(
                lambda: LlmRun.objects.get(pk=run.pk).status == "succeeded",
                timeout=60,
                what="run done",
            )
        finally:
            stop(worker)
        resumed = len(fake.requests) - asked_before
    assert LlmLabel.objects.filter(task=task).count() == 400
    assert resumed <= 400 - run.done  # only the missing pairs were asked again
