"""The annotator's history: their last answers, and changing one (history kept)."""

from __future__ import annotations

import pytest

from annotate import selectors, services
from annotate.models import HumanLabel, LabelRetraction, QueueItem
from tests.browser.conftest import make_dialogues


@pytest.fixture
def act(project, settings):
    settings.PARLEY_OVERLAP_FRACTION = 0.0
    return make_dialogues(project)


def answer(task, annotator, n: int, label: str = "question") -> HumanLabel:
    item = QueueItem.objects.filter(task=task).order_by("pk")[n]
    return services.label_submit(
        item_id=item.pk, annotator=annotator, label=label, submission_key=f"k{n}"
    )


def reference(task, utterance_id) -> str:
    return (
        selectors.reference_labels(task=task, utterance_id=utterance_id)
        .get()
        .label.value
    )


def test_a_change_is_a_new_row_and_the_old_one_stays_retracted(act, annotator_ann):
    old = answer(act, annotator_ann, 0, "question")
    new = services.label_change(
        label_id=old.pk, annotator=annotator_ann, label="inform"
    )
    assert new.pk != old.pk and new.replaces_id == old.pk
    assert (new.llm_label_id, new.trust) == (old.llm_label_id, old.trust)
    assert LabelRetraction.objects.filter(label=old).exists()
    assert reference(act, old.utterance_id) == "inform"
    # the same change sent twice is stored once
    again = services.label_change(
        label_id=old.pk, annotator=annotator_ann, label="inform"
    )
    assert again.pk == new.pk
    assert HumanLabel.objects.filter(utterance_id=old.utterance_id).count() == 2
    # the item keeps its one answer
    item = QueueItem.objects.get(task=act, utterance_id=old.utterance_id)
    assert item.answers == 1 and not item.open


def test_refusals(act, annotator_ann, annotator_bob):
    old = answer(act, annotator_ann, 0)
    with pytest.raises(services.SubmitError, match="not one of your answers"):
        services.label_change(label_id=old.pk, annotator=annotator_bob, label="inform")
    with pytest.raises(services.SubmitError, match="unknown label"):
        services.label_change(label_id=old.pk, annotator=annotator_ann, label="nope")
    services.label_change(label_id=old.pk, annotator=annotator_ann, label="inform")
    with pytest.raises(services.SubmitError, match="changed already"):
        services.label_change(
            label_id=old.pk, annotator=annotator_ann, label="directive"
        )
    undone = answer(act, annotator_ann, 1)
    services.label_undo(task=act, annotator=annotator_ann)
    with pytest.raises(services.SubmitError, match="undone"):
        services.label_change(
            label_id=undone.pk, annotator=annotator_ann, label="inform"
        )


def test_the_history_lists_the_last_answers_that_count(act, annotator_ann, settings):
    labels = [answer(act, annotator_ann, n) for n in range(5)]
    services.label_change(
        label_id=labels[2].pk, annotator=annotator_ann, label="inform"
    )
    history = selectors.annotator_history(task=act, user=annotator_ann, limit=4)
    assert len(history) == 4
    assert history[0].replaces_id == labels[2].pk and history[0].label.value == "inform"
    assert labels[2].pk not in {h.pk for h in history}


def test_the_page_changes_an_answer_and_the_lead_sees_it(
    client, act, annotator_ann, annotator_bob, lead_lena
):
    old = answer(act, annotator_ann, 0, "question")
    # a second annotator disagrees, so the lead's review lists the item
    item = QueueItem.objects.get(task=act, utterance_id=old.utterance_id)
    QueueItem.objects.filter(pk=item.pk).update(required=2, open=True)
    services.label_submit(
        item_id=item.pk, annotator=annotator_bob, label="directive", submission_key="b"
    )
    client.force_login(annotator_ann)
    url = "/projects/support/tasks/act/history/"
    page = client.get(url).content.decode()
    assert f'id="answer-{old.pk}"' in page
    response = client.post(f"{url}{old.pk}/change", {"label": "inform"}, follow=True)
    assert "Changed to “inform”." in response.content.decode()
    assert "(changed from question)" in response.content.decode()
    assert client.post(f"{url}{old.pk}/change", {"label": "directive"}, follow=True)
    client.force_login(annotator_bob)
    refused = client.post(f"{url}{old.pk}/change", {"label": "directive"}, follow=True)
    assert "Not changed: not one of your answers." in refused.content.decode()
    client.force_login(lead_lena)
    review = client.get("/projects/support/tasks/act/review/").content.decode()
    assert "(changed from question," in review


def test_an_answer_is_changed_only_through_its_own_tasks_url(
    client, act, project, annotator_ann
):
    old = answer(act, annotator_ann, 0, "question")
    client.force_login(annotator_ann)
    other = project.tasks.exclude(pk=act.pk).get().name
    response = client.post(
        f"/projects/support/tasks/{other}/history/{old.pk}/change", {"label": "inform"}
    )
    assert response.status_code == 404
    assert not HumanLabel.objects.filter(replaces=old).exists()
