"""An object of another project, reached through a URL of my project: 404, and nothing written.

Every route that takes an object id (in the path or the body) resolves it through the project
and task the caller is authorised for. Alice is admin of "support" and a stranger to "other".
"""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotate import services
from annotate.models import (
    Flag,
    HumanLabel,
    ImportJob,
    QueueItem,
    QueueSkip,
    TrainingRun,
)
from tests.conftest import TASKS, dialogue, jsonl


@pytest.fixture
def other(db, settings):
    settings.PARLEY_OVERLAP_FRACTION = 0.0
    project = services.project_create(name="Other", slug="other", tasks=TASKS)
    services.transcripts_import(
        project=project,
        stream=io.BytesIO(jsonl(dialogue("o1", n_turns=3))),
        name="o.jsonl",
    )
    return project


@pytest.fixture
def theirs(other):
    """An open item of the other project's act task."""
    return QueueItem.objects.filter(task__project=other, task__name="act").first()


@pytest.fixture
def mine(project, admin_alice, settings, import_bytes):
    settings.PARLEY_OVERLAP_FRACTION = 0.0
    import_bytes(jsonl(dialogue("s1", n_turns=2)))
    return QueueItem.objects.filter(task__project=project, task__name="act").first()


BASE = "/projects/support/tasks/act"


@pytest.mark.parametrize("action", ["submit", "skip", "flag"])
def test_a_queue_action_on_another_projects_item_is_a_404_and_writes_nothing(
    client, admin_alice, mine, theirs, action
):
    client.force_login(admin_alice)
    data = {"label": "inform", "submission_key": "k-1", "comment": "x"}
    response = client.post(f"{BASE}/queue/{theirs.pk}/{action}", data)
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.open and theirs.answers == 0
    assert not HumanLabel.objects.exists()
    assert not QueueSkip.objects.exists() and not Flag.objects.exists()


def test_an_item_of_another_task_of_my_project_is_a_404(client, admin_alice, mine):
    sentiment_item = QueueItem.objects.get(
        task__project=mine.task.project,
        task__name="sentiment",
        utterance=mine.utterance,
    )
    client.force_login(admin_alice)
    response = client.post(
        f"{BASE}/queue/{sentiment_item.pk}/submit",
        {"label": "inform", "submission_key": "k-2"},
    )
    assert response.status_code == 404 and not HumanLabel.objects.exists()


def test_renew_and_release_ignore_items_of_another_project(
    client, admin_alice, mine, theirs
):
    QueueItem.objects.filter(pk=theirs.pk).update(claimed_by=admin_alice)
    client.force_login(admin_alice)
    assert client.post(f"{BASE}/queue/renew", {"item": [theirs.pk]}).status_code == 409
    assert (
        client.post(f"{BASE}/queue/release", {"item": [theirs.pk]}).status_code == 204
    )
    theirs.refresh_from_db()
    assert theirs.lease_until is None  # neither renewed nor given a release deadline


def test_adjudicating_an_utterance_of_another_project_is_a_404(
    client, admin_alice, mine, theirs
):
    client.force_login(admin_alice)
    response = client.post(
        f"{BASE}/review/{theirs.utterance_id}/adjudicate", {"label": "inform"}
    )
    assert response.status_code == 404 and not HumanLabel.objects.exists()


def test_the_status_of_another_projects_training_run_is_a_404(
    client, admin_alice, mine, theirs
):
    run = TrainingRun.objects.create(task=theirs.task)
    client.force_login(admin_alice)
    assert client.get(f"{BASE}/dashboard/runs/{run.pk}/").status_code == 404


def test_an_import_job_of_another_project_is_a_404_on_the_api(
    client, admin_alice, mine, other, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        job = services.import_job_create(
            project=other, upload=SimpleUploadedFile("x.jsonl", b"{}\n"), user=None
        )
    _, key = services.api_token_create(user=admin_alice, name="t")
    response = client.get(
        f"/api/imports/{job.pk}/", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 404
    assert ImportJob.objects.get(pk=job.pk).status == "queued"
