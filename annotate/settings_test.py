"""Test settings: PostgreSQL and Redis from the environment, defaulting to the local servers."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("DJANGO_DEBUG", "true")
os.environ.setdefault("DATABASE_URL", "postgres://root@127.0.0.1:5432/parley")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
# Uploaded files must be shared with the worker processes the tests start: they inherit this.
# The queue serves strictly by priority in tests (no audit draws); tests/annotate/test_audit.py
# turns the audit on where it is the subject.
os.environ.setdefault("PARLEY_AUDIT_FRACTION", "0")
os.environ.setdefault("PARLEY_DATA_DIR", tempfile.mkdtemp(prefix="parley-test-"))

from .settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
