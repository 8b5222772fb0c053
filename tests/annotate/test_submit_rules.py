"""Who may submit on an item, and what a resent or concurrent submit gets back."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from annotate import services
from annotate.models import HumanLabel, QueueItem
from tests.conftest import dialogue, jsonl


@pytest.fixture
def act(project, settings, import_bytes):
    settings.PARLEY_OVERLAP_FRACTION = 0.0
    import_bytes(jsonl(dialogue("d1", n_turns=3, llm={"act": "inform"})))
    return project.tasks.get(name="act")


def test_a_submit_on_an_item_another_annotator_holds_is_refused(
    act, annotator_ann, annotator_bob
):
    item = services.queue_claim(task=act, annotator=annotator_ann)
    with pytest.raises(services.SubmitError, match="another annotator"):
        services.label_submit(
            item_id=item.pk, annotator=annotator_bob, label="inform", submission_key="b"
        )
    item.refresh_from_db()
    assert item.open and item.claimed_by == annotator_ann
    assert not HumanLabel.objects.exists()


def test_another_annotators_expired_claim_does_not_block_a_submit(
    act, annotator_ann, annotator_bob
):
    item = services.queue_claim(task=act, annotator=annotator_ann)
    QueueItem.objects.filter(pk=item.pk).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )
    label = services.label_submit(
        item_id=item.pk, annotator=annotator_bob, label="inform", submission_key="b"
    )
    assert label.annotator == annotator_bob


def test_my_own_stale_lease_still_submits(act, annotator_ann):
    item = services.queue_claim(task=act, annotator=annotator_ann)
    QueueItem.objects.filter(pk=item.pk).update(
        lease_until=timezone.now() - timedelta(minutes=30)
    )
    services.label_submit(
        item_id=item.pk, annotator=annotator_ann, label="question", submission_key="a"
    )
    item.refresh_from_db()
    assert (item.open, item.answers, item.claimed_by) == (False, 1, None)


def test_a_closed_item_answers_with_its_outcome_and_stores_nothing_new(
    act, annotator_ann, annotator_bob
):
    item = services.queue_claim(task=act, annotator=annotator_ann)
    services.label_submit(
        item_id=item.pk, annotator=annotator_ann, label="question", submission_key="a"
    )
    with pytest.raises(services.SubmitError, match="already labelled as “question”"):
        services.label_submit(
            item_id=item.pk, annotator=annotator_bob, label="inform", submission_key="b"
        )
    assert HumanLabel.objects.filter(utterance=item.utterance).count() == 1


def test_the_closed_item_rule_holds_over_http(
    client, act, annotator_ann, annotator_bob
):
    item = services.queue_claim(task=act, annotator=annotator_ann)
    services.label_submit(
        item_id=item.pk, annotator=annotator_ann, label="question", submission_key="a"
    )
    client.force_login(annotator_bob)
    response = client.post(
        f"/projects/support/tasks/act/queue/{item.pk}/submit",
        {"label": "inform", "submission_key": "b"},
        headers={"X-Parley-Fragment": "1"},
    )
    assert response.status_code == 409
    assert "already labelled" in response.content.decode()
    assert HumanLabel.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_copies_of_one_submission_all_get_the_stored_label(
    project, annotator_ann, settings, import_bytes
):
    if connection.vendor != "postgresql":
        pytest.skip("needs concurrent transactions")
    settings.PARLEY_OVERLAP_FRACTION = 0.0
    import_bytes(jsonl(dialogue("d1", n_turns=1)))
    item = QueueItem.objects.get(task__name="act")
    results, errors = [], []
    barrier = threading.Barrier(8)

    def resend():
        try:
            barrier.wait()
            saved = services.label_submit(
                item_id=item.pk,
                annotator=annotator_ann,
                label="inform",
                submission_key="same-key",
            )
            results.append(saved.pk)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    for _ in range(5):  # several rounds: a race that wins once in a while still shows
        HumanLabel.objects.all().delete()
        QueueItem.objects.filter(pk=item.pk).update(open=True, answers=0)
        results.clear()
        threads = [threading.Thread(target=resend) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(results) == 8 and len(set(results)) == 1
        assert HumanLabel.objects.count() == 1
