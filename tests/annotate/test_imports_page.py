"""The project's imports page: upload, the outcome or the exact error, the history."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile

from annotate import services
from annotate.models import Dialogue, ImportJob
from tests.conftest import dialogue, jsonl

URL = "/projects/support/imports/"


def run_jobs() -> None:
    for job in ImportJob.objects.filter(status="queued"):
        services.import_job_execute(job_id=job.pk)


def test_an_upload_is_imported_and_its_outcome_listed(client, project, admin_alice):
    client.force_login(admin_alice)
    upload = SimpleUploadedFile("calls.jsonl", jsonl(dialogue("c1"), dialogue("c2")))
    response = client.post(URL, {"file": upload})
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(
        f"#import-{job.pk}"
    )
    page = client.get(URL).content.decode()
    assert f'id="import-{job.pk}"' in page and "hx-get" in page  # queued: the row polls
    run_jobs()
    row = client.get(f"{URL}{job.pk}/status")
    assert row.status_code == 286  # over: htmx stops polling
    assert "2 dialogues created" in row.content.decode()
    assert Dialogue.objects.filter(project=project).count() == 2


def test_a_malformed_file_shows_where_and_imports_nothing(client, project, admin_alice):
    client.force_login(admin_alice)
    body = jsonl(dialogue("ok")) + b'{"id": "bad", "turns": [{"speaker": "A"}]}\n'
    client.post(URL, {"file": SimpleUploadedFile("bad.jsonl", body)})
    run_jobs()
    text = client.get(URL).content.decode()
    assert "Nothing was imported:" in text and "bad.jsonl" in text and "line 2" in text
    assert "turns[0].text" in text
    assert not Dialogue.objects.filter(project=project).exists()


def test_only_project_admins_import(client, project, lead_lena, annotator_ann):
    for user, status in ((lead_lena, 403), (annotator_ann, 403)):
        client.force_login(user)
        assert client.get(URL).status_code == status
        upload = SimpleUploadedFile("x.jsonl", jsonl(dialogue("x")))
        assert client.post(URL, {"file": upload}).status_code == status
    assert not ImportJob.objects.exists()


def test_the_history_pages_newest_first(client, project, admin_alice):
    for n in range(30):
        services.import_job_create(
            project=project,
            upload=SimpleUploadedFile(f"f{n}.jsonl", jsonl(dialogue(f"d{n}"))),
            user=admin_alice,
        )
    client.force_login(admin_alice)
    first = client.get(URL).content.decode()
    assert "f29.jsonl" in first and "f0.jsonl" not in first and "Page 1 of 2" in first
    assert "f0.jsonl" in client.get(URL + "?page=2").content.decode()
