"""Production hardening: deploy checks, HTTPS settings, CSP, sign-in lockout, API budgets,
what production does not tell, and .env.example not turning DEBUG on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache

from annotate import services

ROOT = Path(__file__).resolve().parents[2]


def _production_env(tmp_path, **extra):
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_", "CELERY_", "PARLEY_"))
    }
    return {
        **clean,
        "DJANGO_SETTINGS_MODULE": "annotate.settings",
        "PARLEY_DATA_DIR": str(tmp_path),
        "DJANGO_ALLOWED_HOSTS": "parley.example.org",
        **extra,
    }


def test_the_deploy_check_is_clean_with_production_settings(tmp_path):
    out = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=_production_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no issues" in out.stdout


def test_behind_a_tls_proxy_the_forwarded_scheme_is_trusted_only_when_asked(tmp_path):
    code = "import annotate.settings as s; print(getattr(s, 'SECURE_PROXY_SSL_HEADER', None))"
    run = lambda **e: subprocess.run(  # noqa: E731
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_production_env(tmp_path, **e),
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert run() == "None"
    assert (
        run(DJANGO_SECURE_PROXY_SSL_HEADER="true")
        == "('HTTP_X_FORWARDED_PROTO', 'https')"
    )


def test_env_example_does_not_turn_debug_on():
    lines = (ROOT / ".env.example").read_text().splitlines()
    active = [
        line for line in lines if line.strip() and not line.lstrip().startswith("#")
    ]
    assert not any(
        line.replace(" ", "").lower() == "django_debug=true" for line in active
    )


def test_pages_carry_the_content_security_policy(client, project, annotator_ann):
    client.force_login(annotator_ann)
    policy = client.get("/projects/support/")["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy


@pytest.mark.parametrize(("enabled", "sent"), [(False, False), (True, True)])
def test_server_timing_is_sent_only_when_asked_for(client, db, settings, enabled, sent):
    settings.PARLEY_SERVER_TIMING = enabled
    assert ("Server-Timing" in client.get("/accounts/login/")) is sent


def test_the_health_check_answers_without_signing_in(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["database"] == "ok"


@pytest.fixture
def fresh_counts(db):
    cache.clear()  # API budgets count in the cache, in one-minute windows
    yield
    cache.clear()


def test_wrong_passwords_lock_the_username_out_for_that_address(
    client, annotator_ann, settings
):
    annotator_ann.set_password("right-password-42")
    annotator_ann.save()
    form = {"username": "ann", "password": "wrong"}
    answers = [client.post("/accounts/login/", form).status_code for _ in range(5)]
    assert answers == [200] * 4 + [429]  # the fifth failure locks
    locked = client.post("/accounts/login/", {**form, "password": "right-password-42"})
    assert (
        locked.status_code == 429
        and "Too many failed sign-ins" in locked.content.decode()
    )
    # Another address is not locked out of the same account.
    other = client.post(
        "/accounts/login/",
        {**form, "password": "right-password-42"},
        REMOTE_ADDR="10.9.9.9",
    )
    assert other.status_code == 302


def test_guessing_api_tokens_is_answered_429_with_retry_after(
    client, fresh_counts, settings
):
    settings.PARLEY_API_AUTH_FAILURES_PER_MIN = 3
    bad = {"Authorization": "Bearer prl_not-a-token"}
    codes = [client.get("/api/projects/", headers=bad).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    response = client.get("/api/projects/", headers=bad)
    assert response.status_code == 429 and 1 <= int(response["Retry-After"]) <= 61
    assert "too many failed authentications" in response.json()["error"]


def test_a_token_over_its_request_budget_is_answered_429(
    client, fresh_counts, settings, admin_alice
):
    settings.PARLEY_API_REQUESTS_PER_MIN = 3
    _, key = services.api_token_create(user=admin_alice, name="ci")
    auth = {"Authorization": f"Bearer {key}"}
    codes = [client.get("/api/projects/", headers=auth).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert int(client.get("/api/projects/", headers=auth)["Retry-After"]) >= 1


def test_a_token_records_its_use_to_the_minute_without_a_write_per_request(admin_alice):
    from datetime import timedelta

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from annotate.models import ApiToken

    token, key = services.api_token_create(user=admin_alice, name="t")
    assert services.api_token_authenticate(key=key) == admin_alice
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first is not None
    with CaptureQueriesContext(connection) as queries:
        services.api_token_authenticate(key=key)
    assert not any(q["sql"].startswith("UPDATE") for q in queries.captured_queries)
    ApiToken.objects.filter(pk=token.pk).update(
        last_used_at=first - timedelta(minutes=2)
    )
    services.api_token_authenticate(key=key)
    assert ApiToken.objects.get(pk=token.pk).last_used_at > first
