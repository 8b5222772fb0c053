"""The annotator workspace in a real browser (headless Chromium via Playwright)."""

from __future__ import annotations

import pytest

from annotate.models import Flag, HumanLabel, LabelRetraction, QueueItem
from tests.browser.conftest import make_dialogues

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
QUEUE = "/projects/support/tasks/act/queue/"


@pytest.fixture
def act(project, settings):
    settings.PARLEY_OVERLAP_FRACTION = 0.0
    return make_dialogues(project)


def current(page) -> str:
    return page.locator("#current article.item").get_attribute("data-item")


def press_and_advance(page, key: str) -> None:
    before = current(page)
    page.keyboard.press(key)
    page.wait_for_function(
        "before => { const a = document.querySelector('#current article.item');"
        " return a && a.dataset.item !== before; }",
        arg=before,
    )


def wait_saved(count: int, **filters) -> None:
    import time

    deadline = time.monotonic() + 10
    while (
        HumanLabel.objects.filter(**filters).count() < count
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert HumanLabel.objects.filter(**filters).count() == count


def test_a_keyboard_only_session_over_20_items(
    signed_in, live_server, act, annotator_ann, shots
):
    page = signed_in(annotator_ann)
    page.goto(live_server.url + QUEUE)
    pressed = {}
    for _ in range(20):
        item = QueueItem.objects.select_related("utterance").get(pk=current(page))
        question = item.utterance.text.endswith("?")
        pressed[item.utterance_id] = "question" if question else "inform"
        # questions by their label key, statements by accepting the suggestion
        press_and_advance(page, "2" if question else "Enter")
    wait_saved(20, annotator=annotator_ann)
    stored = dict(
        HumanLabel.objects.filter(annotator=annotator_ann).values_list(
            "utterance_id", "label__value"
        )
    )
    assert stored == pressed
    page.wait_for_function(
        "() => document.getElementById('done-today').textContent === '20'"
    )
    assert (
        "Saved" in page.locator("#status").inner_text()
        or "Accepted" in page.locator("#status").inner_text()
    )
    page.screenshot(path=str(shots / "queue.png"), full_page=True)


def test_a_reload_mid_item_keeps_the_claim(signed_in, live_server, act, annotator_ann):
    page = signed_in(annotator_ann)
    page.goto(live_server.url + QUEUE)
    press_and_advance(page, "1")
    shown = current(page)
    page.reload()
    assert current(page) == shown
    assert QueueItem.objects.get(pk=shown).claimed_by == annotator_ann


def test_two_annotators_never_see_the_same_item_at_once(
    signed_in, live_server, act, annotator_ann, annotator_bob
):
    ann, bob = signed_in(annotator_ann), signed_in(annotator_bob)
    ann.goto(live_server.url + QUEUE)
    bob.goto(live_server.url + QUEUE)

    def on_page(page) -> set[str]:
        return set(
            page.eval_on_selector_all(
                "#current article.item, #ahead",
                "els => els.flatMap(e => e.tagName === 'TEMPLATE'"
                " ? [...e.content.querySelectorAll('article.item')].map(a => a.dataset.item) : [e.dataset.item])",
            )
        )

    for step in range(6):
        assert not on_page(ann) & on_page(bob)
        press_and_advance(ann if step % 2 else bob, "1")
    wait_saved(6)
    assert HumanLabel.objects.values("utterance").distinct().count() == 6


def test_a_submit_sent_while_the_server_is_down_is_retried_and_stored_once(
    signed_in, live_server, act, annotator_ann
):
    page = signed_in(annotator_ann)
    page.goto(live_server.url + QUEUE)
    failures = {"left": 2}

    def flaky(route):
        if failures["left"]:
            failures["left"] -= 1
            route.abort("connectionrefused")
        else:
            route.continue_()

    page.route("**/queue/*/submit", flaky)
    item = current(page)
    press_and_advance(page, "3")
    page.wait_for_function(
        "() => document.getElementById('status').textContent.startsWith('Saved')"
    )
    assert failures["left"] == 0
    wait_saved(1, annotator=annotator_ann)
    assert (
        HumanLabel.objects.get(annotator=annotator_ann).utterance_id
        == QueueItem.objects.get(pk=item).utterance_id
    )


def test_undo_brings_the_item_back(signed_in, live_server, act, annotator_ann):
    page = signed_in(annotator_ann)
    page.goto(live_server.url + QUEUE)
    item = current(page)
    press_and_advance(page, "4")
    page.wait_for_function(
        "() => document.getElementById('status').textContent.startsWith('Saved')"
    )
    page.keyboard.press("u")
    page.wait_for_url(f"**{QUEUE}?item={item}&undone=*")
    assert current(page) == item
    undone = (
        LabelRetraction.objects.select_related("label__label").get().label.label.value
    )
    # feedback, and the answer taken back is the highlighted one (not the suggestion)
    assert page.locator("#status").inner_text().startswith(f"Undone: your “{undone}”")
    assert (
        page.locator("#current .labels button.undone").get_attribute("value") == undone
    )
    assert page.locator("#current .labels button.suggested").count() == 0
    press_and_advance(page, "2")
    wait_saved(1, annotator=annotator_ann, retraction__isnull=True)


def test_flag_then_adjudicate(
    signed_in, live_server, act, annotator_ann, lead_lena, shots
):
    page = signed_in(annotator_ann)
    page.goto(live_server.url + QUEUE)
    item = QueueItem.objects.select_related("utterance").get(pk=current(page))
    comment = page.locator("#current .flag-comment textarea")
    assert not comment.is_visible()  # out of the way until a flag is written
    page.keyboard.press("f")
    assert comment.is_visible()
    page.keyboard.press("Escape")  # changed my mind
    assert not comment.is_visible() and Flag.objects.count() == 0
    page.keyboard.press("f")
    page.keyboard.type("Is this a question or a request?")
    before = current(page)
    page.keyboard.press("Control+Enter")
    page.wait_for_function(
        "before => document.querySelector('#current article.item').dataset.item !== before",
        arg=before,
    )
    page.wait_for_function(
        "() => document.getElementById('status').textContent === 'Flagged for review.'"
    )
    assert Flag.objects.get().comment == "Is this a question or a request?"

    lead = signed_in(lead_lena)
    lead.goto(f"{live_server.url}/projects/support/tasks/act/review/")
    row = lead.locator(f"#review-{item.utterance_id}")
    assert "Is this a question or a request?" in row.inner_text()
    lead.screenshot(path=str(shots / "review.png"), full_page=True)
    row.get_by_label("Label").select_option("directive")
    row.get_by_role("button", name="Decide").click()
    lead.wait_for_selector("text=Decided “directive”")
    decided = HumanLabel.objects.get(utterance=item.utterance, source="adjudication")
    assert decided.label.value == "directive" and decided.annotator == lead_lena
    assert Flag.objects.get().resolved_by == lead_lena


def test_w_shows_why_the_item_is_in_front(
    signed_in, live_server, act, annotator_ann, shots
):
    page = signed_in(annotator_ann)
    page.goto(live_server.url + QUEUE)
    why = page.locator("#current article.item section.why")
    assert why.is_hidden()
    page.keyboard.press("w")
    why.locator("li").first.wait_for()
    page.screenshot(path=str(shots / "queue-why.png"), full_page=True)
    text = why.inner_text()
    assert text.startswith("Trust") and "The LLM" in text
    page.keyboard.press("w")
    assert why.is_hidden()
    # the panel belongs to its item: the next one starts closed
    press_and_advance(page, "1")
    assert page.locator("#current article.item section.why").is_hidden()


def test_an_older_answer_is_changed_from_the_history_page(
    signed_in, live_server, act, annotator_ann, shots
):
    page = signed_in(annotator_ann)
    page.goto(live_server.url + QUEUE)
    for key in ("1", "2", "1"):
        press_and_advance(page, key)
    wait_saved(3, annotator=annotator_ann)
    page.get_by_role("link", name="Your last answers").click()
    page.wait_for_url("**/history/")
    first = HumanLabel.objects.filter(annotator=annotator_ann).order_by("pk").first()
    row = page.locator(f"#answer-{first.pk}")
    other = "inform" if first.label.value != "inform" else "question"
    row.locator("select").select_option(
        other
    )  # then keyboard only: Tab to Change, Enter
    row.locator("select").press("Tab")
    page.keyboard.press("Enter")
    page.get_by_text(f"Changed to “{other}”.").wait_for()
    page.screenshot(path=str(shots / "history.png"), full_page=True)
    assert (
        f"(changed from {first.label.value})"
        in page.locator(
            f"#answer-{HumanLabel.objects.get(replaces=first).pk}"
        ).inner_text()
    )
