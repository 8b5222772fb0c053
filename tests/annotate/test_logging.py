"""Log noise: one line per event, no traceback for an expected refusal; the favicon exists."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from annotate.logs import ExpectedRefusals
from tests.processes import embedded_env

ROOT = Path(__file__).resolve().parents[2]


def test_a_refusal_logs_one_line_without_traceback_and_nothing_twice(tmp_path):
    code = """
import django, logging
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
from django.test import Client
from annotate import services
project = services.project_create(name="P", slug="p", tasks={"act": ["a", "b"]})
user = get_user_model().objects.create_user("ann")
services.membership_set(project=project, user=user, role="annotator")
client = Client(HTTP_HOST="localhost")
client.force_login(user)
assert client.get("/projects/p/tasks/act/dashboard/").status_code == 403
assert client.get("/nowhere/").status_code == 404
logging.getLogger("annotate.test").warning("said once")
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=embedded_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    log = out.stderr
    assert (
        log.count("Forbidden (Permission denied): /projects/p/tasks/act/dashboard/")
        == 1
    )
    assert log.count("Not Found: /nowhere/") == 1
    assert log.count("said once") == 1
    assert "Traceback" not in log


def test_server_errors_keep_their_traceback():
    def record(status):
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            r = logging.LogRecord(
                "django.request", logging.ERROR, "", 0, "x", (), sys.exc_info()
            )
        r.status_code = status
        return r

    refusal, failure = record(403), record(500)
    assert ExpectedRefusals().filter(refusal) and refusal.exc_info is None
    assert ExpectedRefusals().filter(failure) and failure.exc_info is not None


def test_the_favicon_is_served(client, db):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("annotate/favicon.svg")
    page = client.get("/accounts/login/").content.decode()
    assert 'rel="icon"' in page
