"""The broker is down for a while: requests still answer with their job, the rows stay queued,
and the sweeper sends their messages once the broker is back."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile

from annotate import sweeper
from annotate.models import Dialogue, ImportJob, TrainingRun
from tests.conftest import dialogue, jsonl
from tests.faults.conftest import queued_task_names, redis_env
from tests.processes import start_worker, stop, wait_for, worker_env


def test_an_api_import_during_an_outage_gets_its_job_and_runs_once_redis_is_back(
    transactional_db, private_redis, client, project, admin_alice, settings, tmp_path
):
    from annotate import services

    _, key = services.api_token_create(user=admin_alice, name="ci")
    auth = {"Authorization": f"Bearer {key}"}
    private_redis.stop()
    upload = SimpleUploadedFile(
        "o.jsonl", jsonl(*[dialogue(f"d{i}") for i in range(5)])
    )
    response = client.post(
        "/api/projects/support/imports/", {"file": upload}, headers=auth
    )
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued" and body["id"]
    assert client.get(response["Location"], headers=auth).json()["status"] == "queued"

    private_redis.start()
    settings.PARLEY_JOB_QUEUED_GRACE_S = 0
    assert sweeper.jobs_sweep()["imports_resent"] == 1
    worker = start_worker(worker_env(**redis_env(private_redis)), tmp_path / "w.log")
    try:
        job = wait_for(
            lambda: ImportJob.objects.filter(pk=body["id"], status="succeeded").first(),
            what="import done",
        )
    finally:
        stop(worker)
    assert job.created == 5 and Dialogue.objects.count() == 5


def test_a_retrain_during_an_outage_is_queued_and_sent_by_the_sweeper(
    transactional_db, private_redis, client, project, lead_lena, settings
):
    private_redis.stop()
    client.force_login(lead_lena)
    response = client.post("/projects/support/tasks/act/dashboard/retrain", follow=True)
    assert response.status_code == 200
    run = TrainingRun.objects.get()
    page = response.content.decode()
    assert run.status == "queued" and f"Training run {run.pk} requested" in page
    # the message does not state a status that goes stale; the live row does
    assert f"Training run {run.pk} is queued" not in page
    # A second click gets the same run, not a new one and not an error.
    client.post("/projects/support/tasks/act/dashboard/retrain")
    assert TrainingRun.objects.count() == 1

    private_redis.start()
    settings.PARLEY_JOB_QUEUED_GRACE_S = 0
    assert sweeper.jobs_sweep()["trainings_resent"] == 1
    assert queued_task_names(private_redis, "training") == ["annotate.train_student"]
    # Within the grace nothing is sent twice.
    settings.PARLEY_JOB_QUEUED_GRACE_S = 600
    assert sweeper.jobs_sweep()["trainings_resent"] == 0
