"""A very long dialogue: the queue page shows a window of it, and the rest on demand."""

from __future__ import annotations

import pytest

from annotate.models import QueueItem
from tests.conftest import dialogue, jsonl

QUEUE = "/projects/support/tasks/act/queue/"


@pytest.fixture
def long_call(project, import_bytes, settings):
    settings.PARLEY_OVERLAP_FRACTION = 0.0
    settings.PARLEY_QUEUE_CONTEXT_BEFORE, settings.PARLEY_QUEUE_CONTEXT_AFTER = 20, 5
    import_bytes(jsonl(dialogue("call", n_turns=1500)))
    act = project.tasks.get(name="act")
    # The middle of the call first.
    QueueItem.objects.filter(task=act).update(trust=0.9, priority=0.9)
    QueueItem.objects.filter(task=act, utterance__position=700).update(
        trust=0.1, priority=0.1
    )
    QueueItem.objects.filter(task=act, utterance__position=701).update(
        trust=0.2, priority=0.2
    )
    return act


def test_the_queue_page_shows_a_window_of_turns_around_the_utterance(
    client, long_call, annotator_ann
):
    client.force_login(annotator_ann)
    html = client.get(QUEUE).content.decode()
    assert "utterance 700 of call" in html and "utterance 680 of call" in html
    assert "utterance 679 of call" not in html and "utterance 900 of call" not in html
    assert "Show the 680 earlier turns" in html and "Show the 794 later turns" in html
    assert len(html) < 60_000  # two items of 26 turns, not two of 1,500


def test_the_whole_dialogue_comes_on_demand_as_a_fragment_or_a_page(
    client, long_call, annotator_ann
):
    client.force_login(annotator_ann)
    item = QueueItem.objects.get(task=long_call, utterance__position=700)
    url = f"{QUEUE}{item.pk}/dialogue"
    fragment = client.get(url, headers={"X-Parley-Fragment": "1"}).content.decode()
    assert fragment.count('class="turn') == 1500 and "<html" not in fragment
    page = client.get(url).content.decode()
    assert "<html" in page and "Back to the queue" in page


def test_the_dialogue_of_another_projects_item_is_a_404(client, long_call, admin_alice):
    from annotate import services

    other = services.project_create(name="O", slug="o", tasks={"act": ["a", "b"]})
    client.force_login(admin_alice)
    item = QueueItem.objects.filter(task=long_call).first()
    assert (
        client.get(f"/projects/o/tasks/act/queue/{item.pk}/dialogue").status_code == 404
    )
    assert other.pk
