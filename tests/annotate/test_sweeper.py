"""The sweeper's rules, on rows made by hand (the fault suite runs them with real workers)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, connections, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from annotate import jobs, services, sweeper
from annotate.models import ImportJob, LlmRun, ModelVersion, TrainingRun

LONG_AGO = timezone.now() - timedelta(hours=1)


@pytest.fixture
def sent(monkeypatch):
    """The messages the sweeper sends, as (task name, argument)."""
    out = []
    from annotate import tasks

    for name in ("import_transcripts", "llm_label_run", "train_student", "score_pool"):
        task = getattr(tasks, name)
        monkeypatch.setattr(task, "delay", lambda pk, n=task.name: out.append((n, pk)))
    return out


@pytest.fixture
def job(project):
    return ImportJob.objects.create(
        project=project,
        file=SimpleUploadedFile("a.jsonl", b"{}"),
        original_name="a.jsonl",
        format="jsonl",
        nudged_at=LONG_AGO,
    )


def test_a_job_queued_past_the_grace_is_sent_again_once(job, sent):
    assert sweeper.jobs_sweep()["imports_resent"] == 1
    assert sent == [("annotate.import_transcripts", job.pk)]
    assert (
        sweeper.jobs_sweep()["imports_resent"] == 0
    )  # nudged just now: within the grace


def test_a_job_queued_within_the_grace_is_left_to_its_message(job, sent):
    ImportJob.objects.filter(pk=job.pk).update(nudged_at=timezone.now())
    sweeper.jobs_sweep()
    assert sent == []


def test_while_the_broker_is_down_the_job_stays_due(job, monkeypatch):
    from annotate import tasks

    def down(*args):
        raise OperationalError(
            "Error 111 connecting to 127.0.0.1:6379. Connection refused."
        )

    monkeypatch.setattr(tasks.import_transcripts, "delay", down)
    assert sweeper.jobs_sweep()["imports_resent"] == 0
    job.refresh_from_db()
    assert job.nudged_at == LONG_AGO  # tried again at the next sweep


def test_a_request_made_while_the_broker_is_down_still_creates_its_job(
    project, monkeypatch, django_capture_on_commit_callbacks
):
    from annotate import tasks

    def down(*args):
        raise OperationalError("Connection refused.")

    monkeypatch.setattr(tasks.import_transcripts, "delay", down)
    with django_capture_on_commit_callbacks(execute=True):
        job = services.import_job_create(
            project=project, upload=SimpleUploadedFile("b.jsonl", b"{}"), user=None
        )
    assert ImportJob.objects.get(pk=job.pk).status == "queued"


def test_a_running_import_whose_worker_is_gone_is_queued_again(job, sent):
    ImportJob.objects.filter(pk=job.pk).update(
        status="running", started_at=LONG_AGO, attempts=1
    )
    assert sweeper.jobs_sweep()["imports_requeued"] == 1
    job.refresh_from_db()
    assert job.status == "queued" and sent == [("annotate.import_transcripts", job.pk)]


def test_an_import_that_killed_its_worker_three_times_fails(job, sent):
    ImportJob.objects.filter(pk=job.pk).update(
        status="running", started_at=LONG_AGO, attempts=3
    )
    assert sweeper.jobs_sweep()["imports_failed"] == 1
    job.refresh_from_db()
    assert job.status == "failed" and "stopped 3 times" in job.error and sent == []


@pytest.mark.django_db(transaction=True)
def test_an_import_whose_transaction_is_alive_is_left_alone(project, sent):
    if connection.vendor != "postgresql":
        pytest.skip("the advisory lock is PostgreSQL's")
    job = ImportJob.objects.create(
        project=project,
        file=SimpleUploadedFile("c.jsonl", b"{}"),
        original_name="c.jsonl",
        format="jsonl",
        status="running",
        started_at=LONG_AGO,
        attempts=1,
    )
    holding, done = threading.Event(), threading.Event()

    def importer():
        with transaction.atomic():
            jobs.hold_job_lock(services.IMPORT_LOCK, job.pk)
            holding.set()
            done.wait(10)
        connections.close_all()

    thread = threading.Thread(target=importer)
    thread.start()
    holding.wait(10)
    try:
        assert sweeper.jobs_sweep()["imports_requeued"] == 0
        assert ImportJob.objects.get(pk=job.pk).status == "running"
    finally:
        done.set()
        thread.join()
    assert sweeper.jobs_sweep()["imports_requeued"] == 1


def test_an_llm_run_whose_lease_ran_out_is_sent_again(project, sent):
    task = project.tasks.get(name="act")
    run = LlmRun.objects.create(
        task=task, model="m", status="running", lease_until=LONG_AGO, nudged_at=LONG_AGO
    )
    assert sweeper.jobs_sweep()["llm_runs_resent"] == 1
    assert sent == [("annotate.llm_label_run", run.pk)]
    LlmRun.objects.filter(pk=run.pk).update(
        lease_until=timezone.now() + timedelta(minutes=5)
    )
    LlmRun.objects.filter(pk=run.pk).update(nudged_at=LONG_AGO)
    assert sweeper.jobs_sweep()["llm_runs_resent"] == 0  # its worker holds it


def test_a_training_without_a_heartbeat_is_failed(project, sent):
    task = project.tasks.get(name="act")
    run = TrainingRun.objects.create(task=task, status="running", heartbeat_at=LONG_AGO)
    assert sweeper.jobs_sweep()["trainings_failed"] == 1
    assert TrainingRun.objects.get(pk=run.pk).status == "failed"


def test_the_unfinished_scoring_of_the_active_version_is_sent_again(
    project, sent, tmp_path
):
    task = project.tasks.get(name="act")
    run = TrainingRun.objects.create(task=task, status="succeeded")
    version = ModelVersion.objects.create(
        task=task, run=run, version=1, is_active=True, artifact_path=str(tmp_path)
    )
    ModelVersion.objects.filter(pk=version.pk).update(created_at=LONG_AGO)
    assert sweeper.jobs_sweep()["scorings_resent"] == 1
    assert sent == [("annotate.score_pool", run.pk)]
    assert sweeper.jobs_sweep()["scorings_resent"] == 0  # sent just now
    ModelVersion.objects.filter(pk=version.pk).update(
        scored_at=timezone.now(), scoring_heartbeat_at=LONG_AGO
    )
    assert sweeper.jobs_sweep()["scorings_resent"] == 0  # finished
