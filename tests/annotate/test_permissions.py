"""Every endpoint × every role: who may see and do what, in the browser and with API tokens."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotate import services

# (endpoint name, method, URL, needed role) — roles rank admin > lead > annotator.
WEB = [
    ("projects", "get", "/", None),
    ("project", "get", "/projects/support/", "annotator"),
    ("export-jsonl", "get", "/projects/support/export.jsonl", "lead"),
    ("export-csv", "get", "/projects/support/export.csv", "lead"),
    ("queue", "get", "/projects/support/tasks/act/queue/", "annotator"),
    ("queue-renew", "post", "/projects/support/tasks/act/queue/renew", "annotator"),
    ("queue-release", "post", "/projects/support/tasks/act/queue/release", "annotator"),
    ("queue-undo", "post", "/projects/support/tasks/act/queue/undo", "annotator"),
    (
        "queue-skip",
        "post",
        "/projects/support/tasks/act/queue/999999/skip",
        "annotator",
    ),
    (
        "queue-submit",
        "post",
        "/projects/support/tasks/act/queue/999999/submit",
        "annotator",
    ),
    (
        "queue-flag",
        "post",
        "/projects/support/tasks/act/queue/999999/flag",
        "annotator",
    ),
    (
        "queue-dialogue",
        "get",
        "/projects/support/tasks/act/queue/999999/dialogue",
        "annotator",
    ),
    ("review", "get", "/projects/support/tasks/act/review/", "lead"),
    (
        "review-adjudicate",
        "post",
        "/projects/support/tasks/act/review/999999/adjudicate",
        "lead",
    ),
    ("dashboard", "get", "/projects/support/tasks/act/dashboard/", "lead"),
    ("retrain", "post", "/projects/support/tasks/act/dashboard/retrain", "lead"),
    ("student-export", "get", "/projects/support/tasks/act/student.zip", "lead"),
    ("queue-why", "get", "/projects/support/tasks/act/queue/999999/why", "annotator"),
    ("history", "get", "/projects/support/tasks/act/history/", "annotator"),
    (
        "history-change",
        "post",
        "/projects/support/tasks/act/history/999999/change",
        "annotator",
    ),
    ("corpus", "get", "/projects/support/tasks/act/corpus/", "lead"),
    (
        "corpus-requeue",
        "post",
        "/projects/support/tasks/act/corpus/999999/requeue",
        "lead",
    ),
    ("corpus-dialogue", "get", "/projects/support/dialogues/999999/", "lead"),
    ("imports", "get", "/projects/support/imports/", "admin"),
    ("task-new", "get", "/projects/support/tasks/new/", "admin"),
    ("import-status", "get", "/projects/support/imports/999999/status", "admin"),
    ("members", "get", "/projects/support/members/", "admin"),
    ("member-set", "post", "/projects/support/members/set", "admin"),
    ("project-update", "post", "/projects/support/members/project", "admin"),
    ("labels-update", "post", "/projects/support/tasks/act/settings/labels", "admin"),
    ("member-remove", "post", "/projects/support/members/999999/remove", "admin"),
    ("task-settings", "get", "/projects/support/tasks/act/settings/", "admin"),
    ("task-update", "post", "/projects/support/tasks/act/settings/update", "admin"),
    ("prompt-save", "post", "/projects/support/tasks/act/settings/prompts", "admin"),
    (
        "prompt-preview",
        "post",
        "/projects/support/tasks/act/settings/prompts/preview",
        "admin",
    ),
    ("llm-run", "post", "/projects/support/tasks/act/settings/llm-runs", "admin"),
    (
        "llm-run-status",
        "get",
        "/projects/support/tasks/act/settings/llm-runs/999999",
        "admin",
    ),
]
# Success is not always 200: a POST redirects, a missing object answers 404 after the role check.
SUCCESS = {
    "queue-renew": 204,
    "queue-release": 204,
    "queue-undo": 302,
    "queue-skip": 404,
    "queue-dialogue": 404,
    "queue-submit": 404,
    "queue-flag": 404,
    "review-adjudicate": 404,
    "retrain": 302,
    "student-export": 404,
    "queue-why": 404,
    "history-change": 404,
    "corpus-requeue": 404,
    "corpus-dialogue": 404,
    "import-status": 404,
    "member-set": 302,
    "project-update": 302,
    "labels-update": 302,
    "member-remove": 404,
    "task-update": 302,
    "prompt-save": 302,
    "llm-run": 302,
    "llm-run-status": 404,
}
API = [
    ("api-projects", "get", "/api/projects/", None),
    ("api-import", "post", "/api/projects/support/imports/", "admin"),
    ("api-export", "get", "/api/projects/support/export.jsonl", "lead"),
]
RANK = {"annotator": 1, "lead": 2, "admin": 3}
PERSONAS = [
    "anonymous",
    "outsider_olga",
    "annotator_ann",
    "lead_lena",
    "admin_alice",
    "root",
]
ROLE_OF = {
    "outsider_olga": None,
    "annotator_ann": "annotator",
    "lead_lena": "lead",
    "admin_alice": "admin",
    "root": "admin",
}


def _expected(persona: str, needed: str | None, *, api: bool, ok: int = 200) -> int:
    if persona == "anonymous":
        return 401 if api else 302
    role = ROLE_OF[persona]
    if needed is None:
        return ok
    if role is None:
        return 404  # a project you are not in does not exist for you
    return ok if RANK[role] >= RANK[needed] else 403


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize(
    ("name", "method", "url", "needed"), WEB, ids=[e[0] for e in WEB]
)
def test_web_endpoints_check_the_project_role(
    client, request, project, persona, name, method, url, needed
):
    if persona != "anonymous":
        client.force_login(request.getfixturevalue(persona))
    response = getattr(client, method)(url)
    assert response.status_code == _expected(
        persona, needed, api=False, ok=SUCCESS.get(name, 200)
    )


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize(
    ("name", "method", "url", "needed"), API, ids=[e[0] for e in API]
)
def test_api_tokens_carry_their_users_rights(
    client,
    request,
    project,
    persona,
    name,
    method,
    url,
    needed,
    django_capture_on_commit_callbacks,
):
    headers = {}
    if persona != "anonymous":
        _, key = services.api_token_create(
            user=request.getfixturevalue(persona), name="t"
        )
        headers["Authorization"] = f"Bearer {key}"
    data = {
        "file": SimpleUploadedFile(
            "a.jsonl", b'{"id": "x", "turns": [{"speaker": "A", "text": "hi"}]}\n'
        )
    }
    with django_capture_on_commit_callbacks(execute=False):
        if method == "post":
            response = client.post(url, data, headers=headers)
        else:
            response = client.get(url, headers=headers)
    expected = _expected(persona, needed, api=True)
    if expected == 200 and method == "post":
        expected = 202
    assert response.status_code == expected


@pytest.mark.parametrize("persona", PERSONAS)
def test_import_job_status_is_for_project_admins(
    client, request, project, admin_alice, persona, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        job = services.import_job_create(
            project=project,
            upload=SimpleUploadedFile("a.jsonl", b"{}\n"),
            user=admin_alice,
        )
    headers = {}
    if persona != "anonymous":
        _, key = services.api_token_create(
            user=request.getfixturevalue(persona), name="t"
        )
        headers["Authorization"] = f"Bearer {key}"
    response = client.get(f"/api/imports/{job.pk}/", headers=headers)
    expected = {
        "anonymous": 401,
        "outsider_olga": 404,
        "annotator_ann": 403,
        "lead_lena": 403,
        "admin_alice": 200,
        "root": 200,
    }[persona]
    assert response.status_code == expected


@pytest.mark.parametrize(
    ("persona", "expected"),
    [
        ("annotator_ann", 302),
        ("lead_lena", 302),
        ("admin_alice", 302),
        ("root", 200),
    ],
)
def test_the_admin_site_is_for_staff(client, request, project, persona, expected):
    client.force_login(request.getfixturevalue(persona))
    assert client.get("/admin/annotate/importjob/add/").status_code == expected


def test_staff_project_admins_import_only_into_their_projects(
    client, project, admin_alice
):
    other = services.project_create(name="Other", slug="other", tasks={})
    admin_alice.is_staff = True
    admin_alice.save()
    client.force_login(admin_alice)
    page = client.get("/admin/annotate/importjob/add/").content.decode()
    assert "Support calls" in page and "Other" not in page
    assert other.pk


def test_project_list_shows_only_the_users_projects(client, project, annotator_ann):
    services.project_create(name="Secret", slug="secret", tasks={})
    client.force_login(annotator_ann)
    page = client.get("/").content.decode()
    assert "Support calls" in page and "Secret" not in page


def test_revoked_and_unknown_tokens_are_refused(client, project, admin_alice):
    token, key = services.api_token_create(user=admin_alice, name="t")
    assert (
        client.get(
            "/api/projects/", headers={"Authorization": f"Bearer {key}"}
        ).status_code
        == 200
    )
    token.revoked = True
    token.save()
    assert (
        client.get(
            "/api/projects/", headers={"Authorization": f"Bearer {key}"}
        ).status_code
        == 401
    )
    assert (
        client.get(
            "/api/projects/", headers={"Authorization": "Bearer prl_nope"}
        ).status_code
        == 401
    )
    assert (
        client.get("/api/projects/", headers={"Authorization": key}).status_code == 401
    )
