"""Services send tasks by name: every name must be registered in a process that only set
Django up (the web server), not just in workers, which autodiscover them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.processes import embedded_env

ROOT = Path(__file__).resolve().parents[2]


def test_a_plain_django_process_knows_every_task_the_services_send(tmp_path):
    code = (
        "import django; django.setup()\n"
        "from annotate import jobs\n"
        "from annotate.celery import app\n"
        "names = [jobs.IMPORT_TRANSCRIPTS, jobs.LLM_LABEL_RUN, jobs.TRAIN_STUDENT,\n"
        "         jobs.SCORE_POOL, jobs.DASHBOARD_REFRESH, jobs.SWEEP]\n"
        "print(all(name in app.tasks for name in names))\n"
        "import sys; print('torch' in sys.modules)\n"
    )
    env = embedded_env(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False"]  # and the web process loads no torch
