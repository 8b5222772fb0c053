"""Imports through a real Celery worker process.

One test runs the production shape (Redis broker, PostgreSQL); the other the embedded
default (SQLite and kombu's filesystem broker, no server at all).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from annotate import services
from annotate.models import Dialogue, ImportJob
from tests.conftest import dialogue, jsonl
from tests.processes import ROOT, embedded_env, start_worker, stop, wait_for, worker_env

pytestmark = pytest.mark.worker


@pytest.fixture
def redis_worker(transactional_db, tmp_path) -> Iterator[None]:
    """A worker on the test database and the test Redis, emptied of earlier runs' messages."""
    import redis

    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    worker = start_worker(worker_env(), tmp_path / "worker.log")
    yield
    stop(worker)


def _wait_finished(job: ImportJob, timeout: float = 90) -> ImportJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.is_finished:
            return job
        time.sleep(0.2)
    raise AssertionError(f"import job {job.pk} still {job.status} after {timeout}s")


def test_an_import_job_completes_on_a_real_worker(redis_worker, project, admin_alice):
    assert connection.vendor == "postgresql"
    job = services.import_job_create(
        project=project,
        upload=SimpleUploadedFile(
            "w.jsonl",
            jsonl(
                *[
                    dialogue(f"d{i}", n_turns=4, llm={"act": "inform"})
                    for i in range(20)
                ]
            ),
        ),
        user=admin_alice,
    )
    job = _wait_finished(job)
    assert (job.status, job.created, job.utterances, job.error) == (
        "succeeded",
        20,
        80,
        "",
    )
    assert Dialogue.objects.filter(project=project).count() == 20


def test_the_api_import_runs_on_the_worker_and_reports_failures(
    redis_worker, client, project, admin_alice
):
    _, key = services.api_token_create(user=admin_alice, name="ci")
    auth = {"Authorization": f"Bearer {key}"}
    bad = SimpleUploadedFile("bad.jsonl", jsonl(dialogue("d1")) + b"not json\n")
    response = client.post(
        "/api/projects/support/imports/", {"file": bad}, headers=auth
    )
    assert response.status_code == 202
    job = _wait_finished(ImportJob.objects.get(pk=response.json()["id"]))
    status = client.get(response["Location"], headers=auth).json()
    assert status["status"] == "failed"
    assert status["error"].startswith("bad.jsonl, line 2: invalid JSON")
    assert job.created == 0 and not Dialogue.objects.exists()


def test_the_embedded_default_runs_an_import_through_a_worker(tmp_path):
    """No DATABASE_URL, no REDIS_URL: SQLite plus the filesystem broker, and a real worker."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")
    }
    env |= {
        "DJANGO_SETTINGS_MODULE": "annotate.settings",
        "DJANGO_DEBUG": "true",
        "PARLEY_DATA_DIR": str(tmp_path / "var"),
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [*manage, "create_project", "emb", "--task", "act=inform,question"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    upload = tmp_path / "e.jsonl"
    upload.write_bytes(
        jsonl(*[dialogue(f"e{i}", llm={"act": "question"}) for i in range(5)])
    )
    script = (
        "from django.core.files.uploadedfile import SimpleUploadedFile;"
        "from annotate import services; from annotate.models import Project;"
        f"job = services.import_job_create(project=Project.objects.get(slug='emb'), "
        f"upload=SimpleUploadedFile('e.jsonl', open({str(upload)!r}, 'rb').read()), user=None);"
        "print(job.pk)"
    )
    job_id = subprocess.run(
        [*manage, "shell", "--no-imports", "-c", script],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        check = (
            "import time; from annotate.models import ImportJob\n"
            "for _ in range(300):\n"
            f"    job = ImportJob.objects.get(pk={job_id})\n"
            "    if job.is_finished: break\n"
            "    time.sleep(0.2)\n"
            "print(job.status, job.created, job.utterances, job.error)"
        )
        out = subprocess.run(
            [*manage, "shell", "--no-imports", "-c", check],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    finally:
        stop(worker)
    assert out == "succeeded 5 10", (tmp_path / "worker.log").read_text()[-3000:]


def _prefork_worker(
    tmp_path, *options: str
) -> tuple[subprocess.Popen[bytes], Path, dict[str, str]]:
    """A prefork worker on the embedded defaults, leading its own process group (as honcho
    starts it), ready; its process, log and environment."""
    env = embedded_env(tmp_path / "var")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True
    )
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "annotate", "worker"]
        + ["--loglevel", "INFO", *options],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_for(lambda: b"ready." in log.read_bytes(), timeout=60, what="worker ready")
    return worker, log, env


def test_a_term_to_the_workers_process_group_stops_it_cleanly(tmp_path):
    """`make run` stops its processes as honcho does: SIGTERM to each process group. The
    prefork worker shuts down warm, with no ERROR for its pool children."""
    import signal

    worker, log, _ = _prefork_worker(tmp_path, "--concurrency", "2")
    try:
        os.killpg(worker.pid, signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    text = log.read_text()
    assert "exited with 'signal 15" not in text and "ERROR" not in text, text


def test_a_pool_child_does_not_outlive_a_killed_worker(tmp_path):
    """Out of the worker's process group, a pool child busy with a task must still end
    with its parent."""
    import signal

    worker, log, env = _prefork_worker(
        tmp_path, "--concurrency", "1", "--include", "tests.worker_tasks"
    )
    try:
        # a task that is still running when the worker is killed
        subprocess.run(
            [
                sys.executable,
                "-c",
                "from annotate.celery import app; app.send_task('tests.sleep', args=[60])",
            ],
            cwd=ROOT,
            env=env,
            check=True,
        )
        wait_for(
            lambda: (
                b"tests.sleep" in log.read_bytes() and b"received" in log.read_bytes()
            ),
            timeout=30,
            what="the task received",
        )
        children = subprocess.run(
            ["pgrep", "-P", str(worker.pid)], capture_output=True, text=True
        ).stdout.split()
        assert children
        worker.kill()  # SIGKILL: no shutdown at all
        worker.wait(timeout=10)

        def gone() -> bool:
            return all(not os.path.exists(f"/proc/{pid}") for pid in children)

        wait_for(gone, timeout=10, what="the pool child's exit")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
