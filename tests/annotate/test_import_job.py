"""Import jobs: queued on commit, executed by the task, failures recorded, redelivery harmless."""

from __future__ import annotations

from unittest import mock

from django.core.files.uploadedfile import SimpleUploadedFile

from annotate import services, tasks
from annotate.models import Dialogue, ImportJob
from tests.conftest import dialogue, jsonl


def _job(
    project, user, content: bytes, name: str = "calls.jsonl", **kwargs
) -> ImportJob:
    with mock.patch.object(tasks.import_transcripts, "delay_on_commit"):
        return services.import_job_create(
            project=project,
            upload=SimpleUploadedFile(name, content),
            user=user,
            **kwargs,
        )


def test_creating_a_job_queues_the_task_after_commit(
    project, admin_alice, django_capture_on_commit_callbacks
):
    with mock.patch.object(tasks.import_transcripts, "delay") as delay:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            job = services.import_job_create(
                project=project,
                upload=SimpleUploadedFile("a.jsonl", jsonl(dialogue())),
                user=admin_alice,
            )
        assert len(callbacks) == 1
    delay.assert_called_once_with(job.pk)
    assert (job.status, job.format, job.original_name) == ("queued", "jsonl", "a.jsonl")


def test_the_task_imports_the_file_and_records_the_counts(project, admin_alice):
    job = _job(project, admin_alice, jsonl(dialogue("d1", n_turns=3), dialogue("d2")))
    tasks.import_transcripts(job.pk)
    job.refresh_from_db()
    assert (job.status, job.created, job.skipped, job.utterances, job.error) == (
        "succeeded",
        2,
        0,
        5,
        "",
    )
    assert job.started_at and job.finished_at
    assert services.import_job_progress(job) == 1.0


def test_a_bad_file_fails_the_job_with_its_line_and_field(project, admin_alice):
    job = _job(
        project,
        admin_alice,
        jsonl(dialogue("d1")) + b'{"id": "d2"}\n',
        name="bad.jsonl",
    )
    tasks.import_transcripts(job.pk)
    job.refresh_from_db()
    assert job.status == "failed"
    assert job.error == "bad.jsonl, line 2, field 'turns': missing"
    assert not Dialogue.objects.exists()


def test_a_redelivered_task_does_not_import_twice(project, admin_alice):
    job = _job(project, admin_alice, jsonl(dialogue("d1")))
    tasks.import_transcripts(job.pk)
    Dialogue.objects.all().delete()
    tasks.import_transcripts(job.pk)
    assert not Dialogue.objects.exists()


def test_a_missing_job_ends_the_task_quietly(db):
    tasks.import_transcripts(987654)


def test_csv_jobs_take_their_format_from_the_name_and_update_flag(project, admin_alice):
    _job_first = _job(
        project,
        admin_alice,
        b"dialogue_id,position,speaker,text\nd1,0,A,hi\n",
        name="x.csv",
    )
    tasks.import_transcripts(_job_first.pk)
    job = _job(
        project,
        admin_alice,
        b"dialogue_id,position,speaker,text\nd1,0,A,hello\n",
        name="x.csv",
        update=True,
    )
    tasks.import_transcripts(job.pk)
    job.refresh_from_db()
    assert (job.format, job.updated, job.created) == ("csv", 1, 0)
    assert Dialogue.objects.get().utterances.get().text == "hello"


def test_admin_upload_creates_a_job_and_shows_its_progress(
    client, project, root, django_capture_on_commit_callbacks
):
    client.force_login(root)
    with (
        mock.patch.object(tasks.import_transcripts, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = client.post(
            "/admin/annotate/importjob/add/",
            {
                "project": project.pk,
                "file": SimpleUploadedFile("c.jsonl", jsonl(dialogue())),
                "format": "",
            },
        )
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(
        f"/importjob/{job.pk}/change/"
    )
    delay.assert_called_once_with(job.pk)
    page = client.get(response["Location"]).content.decode()
    assert 'hx-trigger="every 1s"' in page and "Queued" in page
    tasks.import_transcripts(job.pk)
    fragment = client.get(
        f"/admin/annotate/importjob/{job.pk}/progress/"
    ).content.decode()
    assert "Created 1 dialogues" in fragment and "hx-trigger" not in fragment


def test_admin_upload_rejects_an_unknown_file_type(client, project, root):
    client.force_login(root)
    response = client.post(
        "/admin/annotate/importjob/add/",
        {
            "project": project.pk,
            "file": SimpleUploadedFile("c.txt", b"x"),
            "format": "",
        },
    )
    assert response.status_code == 200
    assert "unknown file type" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_the_admin_job_page_has_no_stale_figures_and_a_failure_looks_like_one(
    client, project, root, django_capture_on_commit_callbacks
):
    client.force_login(root)
    with (
        mock.patch.object(tasks.import_transcripts, "delay"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        client.post(
            "/admin/annotate/importjob/add/",
            {
                "project": project.pk,
                "file": SimpleUploadedFile(
                    "bad.jsonl", b'{"id": "x", "turns": "no"}\n'
                ),
                "format": "",
            },
        )
    job = ImportJob.objects.get()
    page = client.get(f"/admin/annotate/importjob/{job.pk}/change/").content.decode()
    # the status lives in the polled box only: no title "(queued)", no frozen field rows
    assert "(queued)" not in page
    assert page.count("Queued") == 2  # the box's heading and its status row
    assert "field-status" not in page and "field-error" not in page
    tasks.import_transcripts(job.pk)
    job.refresh_from_db()
    assert job.status == "failed"
    fragment = client.get(
        f"/admin/annotate/importjob/{job.pk}/progress/"
    ).content.decode()
    assert "<progress" not in fragment  # not a full blue bar
    assert "The import failed and wrote nothing" in fragment and "bad.jsonl" in fragment
    assert "hx-trigger" not in fragment  # finished: no more polling
