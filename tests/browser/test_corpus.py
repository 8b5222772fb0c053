"""The corpus browser in a real browser: filter, page, open a dialogue, re-queue."""

from __future__ import annotations

import pytest

from annotate.models import QueueItem
from tests.browser.conftest import make_dialogues

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_lead_filters_opens_a_dialogue_and_requeues_a_turn(
    signed_in, live_server, project, lead_lena, settings, shots
):
    settings.PARLEY_OVERLAP_FRACTION = 0.0
    make_dialogues(project, n_dialogues=30)
    page = signed_in(lead_lena)
    page.goto(live_server.url + "/projects/support/")
    page.get_by_role("link", name="Corpus").first.click()
    page.select_option("#f-llm", "inform")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**llm=inform**")
    rows = page.locator("table.corpus tbody tr")
    assert rows.count() == 50
    page.screenshot(path=str(shots / "corpus.png"), full_page=True)
    assert all("depot" in rows.nth(i).inner_text() for i in range(rows.count()))
    page.get_by_role("link", name="Next page").click()
    page.wait_for_url("**after=**")
    assert (
        page.locator("table.corpus tbody tr").count() == 10
    )  # 60 "inform" turns in all
    page.locator("table.corpus tbody tr a").first.click()
    page.wait_for_url("**/dialogues/**")
    page.screenshot(path=str(shots / "corpus-dialogue.png"), full_page=True)
    row = page.locator("table.dialogue-labels tbody tr").nth(1)
    assert "It is in depot" in row.inner_text()
    row.get_by_role("button", name="Re-queue").click()
    page.get_by_text("is back in the act queue").wait_for()
    utterance = int(page.url.split("#u")[1])
    item = QueueItem.objects.get(task__name="act", utterance_id=utterance)
    assert item.open and item.priority == 0.0
