"""Project setup in a real browser: a prompt's live preview, a member invited."""

from __future__ import annotations

import pytest

from annotate.models import Membership, PromptTemplate
from tests.browser.conftest import make_dialogues

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_admin_writes_a_prompt_with_its_live_preview_and_invites_a_member(
    signed_in, live_server, project, admin_alice, django_user_model, shots
):
    make_dialogues(project)
    django_user_model.objects.create_user("carla")
    page = signed_in(admin_alice)
    page.goto(live_server.url + "/projects/support/")
    page.get_by_role("link", name="Settings").first.click()
    page.wait_for_url("**/settings/")
    new = page.locator("#prompt-new")
    new.locator("input[name=name]").fill("short")
    area = new.locator("textarea")
    area.fill("")
    area.type("Which act? {labels}\n{utterance}")
    preview = page.locator("#preview-new")
    preview.get_by_text("Which act? inform, question").wait_for()
    page.screenshot(path=str(shots / "task-settings.png"), full_page=True)
    assert (
        "Where is parcel" in preview.inner_text()
        or "It is in depot" in preview.inner_text()
    )
    new.get_by_role("button", name="Add the prompt").click()
    page.get_by_text("Prompt “short” saved.").wait_for()
    assert PromptTemplate.objects.get(name="short").template.startswith("Which act?")
    page.get_by_role("link", name="members").click()
    page.fill("#invite-username", "carla")
    page.select_option("#invite-role", "lead")
    page.get_by_role("button", name="Invite").click()
    page.get_by_text("carla is now lead.").wait_for()
    page.screenshot(path=str(shots / "members.png"), full_page=True)
    assert Membership.objects.get(user__username="carla").role == "lead"
