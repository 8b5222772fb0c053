"""Every page renders under the Content-Security-Policy: no script, style or request refused."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import make_dialogues

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _violations(page):
    seen = []
    page.on(
        "console",
        lambda m: seen.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return seen


def test_every_page_renders_under_the_content_security_policy(
    signed_in, live_server, project, annotator_ann, lead_lena, root
):
    task = make_dialogues(project)
    base = f"{live_server.url}/projects/support"
    pages = {
        annotator_ann: [
            "/",
            "/projects/support/",
            f"/projects/support/tasks/{task.name}/queue/",
            f"/projects/support/tasks/{task.name}/history/",
        ],
        lead_lena: [
            f"/projects/support/tasks/{task.name}/review/",
            f"/projects/support/tasks/{task.name}/dashboard/",
            f"/projects/support/tasks/{task.name}/corpus/?llm=question",
            f"/projects/support/dialogues/{task.project.dialogues.first().pk}/",
        ],
        root: [
            "/projects/support/imports/",
            "/projects/support/members/",
            f"/projects/support/tasks/{task.name}/settings/",
            "/admin/",
            "/admin/annotate/importjob/",
            "/admin/annotate/importjob/add/",
        ],
    }
    for user, paths in pages.items():
        page = signed_in(user)
        seen = _violations(page)
        for path in paths:
            response = page.goto(f"{live_server.url}{path}")
            assert response.status == 200, path
            assert "default-src 'self'" in response.headers["content-security-policy"]
            page.wait_for_load_state("networkidle")
        if user is annotator_ann:
            # The workspace's own script runs: a key press skips the item.
            page.goto(f"{base}/tasks/{task.name}/queue/")
            page.keyboard.press("s")
            expect(page.locator("#status")).to_have_text(re.compile("Skipped"))
        assert seen == [], (user.username, seen)
