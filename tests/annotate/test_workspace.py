"""The annotator workspace without JavaScript (plain forms) and its services: undo, flag,
review and adjudication."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from annotate import services
from annotate.models import Flag, HumanLabel, LabelRetraction, QueueItem
from tests.conftest import jsonl

QUEUE = "/projects/support/tasks/act/queue/"


@pytest.fixture
def act(project, settings):
    settings.PARLEY_OVERLAP_FRACTION = 0.0  # one answer per item
    turns = [
        {
            "speaker": "AB"[i % 2],
            "text": f"turn {i}",
            "llm": {"act": {"label": "inform", "confidence": 0.5 + i / 20}},
        }
        for i in range(6)
    ]
    services.transcripts_import(
        project=project,
        stream=io.BytesIO(jsonl({"id": "d1", "turns": turns})),
        name="w.jsonl",
    )
    task = project.tasks.get(name="act")
    task.guidelines = "Inform: statements."
    task.save()
    services.queue_sync(task=task)
    return task


def held(user):
    return list(
        QueueItem.objects.filter(claimed_by=user)
        .order_by("trust", "pk")
        .values_list("utterance__text", flat=True)
    )


def test_the_page_shows_the_item_in_its_dialogue_and_claims_one_ahead(
    client, act, annotator_ann
):
    client.force_login(annotator_ann)
    response = client.get(QUEUE)
    html = response.content.decode()
    assert response.status_code == 200
    assert held(annotator_ann) == [
        "turn 0",
        "turn 1",
    ]  # the current item and the one ahead
    assert (
        'aria-current="true"' in html and "turn 5" in html
    )  # the whole dialogue is shown
    assert (
        "LLM suggestion: <strong>inform</strong>" in html and "(50 % confident)" in html
    )
    assert "Inform: statements." in html
    assert 'Done today: <strong id="done-today">0</strong>' in html


def test_a_reload_keeps_the_same_items(client, act, annotator_ann):
    client.force_login(annotator_ann)
    first = client.get(QUEUE).content.decode()
    again = client.get(QUEUE).content.decode()
    item = QueueItem.objects.get(task=act, utterance__text="turn 0")
    assert f'id="item-{item.pk}"' in first and f'id="item-{item.pk}"' in again
    assert held(annotator_ann) == ["turn 0", "turn 1"]


def test_a_hidden_suggestion_is_not_shown(client, act, annotator_ann):
    act.hide_suggestion = True
    act.save()
    client.force_login(annotator_ann)
    assert "LLM suggestion" not in client.get(QUEUE).content.decode()


def test_the_form_submit_works_without_javascript_and_once(client, act, annotator_ann):
    client.force_login(annotator_ann)
    client.get(QUEUE)
    item = QueueItem.objects.get(task=act, utterance__text="turn 0")
    url = f"{QUEUE}{item.pk}/submit"
    for _ in range(2):  # a double submit
        response = client.post(url, {"label": "question", "submission_key": "k-1"})
        assert response.status_code == 302 and response.url == QUEUE
    assert HumanLabel.objects.filter(utterance=item.utterance).count() == 1
    page = client.get(QUEUE, follow=True).content.decode()
    assert "Saved “question”" in page
    assert held(annotator_ann) == ["turn 1", "turn 2"]


def test_the_script_submit_answers_with_the_next_item_to_fetch_ahead(
    client, act, annotator_ann
):
    client.force_login(annotator_ann)
    client.get(QUEUE)
    first, second = (
        QueueItem.objects.get(task=act, utterance__text=t) for t in ("turn 0", "turn 1")
    )
    # the count is adjusted on commit, which never comes inside the test's transaction
    cache.delete(f"queue-open:{act.pk}")
    response = client.post(
        f"{QUEUE}{first.pk}/submit",
        {"label": "inform", "submission_key": "k-2", "showing": [second.pk]},
        headers={"X-Parley-Fragment": "1"},
    )
    assert response.status_code == 200
    third = QueueItem.objects.get(task=act, utterance__text="turn 2")
    assert f'id="item-{third.pk}"' in response.content.decode()
    assert response["X-Parley-Done-Today"] == "1" and response["X-Parley-Left"] == "5"


def test_an_unknown_label_is_refused_and_nothing_is_stored(client, act, annotator_ann):
    client.force_login(annotator_ann)
    item = QueueItem.objects.get(task=act, utterance__text="turn 0")
    response = client.post(
        f"{QUEUE}{item.pk}/submit",
        {"label": "nope", "submission_key": "k"},
        headers={"X-Parley-Fragment": "1"},
    )
    assert response.status_code == 409 and not HumanLabel.objects.exists()


def test_undo_within_the_grace_period_takes_the_label_back_and_reopens_the_item(
    client, act, annotator_ann
):
    client.force_login(annotator_ann)
    item = QueueItem.objects.get(task=act, utterance__text="turn 0")
    client.post(
        f"{QUEUE}{item.pk}/submit", {"label": "question", "submission_key": "k-3"}
    )
    response = client.post(f"{QUEUE}undo")
    assert response.status_code == 302
    assert response.url == f"{QUEUE}?item={item.pk}&undone=question"
    label = HumanLabel.objects.get(utterance=item.utterance)
    assert LabelRetraction.objects.filter(label=label).exists()  # the row stays
    item.refresh_from_db()
    assert item.open and item.answers == 0 and item.claimed_by == annotator_ann
    page = client.get(response.url).content.decode()
    assert f'id="item-{item.pk}"' in page.split('<template id="ahead">')[0]
    assert "Undone: your “question” is taken back. Choose again." in page
    # the answer taken back is highlighted; an unknown value is ignored
    assert 'value="question" data-key' in page and 'class="undone"' in page
    odd = client.get(f"{QUEUE}?item={item.pk}&undone=<b>x</b>").content.decode()
    assert "Undone" not in odd and "<b>x</b>" not in odd
    client.post(
        f"{QUEUE}{item.pk}/submit", {"label": "inform", "submission_key": "k-4"}
    )  # answered anew
    assert (
        HumanLabel.objects.filter(utterance=item.utterance, retraction__isnull=True)
        .get()
        .label.value
        == "inform"
    )


def test_undo_after_the_grace_period_does_nothing(client, act, annotator_ann, settings):
    client.force_login(annotator_ann)
    item = QueueItem.objects.get(task=act, utterance__text="turn 0")
    client.post(
        f"{QUEUE}{item.pk}/submit", {"label": "question", "submission_key": "k-5"}
    )
    HumanLabel.objects.update(
        created_at=timezone.now() - timedelta(seconds=settings.PARLEY_UNDO_GRACE_S + 1)
    )
    assert services.label_undo(task=act, annotator=annotator_ann) is None
    assert not LabelRetraction.objects.exists()


def test_flagging_moves_on_and_puts_the_item_on_the_review_page(
    client, act, annotator_ann, lead_lena
):
    client.force_login(annotator_ann)
    client.get(QUEUE)
    item = QueueItem.objects.get(task=act, utterance__text="turn 0")
    client.post(f"{QUEUE}{item.pk}/flag", {"comment": "Two acts in one turn"})
    assert Flag.objects.get().comment == "Two acts in one turn"
    assert "turn 0" not in held(annotator_ann)
    client.force_login(lead_lena)
    page = client.get("/projects/support/tasks/act/review/").content.decode()
    assert "Two acts in one turn" in page and "flagged" in page


def test_disagreements_are_reviewed_and_adjudication_keeps_the_originals(
    client, act, annotator_ann, annotator_bob, lead_lena
):
    item = QueueItem.objects.get(task=act, utterance__text="turn 3")
    QueueItem.objects.filter(pk=item.pk).update(required=2)
    services.label_submit(
        item_id=item.pk, annotator=annotator_ann, label="inform", submission_key="a"
    )
    services.label_submit(
        item_id=item.pk, annotator=annotator_bob, label="question", submission_key="b"
    )
    rows = services.selectors.review_rows(task=act)
    assert [(r["utterance"].text, r["reason"]) for r in rows] == [
        ("turn 3", "disagreement")
    ]
    client.force_login(lead_lena)
    response = client.post(
        f"/projects/support/tasks/act/review/{item.utterance_id}/adjudicate",
        {"label": "question"},
    )
    assert response.status_code == 302
    labels = HumanLabel.objects.filter(utterance=item.utterance).order_by("pk")
    assert [(h.source, h.label.value) for h in labels] == [
        ("annotation", "inform"),
        ("annotation", "question"),
        ("adjudication", "question"),
    ]
    assert services.selectors.review_rows(task=act) == []
    ex = services.selectors.training_examples(
        task=act, utterance_ids=[item.utterance_id]
    )[0]
    assert ex.human == 1  # the adjudicated label is what the student learns


def test_renew_and_release_keep_or_free_the_claims(client, act, annotator_ann):
    client.force_login(annotator_ann)
    client.get(QUEUE)
    item = QueueItem.objects.get(task=act, utterance__text="turn 0")
    assert client.post(f"{QUEUE}renew", {"item": [item.pk]}).status_code == 204
    client.post(f"{QUEUE}release", {"item": [item.pk]})
    item.refresh_from_db()
    assert item.claimed_by == annotator_ann
    assert item.lease_until < timezone.now() + timedelta(
        seconds=16
    )  # runs out soon unless the page returns


def test_the_project_page_shows_each_tasks_queue_and_my_progress(
    client, act, annotator_ann
):
    item = QueueItem.objects.get(task=act, utterance__text="turn 0")
    services.label_submit(
        item_id=item.pk, annotator=annotator_ann, label="inform", submission_key="p-1"
    )
    cache.delete(f"queue-open:{act.pk}")
    client.force_login(annotator_ann)
    row = (
        client.get("/projects/support/")
        .content.decode()
        .split(f'id="task-{act.pk}"')[1]
        .split("</tr>")[0]
    )
    assert "<td>5</td>" in row and "<td>1 / 1</td>" in row and f"{QUEUE}" in row


@pytest.mark.django_db(transaction=True)
def test_left_in_the_queue_is_exact_after_each_submit_and_the_same_everywhere(
    client, act, annotator_ann
):
    client.force_login(annotator_ann)
    client.get(QUEUE)  # counts, and caches the count
    lefts = []
    for n, text in enumerate(("turn 0", "turn 1", "turn 2")):
        item = QueueItem.objects.get(task=act, utterance__text=text)
        response = client.post(
            f"{QUEUE}{item.pk}/submit",
            {"label": "inform", "submission_key": f"e-{n}"},
            headers={"X-Parley-Fragment": "1"},
        )
        lefts.append(int(response["X-Parley-Left"]))
    assert lefts == [5, 4, 3]
    row = (
        client.get("/projects/support/")
        .content.decode()
        .split(f'id="task-{act.pk}"')[1]
        .split("</tr>")[0]
    )
    assert "<td>3</td>" in row
    # an undo reopens its item: one more left
    client.post(f"{QUEUE}undo", headers={"X-Parley-Fragment": "1"})
    page = client.get(QUEUE).content.decode()
    assert 'id="left">4<' in page
