"""Queue items are written by the import itself, in its transaction, at a cost that grows
with the file and not with the project."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotate.models import QueueItem
from annotate.transcripts import TranscriptError
from tests.conftest import dialogue, jsonl


def test_an_import_commits_with_its_queue_items_and_their_trust(
    project, import_bytes, settings
):
    settings.PARLEY_OVERLAP_FRACTION = 0.0  # one answer per item
    import_bytes(
        jsonl(
            dialogue(
                "d1", n_turns=2, llm={"act": {"label": "inform", "confidence": 0.8}}
            ),
            dialogue("d2", n_turns=1, human={"act": "question"}),
        )
    )
    items = QueueItem.objects.filter(task__name="act").order_by("utterance_id")
    assert [(i.open, i.answers) for i in items] == [(True, 0), (True, 0), (False, 1)]
    assert items[0].trust == pytest.approx(0.8) and items[2].trust == 0.0
    assert QueueItem.objects.filter(task__name="sentiment").count() == 3


def test_a_failed_import_leaves_no_queue_item(project, import_bytes):
    with pytest.raises(TranscriptError):
        import_bytes(jsonl(dialogue("d1")) + b"not json\n")
    assert not QueueItem.objects.exists()


def test_a_re_import_with_update_queues_only_the_new_turns(project, import_bytes):
    import_bytes(jsonl(dialogue("d1", n_turns=2)))
    import_bytes(jsonl(dialogue("d1", n_turns=3, llm={"act": "inform"})), update=True)
    act = QueueItem.objects.filter(task__name="act").order_by("utterance__position")
    assert act.count() == 3
    assert all(i.trust == pytest.approx(1.0) for i in act)  # the new LLM labels count


def _queries_to_import_one_dialogue(import_bytes, name):
    with CaptureQueriesContext(connection) as queries:
        import_bytes(jsonl(dialogue(name, n_turns=1)), name=f"{name}.jsonl")
    return len(queries)


def test_the_cost_of_an_import_does_not_grow_with_the_project(project, import_bytes):
    small = _queries_to_import_one_dialogue(import_bytes, "first")
    import_bytes(jsonl(*[dialogue(f"bulk{i}", n_turns=5) for i in range(400)]))
    large = _queries_to_import_one_dialogue(import_bytes, "last")
    assert large == small  # no statement per existing utterance or item
    assert QueueItem.objects.filter(task__name="act").count() == 2002


def test_a_task_added_later_gets_an_item_for_every_utterance(project, import_bytes):
    from annotate import services

    import_bytes(jsonl(dialogue("d1", n_turns=3)))
    task = services.label_task_create(project=project, name="intent", labels=["a", "b"])
    assert QueueItem.objects.filter(task=task).count() == 3
