"""Why an item is in front of the queue: the reasons in words, and who may read them."""

from __future__ import annotations

import io

import pytest

from annotate import selectors, services
from annotate.models import QueueItem
from tests.conftest import jsonl


@pytest.fixture
def act(project):
    """Ten dialogues; the LLM says "commissive" for every second turn and is wrong on most;
    the first turn's two prompts disagree."""
    lines = []
    for d in range(10):
        turns = []
        for t in range(2):
            label = "question" if t == 0 else "commissive"
            p2 = "inform" if t == 0 and d == 0 else label
            turns.append(
                {
                    "speaker": "AB"[t],
                    "text": f"turn {t} of call {d}",
                    "llm": {
                        "act": [
                            {"prompt": "P1", "label": label, "confidence": 0.9},
                            {"prompt": "P2", "label": p2, "confidence": 0.6},
                        ]
                    },
                }
            )
        lines.append(
            {"id": f"call-{d}", "metadata": {"channel": "phone"}, "turns": turns}
        )
    services.transcripts_import(
        project=project, stream=io.BytesIO(jsonl(*lines)), name="calls.jsonl"
    )
    task = project.tasks.get(name="act")
    services.queue_sync(task=task)
    return task


def item_of(task, dialogue: int, position: int, prefix: str = "call") -> QueueItem:
    return QueueItem.objects.select_related(
        "task", "utterance__dialogue", "trust_version"
    ).get(
        task=task,
        utterance__dialogue__external_id=f"{prefix}-{dialogue}",
        utterance__position=position,
    )


def answer(
    task, annotator, dialogue: int, position: int, label: str, prefix: str = "call"
) -> None:
    services.label_submit(
        item_id=item_of(task, dialogue, position, prefix).pk,
        annotator=annotator,
        label=label,
        submission_key=f"{dialogue}-{position}",
    )


def test_the_reasons_name_the_disagreeing_prompts_and_the_llms_weak_class(
    act, annotator_ann
):
    for d in range(1, 7):  # six "commissive" checked: five were directives
        answer(act, annotator_ann, d, 1, "directive" if d < 6 else "commissive")
    why = selectors.item_reasons(item=item_of(act, 0, 0))
    assert (
        "The prompts disagree: P1 says “question”, P2 says “inform”." in why["reasons"]
    )
    assert why["metadata"] == {"channel": "phone"} and 0 <= why["trust"] <= 1
    assert not why["calibrated"]
    why = selectors.item_reasons(item=item_of(act, 8, 1))
    assert (
        "The LLM is wrong on 83 % of its “commissive” labels that annotators checked "
        "(5 of 6)." in why["reasons"]
    )


def test_with_the_suggestion_hidden_no_reason_names_the_llms_label(act, annotator_ann):
    for d in range(1, 7):
        answer(act, annotator_ann, d, 1, "directive")
    act.hide_suggestion = True
    act.save()
    text = " ".join(
        selectors.item_reasons(item=item_of(act, 0, 0))["reasons"]
        + selectors.item_reasons(item=item_of(act, 8, 1))["reasons"]
    )
    assert "prompts disagree" in text and "wrong on 100 %" in text
    assert "question" not in text and "commissive" not in text and "inform" not in text


def test_an_audit_item_reads_like_any_other(act):
    item = item_of(act, 3, 0)
    before = selectors.item_reasons(item=item)
    QueueItem.objects.filter(pk=item.pk).update(audit=True, selection_probability=0.05)
    after = selectors.item_reasons(item=item_of(act, 3, 0))
    assert after == before and "audit" not in " ".join(after["reasons"]).lower()


def test_the_page_and_fragment_are_for_the_projects_members(
    client, act, annotator_ann, outsider_olga
):
    item = item_of(act, 0, 0)
    url = f"/projects/support/tasks/act/queue/{item.pk}/why"
    client.force_login(annotator_ann)
    fragment = client.get(url, HTTP_X_PARLEY_FRAGMENT="1")
    assert fragment.status_code == 200 and b"<html" not in fragment.content
    assert "The prompts disagree" in fragment.content.decode()
    page = client.get(url)
    assert page.status_code == 200 and b"Why this item" in page.content
    other = QueueItem.objects.exclude(task=act).first()
    assert (
        client.get(f"/projects/support/tasks/act/queue/{other.pk}/why").status_code
        == 404
    )
    client.force_login(outsider_olga)
    assert client.get(url).status_code in (403, 404)


@pytest.fixture
def requests(project):
    """Ten dialogues of a request, its reply, a question, its answer; the LLM calls both
    replies "inform". Annotators find the reply to the request is a commitment."""
    lines = []
    for d in range(10):
        turns = [
            ("Could you send the file?", "directive"),
            ("I will send it tonight.", "inform"),
            ("Where do you live?", "question"),
            ("In Leeds.", "inform"),
        ]
        lines.append(
            {
                "id": f"req-{d}",
                "turns": [
                    {
                        "speaker": "AB"[t % 2],
                        "text": text,
                        "llm": {
                            "act": [{"prompt": "P1", "label": label, "confidence": 0.9}]
                        },
                    }
                    for t, (text, label) in enumerate(turns)
                ],
            }
        )
    services.transcripts_import(
        project=project, stream=io.BytesIO(jsonl(*lines)), name="requests.jsonl"
    )
    task = project.tasks.get(name="act")
    services.queue_sync(task=task)
    return task


def test_the_reasons_name_the_dialogue_context_the_llm_gets_wrong(
    requests, annotator_ann
):
    for d in range(6):  # six replies to a request checked: five were commitments
        for position, label in (
            (1, "commissive" if d < 5 else "inform"),
            (3, "inform"),
        ):
            answer(requests, annotator_ann, d, position, label, "req")
    reply = selectors.item_reasons(item=item_of(requests, 8, 1, "req"))["reasons"]
    # "inform" overall: 5 wrong of 12; after a "directive": 5 of 6.
    assert (
        "The LLM is wrong on 42 % of its “inform” labels that annotators checked "
        "(5 of 12)." in reply
    )
    assert (
        "After a turn the LLM labelled “directive”, the LLM is wrong on 83 % of its "
        "“inform” labels that annotators checked (5 of 6)." in reply
    )
    # After a question the LLM's "inform" is right: no context line.
    answer_ = selectors.item_reasons(item=item_of(requests, 8, 3, "req"))["reasons"]
    assert not any(r.startswith("After a turn") for r in answer_)
    requests.hide_suggestion = True
    requests.save()
    hidden = " ".join(
        selectors.item_reasons(item=item_of(requests, 8, 1, "req"))["reasons"]
    )
    assert "83 %" in hidden
    assert "directive" not in hidden and "inform" not in hidden
