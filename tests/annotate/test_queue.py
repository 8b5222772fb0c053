"""The annotator queue: sync, claim (least trusted first, leased, skip locked), renew, release,
skip, idempotent submit, overlap for agreement, automatic retrain."""

from __future__ import annotations

import io
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from annotate import services
from annotate.models import HumanLabel, QueueItem, QueueSkip, TrainingRun
from tests.conftest import jsonl


def answers(*labels_confidences):
    """Three prompts' answers; a list of (label, confidence)."""
    return [
        {"prompt": f"P{i}", "label": lbl, "confidence": c}
        for i, (lbl, c) in enumerate(labels_confidences, 1)
    ]


@pytest.fixture
def act(project, settings):
    """Four utterances with more or less trustworthy LLM labels, and one with none."""
    settings.PARLEY_OVERLAP_FRACTION = (
        0.0  # one answer per item unless a test asks for two
    )
    turns = [
        {
            "speaker": "A",
            "text": "sure",
            "llm": {"act": answers(("inform", 0.9), ("inform", 0.9), ("inform", 0.9))},
        },
        {
            "speaker": "B",
            "text": "maybe",
            "llm": {
                "act": answers(("inform", 0.5), ("question", 0.6), ("directive", 0.5))
            },
        },
        {
            "speaker": "A",
            "text": "go!",
            "llm": {
                "act": answers(("directive", 0.7), ("directive", 0.6), ("inform", 0.5))
            },
        },
        {
            "speaker": "B",
            "text": "ok",
            "llm": {
                "act": answers(
                    ("commissive", 0.8), ("commissive", 0.8), ("commissive", 0.6)
                )
            },
        },
        {"speaker": "A", "text": "hm"},
    ]
    services.transcripts_import(
        project=project,
        stream=io.BytesIO(jsonl({"id": "d1", "turns": turns})),
        name="q.jsonl",
    )
    task = project.tasks.get(name="act")
    services.queue_sync(task=task)
    return task


def order_of(task):
    return list(
        QueueItem.objects.filter(task=task, open=True)
        .order_by("trust", "pk")
        .values_list("utterance__text", flat=True)
    )


def key(n=1):
    return f"item-attempt-{n}"


def test_sync_gives_every_utterance_one_item_with_a_heuristic_trust(act):
    assert QueueItem.objects.filter(task=act).count() == 5
    assert order_of(act) == [
        "hm",
        "maybe",
        "go!",
        "ok",
        "sure",
    ]  # no LLM label first, then least trusted
    assert services.queue_sync(task=act) == 0  # idempotent
    sure = QueueItem.objects.get(task=act, utterance__text="sure")
    assert (
        sure.trust == pytest.approx(0.9)
        and sure.trust_source == "heuristic"
        and sure.trust_version is None
    )


def test_an_imported_human_label_closes_its_item(project, settings):
    # else one utterance in ten needs a second answer
    settings.PARLEY_OVERLAP_FRACTION = 0.0
    line = {
        "id": "d9",
        "turns": [
            {"speaker": "A", "text": "x", "human": {"act": "inform"}},
            {"speaker": "B", "text": "y"},
        ],
    }
    services.transcripts_import(
        project=project, stream=io.BytesIO(jsonl(line)), name="h.jsonl"
    )
    task = project.tasks.get(name="act")
    services.queue_sync(task=task)
    assert order_of(task) == ["y"]


def test_claim_gives_the_least_trusted_item_and_a_reload_keeps_it(act, annotator_ann):
    item = services.queue_claim(task=act, annotator=annotator_ann)
    assert item.utterance.text == "hm" and item.claimed_by == annotator_ann
    assert item.lease_until > timezone.now() + timedelta(seconds=200)
    again = services.queue_claim(task=act, annotator=annotator_ann)
    assert again.pk == item.pk


def test_two_annotators_never_get_the_same_item(act, annotator_ann, annotator_bob):
    a = services.queue_claim(task=act, annotator=annotator_ann)
    b = services.queue_claim(task=act, annotator=annotator_bob)
    assert a.pk != b.pk and b.utterance.text == "maybe"


def test_an_expired_claim_can_be_taken_by_someone_else(
    act, annotator_ann, annotator_bob
):
    a = services.queue_claim(task=act, annotator=annotator_ann)
    QueueItem.objects.filter(pk=a.pk).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )
    assert services.queue_claim(task=act, annotator=annotator_bob).pk == a.pk
    assert services.queue_renew(item_id=a.pk, annotator=annotator_ann) is False


def test_renew_extends_and_release_gives_back(act, annotator_ann, annotator_bob):
    a = services.queue_claim(task=act, annotator=annotator_ann)
    QueueItem.objects.filter(pk=a.pk).update(
        lease_until=timezone.now() + timedelta(seconds=5)
    )
    assert services.queue_renew(item_id=a.pk, annotator=annotator_ann) is True
    assert QueueItem.objects.get(pk=a.pk).lease_until > timezone.now() + timedelta(
        seconds=200
    )
    services.queue_release(item_id=a.pk, annotator=annotator_ann)
    assert services.queue_claim(task=act, annotator=annotator_bob).pk == a.pk


def test_a_skipped_item_is_not_offered_again_to_that_annotator(
    act, annotator_ann, annotator_bob
):
    a = services.queue_claim(task=act, annotator=annotator_ann)
    services.queue_skip(item_id=a.pk, annotator=annotator_ann)
    assert QueueSkip.objects.filter(item=a, annotator=annotator_ann).exists()
    assert services.queue_claim(task=act, annotator=annotator_ann).pk != a.pk
    assert services.queue_claim(task=act, annotator=annotator_bob).pk == a.pk


def test_submit_stores_the_label_once_and_closes_the_item(act, annotator_ann):
    item = services.queue_claim(task=act, annotator=annotator_ann)
    first = services.label_submit(
        item_id=item.pk, annotator=annotator_ann, label="inform", submission_key=key()
    )
    again = services.label_submit(
        item_id=item.pk, annotator=annotator_ann, label="inform", submission_key=key()
    )
    assert first.pk == again.pk
    assert HumanLabel.objects.filter(utterance=item.utterance).count() == 1
    item.refresh_from_db()
    assert (item.answers, item.open, item.claimed_by) == (1, False, None)
    assert services.queue_claim(task=act, annotator=annotator_ann).pk != item.pk


def test_submit_records_what_the_annotator_was_shown(act, annotator_ann):
    item = QueueItem.objects.get(task=act, utterance__text="go!")
    label = services.label_submit(
        item_id=item.pk,
        annotator=annotator_ann,
        label="directive",
        submission_key=key(2),
    )
    assert label.llm_label.value == "directive" and label.trust == pytest.approx(
        item.trust
    )
    assert label.source == "annotation" and label.annotator_name == "ann"


def test_a_second_answer_from_the_same_annotator_is_refused(act, annotator_ann):
    item = QueueItem.objects.get(task=act, utterance__text="ok")
    services.label_submit(
        item_id=item.pk,
        annotator=annotator_ann,
        label="commissive",
        submission_key=key(1),
    )
    with pytest.raises(services.SubmitError, match="already answered"):
        services.label_submit(
            item_id=item.pk,
            annotator=annotator_ann,
            label="inform",
            submission_key=key(2),
        )
    with pytest.raises(services.SubmitError, match="unknown label"):
        services.label_submit(
            item_id=item.pk,
            annotator=annotator_ann,
            label="greeting",
            submission_key=key(3),
        )


def test_overlap_items_go_to_two_annotators_in_turn(act, annotator_ann, annotator_bob):
    QueueItem.objects.filter(task=act).update(required=2)
    a = services.queue_claim(task=act, annotator=annotator_ann)
    services.label_submit(
        item_id=a.pk, annotator=annotator_ann, label="inform", submission_key="a1"
    )
    a.refresh_from_db()
    assert (a.answers, a.open) == (1, True)
    assert (
        services.queue_claim(task=act, annotator=annotator_ann).pk != a.pk
    )  # not twice to ann
    b = services.queue_claim(task=act, annotator=annotator_bob)
    assert b.pk == a.pk
    services.label_submit(
        item_id=b.pk, annotator=annotator_bob, label="question", submission_key="b1"
    )
    a.refresh_from_db()
    assert (a.answers, a.open) == (2, False)


def test_the_overlap_fraction_is_drawn_per_utterance(project, settings):
    settings.PARLEY_OVERLAP_FRACTION = 0.3
    lines = [
        {"id": f"d{i}", "turns": [{"speaker": "A", "text": "x"}] * 10}
        for i in range(50)
    ]
    services.transcripts_import(
        project=project, stream=io.BytesIO(jsonl(*lines)), name="m.jsonl"
    )
    task = project.tasks.get(name="act")
    services.queue_sync(task=task)
    share = QueueItem.objects.filter(task=task, required=2).count() / 500
    assert 0.22 < share < 0.38


def test_enough_new_human_labels_start_one_retrain(
    act,
    annotator_ann,
    annotator_bob,
    settings,
    django_capture_on_commit_callbacks,
    monkeypatch,
):
    settings.PARLEY_RETRAIN_EVERY = 2
    sent = []
    monkeypatch.setattr("annotate.tasks.train_student.delay", sent.append)
    items = list(QueueItem.objects.filter(task=act).order_by("pk"))
    with django_capture_on_commit_callbacks(execute=True):
        services.label_submit(
            item_id=items[0].pk,
            annotator=annotator_ann,
            label="inform",
            submission_key="k1",
        )
    assert sent == []
    with django_capture_on_commit_callbacks(execute=True):
        services.label_submit(
            item_id=items[1].pk,
            annotator=annotator_ann,
            label="inform",
            submission_key="k2",
        )
        services.label_submit(
            item_id=items[2].pk,
            annotator=annotator_bob,
            label="inform",
            submission_key="k3",
        )
    run = TrainingRun.objects.get(task=act)
    assert sent == [run.pk] and run.status == "queued"


def test_requests_for_a_retrain_while_one_is_active_get_that_one(act):
    first = services.training_run_request(task=act)
    assert services.training_run_request(task=act).pk == first.pk
    assert TrainingRun.objects.filter(task=act).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_on_postgres_never_hand_out_one_item_twice(
    project, django_user_model, settings
):
    if connection.vendor != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's")
    settings.PARLEY_OVERLAP_FRACTION = 0.0
    lines = [
        {"id": f"c{i}", "turns": [{"speaker": "A", "text": f"t{i}"}]} for i in range(40)
    ]
    services.transcripts_import(
        project=project, stream=io.BytesIO(jsonl(*lines)), name="c.jsonl"
    )
    task = project.tasks.get(name="act")
    services.queue_sync(task=task)
    users = [django_user_model.objects.create(username=f"u{i}") for i in range(8)]
    claimed, errors = [], []
    barrier = threading.Barrier(len(users))

    def work(user):
        from django.db import connections

        try:
            barrier.wait()
            for _ in range(5):
                item = services.queue_claim(task=task, annotator=user)
                claimed.append(item.pk)
                services.label_submit(
                    item_id=item.pk,
                    annotator=user,
                    label="inform",
                    submission_key=f"{user.pk}-{item.pk}",
                )
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(claimed) == 40 and len(set(claimed)) == 40
    assert HumanLabel.objects.filter(task=task).count() == 40
