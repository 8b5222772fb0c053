"""Settings come from the environment; bad values fail loudly; nothing configured = embedded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _settings(env: dict[str, str], expr: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_", "CELERY_", "PARLEY_"))
    }
    code = f"import annotate.settings as s; print({expr})"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
    )


def test_nothing_configured_runs_embedded(tmp_path):
    out = _settings(
        {"DJANGO_DEBUG": "true", "PARLEY_DATA_DIR": str(tmp_path)},
        "s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.CACHES['default']['BACKEND']",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [
        "django.db.backends.sqlite3",
        "filesystem://",
        "django.core.cache.backends.filebased.FileBasedCache",
    ]
    assert (tmp_path / "broker").is_dir()


def test_embedded_broker_keeps_all_its_files_in_the_data_dir(tmp_path):
    out = _settings(
        {"DJANGO_DEBUG": "true", "PARLEY_DATA_DIR": str(tmp_path)},
        "__import__('json').dumps(s.CELERY_BROKER_TRANSPORT_OPTIONS)",
    )
    assert out.returncode == 0, out.stderr
    options = json.loads(out.stdout)
    folders = {
        v
        for k, v in options.items()
        if k.endswith(("folder", "folder_in", "folder_out"))
    }
    # kombu's default control folder is ./control, which littered the working directory.
    assert folders == {str(tmp_path / "broker"), str(tmp_path / "broker" / "control")}


def test_empty_variables_mean_the_default(tmp_path):
    # as `DATABASE_URL=` in a .env copied from .env.example, which honcho loads
    out = _settings(
        {
            "DJANGO_DEBUG": "true",
            "PARLEY_DATA_DIR": str(tmp_path),
            "DATABASE_URL": "",
            "REDIS_URL": "",
            "CELERY_BROKER_URL": "",
            "LEARNER_BACKBONE": "",
        },
        "s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.LEARNER_BACKBONE",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [
        "django.db.backends.sqlite3",
        "filesystem://",
        "minilm-l6",
    ]


def test_urls_move_it_onto_postgres_and_redis(tmp_path):
    out = _settings(
        {
            "DJANGO_DEBUG": "true",
            "PARLEY_DATA_DIR": str(tmp_path),
            "DATABASE_URL": "postgres://u@db:5432/parley",
            "REDIS_URL": "redis://r:6379/0",
        },
        "s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL",
    )
    assert out.stdout.split() == ["django.db.backends.postgresql", "redis://r:6379/0"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG='maybe': use true or false"),
        (
            {"DJANGO_DEBUG": "true", "PARLEY_IMPORT_MAX_FILE_MB": "big"},
            "expected an integer",
        ),
        (
            {"DJANGO_DEBUG": "true", "PARLEY_IMPORT_MAX_LINE_KB": "0"},
            "must be at least 1",
        ),
        ({"DJANGO_DEBUG": "true", "DATABASE_URL": "nosuchdb://x"}, "DATABASE_URL"),
        (
            {"DJANGO_DEBUG": "true", "LLM_BASE_URL": "http://llm:8000/v1"},
            "LLM_MODEL must be set",
        ),
        (
            {"DJANGO_DEBUG": "true", "LLM_REQUESTS_PER_SECOND": "fast"},
            "expected a number",
        ),
        ({"DJANGO_DEBUG": "true", "LLM_TIMEOUT_S": "nan"}, "must be at least"),
        (
            {"DJANGO_DEBUG": "true", "PARLEY_OVERLAP_FRACTION": "1.5"},
            "PARLEY_OVERLAP_FRACTION must be between",
        ),
        (
            {"DJANGO_DEBUG": "true", "LEARNER_OBJECTIVE": "mse"},
            "LEARNER_OBJECTIVE='mse'",
        ),
        ({"DJANGO_DEBUG": "true", "LEARNER_KD_WEIGHT": "-1"}, "must be at least"),
        (
            {"DJANGO_DEBUG": "true", "LEARNER_PRECISION": "fp8"},
            "LEARNER_PRECISION='fp8'",
        ),
    ],
)
def test_bad_values_fail_loudly(tmp_path, env, message):
    out = _settings({**env, "PARLEY_DATA_DIR": str(tmp_path)}, "1")
    assert out.returncode != 0
    assert "ImproperlyConfigured" in out.stderr and message in out.stderr


def test_without_a_secret_key_one_is_made_once_and_kept_private(tmp_path):
    first = _settings({"PARLEY_DATA_DIR": str(tmp_path)}, "s.SECRET_KEY, s.DEBUG")
    again = _settings({"PARLEY_DATA_DIR": str(tmp_path)}, "s.SECRET_KEY, s.DEBUG")
    assert first.returncode == 0, first.stderr
    assert first.stdout == again.stdout and first.stdout.endswith("False\n")
    key_file = tmp_path / "secret_key"
    assert len(key_file.read_text()) >= 50 and key_file.stat().st_mode & 0o777 == 0o600
    given = _settings(
        {"PARLEY_DATA_DIR": str(tmp_path), "DJANGO_SECRET_KEY": "k" * 60},
        "s.SECRET_KEY",
    )
    assert given.stdout.strip() == "k" * 60
