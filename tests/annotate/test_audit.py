"""The audit share of the queue and the diversity rule (docs/active-loop.md)."""

from __future__ import annotations

import io

import pytest

from annotate import dashboards, services
from annotate.models import QueueItem
from annotate.services import queue as queue_service
from tests.conftest import jsonl


def conversation(ext_id, n, confidence=0.6):
    return {
        "id": ext_id,
        "turns": [
            {
                "speaker": "AB"[t % 2],
                "text": f"{ext_id} turn {t}",
                "llm": {"act": {"label": "inform", "confidence": confidence}},
            }
            for t in range(n)
        ],
    }


@pytest.fixture
def pool(project, settings):
    """Twenty utterances over four dialogues, each with an LLM label."""
    settings.PARLEY_OVERLAP_FRACTION = 0.0
    services.transcripts_import(
        project=project,
        stream=io.BytesIO(
            jsonl(*(conversation(f"d{i}", 5, 0.5 + 0.1 * i) for i in range(4)))
        ),
        name="pool.jsonl",
    )
    task = project.tasks.get(name="act")
    services.queue_sync(task=task)
    return task


def test_every_item_gets_its_own_random_key(pool):
    keys = list(QueueItem.objects.filter(task=pool).values_list("audit_key", flat=True))
    assert len(set(keys)) == len(keys) == 20
    assert all(0 <= k < 1 for k in keys)


def test_without_audits_the_queue_serves_by_priority(pool, annotator_ann, settings):
    settings.PARLEY_AUDIT_FRACTION = 0.0
    item = services.queue_claim(task=pool, annotator=annotator_ann)
    lowest = QueueItem.objects.filter(task=pool).order_by("priority", "pk").first()
    assert item.pk == lowest.pk
    item.refresh_from_db()
    assert item.audit is False and item.selection_probability == 1.0


def test_an_audit_draw_is_uniform_over_the_open_pool_and_records_its_probability(
    pool, annotator_ann, annotator_bob, settings
):
    settings.PARLEY_AUDIT_FRACTION = 1.0
    first = services.queue_claim(task=pool, annotator=annotator_ann)
    by_key = list(
        QueueItem.objects.filter(task=pool)
        .order_by("audit_key", "pk")
        .values_list("pk", flat=True)
    )
    assert first.pk == by_key[0]  # the lowest random key, whatever its trust
    first.refresh_from_db()
    assert first.audit is True
    assert first.selection_probability == pytest.approx(1 / 20)
    # the next draw skips the claimed item; one answered leaves 19 open items to draw from
    services.label_submit(
        item_id=first.pk, annotator=annotator_ann, label="inform", submission_key="a"
    )
    second = services.queue_claim(task=pool, annotator=annotator_bob)
    assert second.pk == by_key[1]
    second.refresh_from_db()
    assert second.selection_probability == pytest.approx(1 / 19)


def test_the_audit_share_follows_the_setting(pool, annotator_ann, settings):
    settings.PARLEY_AUDIT_FRACTION = 0.25
    queue_service.audit_rng.seed(7)
    audits = 0
    for _ in range(400):
        item = services.queue_claim(task=pool, annotator=annotator_ann)
        audits += int(item.audit)
        services.queue_release(item_id=item.pk, annotator=annotator_ann)
    assert 70 <= audits <= 130  # 100 expected; binomial sd 8.7


def test_annotators_are_not_told_which_items_are_audits(
    client, pool, annotator_ann, settings
):
    settings.PARLEY_AUDIT_FRACTION = 1.0
    client.force_login(annotator_ann)
    page = client.get("/projects/support/tasks/act/queue/")
    assert page.status_code == 200
    assert QueueItem.objects.filter(claimed_by=annotator_ann, audit=True).exists()
    assert b"audit" not in page.content.lower()


def test_the_diversity_rule_serves_other_dialogues_before_a_fourth_item_of_one(
    pool, annotator_ann, settings
):
    settings.PARLEY_AUDIT_FRACTION = 0.0
    settings.PARLEY_DIVERSITY_CAP = 3
    settings.PARLEY_DIVERSITY_MARGIN = 0.15
    # d0's five items are the least trusted (0.20–0.24); d1's next (0.30–0.34)
    for item in QueueItem.objects.filter(task=pool).select_related(
        "utterance__dialogue"
    ):
        d = int(item.utterance.dialogue.external_id[1])
        item.trust = item.priority = 0.2 + 0.1 * d + 0.01 * item.utterance.position
        item.save()
    assert services.queue_diversify(task=pool) == 8  # the 4th and 5th of each dialogue
    served = []
    for n in range(8):
        item = services.queue_claim(task=pool, annotator=annotator_ann)
        served.append(item.utterance.dialogue.external_id)
        services.label_submit(
            item_id=item.pk,
            annotator=annotator_ann,
            label="inform",
            submission_key=f"k{n}",
        )
    # three of d0, then d1 (trust 0.30 < d0's fourth at 0.23 + 0.15), then d0 again once d1's
    # trust passes it
    assert served[:3] == ["d0"] * 3
    assert served[3:6] == ["d1"] * 3
    assert served[6] == "d0"
    # off: strictly by trust
    settings.PARLEY_DIVERSITY_CAP = 0
    services.queue_diversify(task=pool)
    assert (
        not QueueItem.objects.filter(task=pool, open=True)
        .exclude(priority=models_trust())
        .exists()
    )


def models_trust():
    from django.db.models import F

    return F("trust")


def test_the_dashboard_estimates_from_audit_answers_only(pool, annotator_ann, settings):
    settings.PARLEY_AUDIT_FRACTION = 1.0
    settings.PARLEY_AUDIT_MIN_ANSWERS = 10
    figures = dashboards.audit_figures(task=pool)
    assert figures == {"answers": 0, "needed": 10}
    # 12 audit answers: 3 of them say the LLM was wrong
    for n in range(12):
        item = services.queue_claim(task=pool, annotator=annotator_ann)
        services.label_submit(
            item_id=item.pk,
            annotator=annotator_ann,
            label="question" if n % 4 == 0 else "inform",
            submission_key=f"a{n}",
        )
    # answers served by the queue, not drawn, do not count
    settings.PARLEY_AUDIT_FRACTION = 0.0
    item = services.queue_claim(task=pool, annotator=annotator_ann)
    services.label_submit(
        item_id=item.pk, annotator=annotator_ann, label="question", submission_key="q"
    )
    figures = dashboards.audit_figures(task=pool)
    assert figures["answers"] == 12 and figures["items"] == 7
    # weighted by 1/π: the k-th draw came from 20 - k open items (Hájek)
    drawn_from = [20 - k for k in range(12)]
    wrong = sum(drawn_from[k] for k in (0, 4, 8)) / sum(drawn_from)
    assert figures["llm_error"]["value"] == pytest.approx(wrong)
    low, high = figures["llm_error"]["low"], figures["llm_error"]["high"]
    assert 0.0 <= low < wrong < high <= 1.0
    assert 0 <= figures["wrong_left"]["low"] <= figures["wrong_left"]["value"]
    assert figures["wrong_left"]["value"] <= figures["wrong_left"]["high"] <= 7


def test_the_diversity_rule_also_holds_back_near_duplicates_of_other_dialogues(
    pool, settings
):
    import numpy as np

    settings.PARLEY_DIVERSITY_CAP = 3
    settings.PARLEY_DIVERSITY_MARGIN = 0.15
    items = list(
        QueueItem.objects.filter(task=pool).select_related("utterance").order_by("pk")
    )
    # one item per dialogue in trust order, all near-duplicates of each other: d0..d3's first
    # turns (0.10–0.13), then the rest (0.5+)
    firsts = [i for i in items if i.utterance.position == 0]
    for n, item in enumerate(items):
        item.trust = item.priority = (
            0.10 + 0.01 * firsts.index(item) if item in firsts else 0.5 + 0.001 * n
        )
        item.save()
    same = np.array([1.0, 0.0])
    embeddings = {
        i.utterance_id: same if i in firsts else np.array([0.0, 1.0]) for i in items
    }
    embeddings = {
        k: v + 0.001 * np.random.default_rng(k).normal(size=2)
        for k, v in embeddings.items()
    }
    embeddings = {k: v / np.linalg.norm(v) for k, v in embeddings.items()}
    services.queue_diversify(task=pool, embeddings=embeddings)
    fourth = QueueItem.objects.get(pk=firsts[3].pk)
    assert fourth.priority == pytest.approx(fourth.trust + 0.15)
    # without embeddings only the dialogues count: the four are of four dialogues
    services.queue_diversify(task=pool)
    fourth.refresh_from_db()
    assert fourth.priority == pytest.approx(fourth.trust)
