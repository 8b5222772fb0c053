"""The corpus browser: filters, keyset pages, the dialogue view, re-queueing."""

from __future__ import annotations

import io

import pytest
from django.http import QueryDict

from annotate import services
from annotate.models import HumanLabel, ModelVersion, Prediction, QueueItem
from annotate.selectors import browse
from tests.conftest import jsonl


@pytest.fixture
def act(project, settings):
    """Twelve dialogues of two turns; the LLM says "question" for turn 0 and "inform" for
    turn 1; dialogue d3's metadata says channel: chat."""
    settings.PARLEY_OVERLAP_FRACTION = 0.0
    lines = [
        {
            "id": f"d{i}",
            "metadata": {"channel": "chat" if i == 3 else "phone"},
            "turns": [
                {
                    "speaker": "A",
                    "text": f"where is parcel {i}?",
                    "llm": {"act": {"label": "question", "confidence": 0.9}},
                },
                {
                    "speaker": "B",
                    "text": f"in depot {i}",
                    "llm": {"act": {"label": "inform", "confidence": 0.6}},
                },
            ],
        }
        for i in range(12)
    ]
    services.transcripts_import(
        project=project, stream=io.BytesIO(jsonl(*lines)), name="c.jsonl"
    )
    task = project.tasks.get(name="act")
    services.queue_sync(task=task)
    return task


def page(task, **query):
    q = QueryDict(mutable=True)
    q.update({k: str(v) for k, v in query.items()})
    return browse.corpus_page(task=task, filters=browse.Filters.from_query(q), size=5)


def texts(result) -> list[str]:
    return [r["text"] for r in result["rows"]]


def item(task, text: str) -> QueueItem:
    return QueueItem.objects.get(task=task, utterance__text=text)


def test_keyset_pages_walk_every_utterance_once(act):
    seen, after = [], 0
    while True:
        result = page(act, after=after) if after else page(act)
        seen += texts(result)
        if result["next_after"] is None:
            break
        after = result["next_after"]
    assert len(seen) == 24 == len(set(seen))


def test_search_and_filters(act, annotator_ann, annotator_bob):
    assert texts(page(act, q="parcel 1")) == [
        "where is parcel 1?",
        "where is parcel 10?",
        "where is parcel 11?",
    ]
    assert texts(page(act, dialogue="d1", llm="inform")) == [
        "in depot 1",
        "in depot 10",
        "in depot 11",
    ]
    assert texts(page(act, metadata="chat")) == ["where is parcel 3?", "in depot 3"]
    assert page(act, llm="nonsense")["rows"] == []
    # a human label that differs from the LLM's, and two annotators who differ
    for user, label in ((annotator_ann, "directive"), (annotator_bob, "inform")):
        QueueItem.objects.filter(pk=item(act, "in depot 5").pk).update(
            required=2, open=True
        )
        services.label_submit(
            item_id=item(act, "in depot 5").pk,
            annotator=user,
            label=label,
            submission_key=f"{user}",
        )
    assert texts(page(act, human="directive")) == ["in depot 5"]
    assert texts(page(act, disagree="llm-human")) == ["in depot 5"]
    assert texts(page(act, disagree="annotators")) == ["in depot 5"]
    services.flag_create(
        item_id=item(act, "in depot 7").pk, annotator=annotator_ann, comment="?"
    )
    assert texts(page(act, flagged=1)) == ["in depot 7"]
    cut = sorted(QueueItem.objects.filter(task=act).values_list("trust", flat=True))[3]
    low = page(act, trust_max=cut)["rows"]
    assert low and all(r["trust"] <= cut for r in low)
    assert all(r["trust"] >= cut for r in page(act, trust_min=cut)["rows"])


def test_student_filters_read_the_active_version(act):
    version = ModelVersion.objects.create(
        task=act, version=1, artifact_path="/x", is_active=True
    )
    labels = dict(act.labels.values_list("value", "pk"))
    for qi in QueueItem.objects.filter(task=act).select_related("utterance"):
        Prediction.objects.create(
            utterance=qi.utterance,
            task=act,
            model_version=version,
            probabilities=[0.25] * 4,
            label_id=labels[
                "directive" if qi.utterance.text == "in depot 2" else "inform"
            ],
            trust=0.5,
        )
    assert texts(page(act, student="directive")) == ["in depot 2"]
    # the student says inform where the LLM says question, on every turn 0
    assert len(page(act, disagree="llm-student")["rows"]) == 5
    assert "in depot 2" in texts(page(act, disagree="llm-student", dialogue="d2"))


def test_the_dialogue_view_and_requeue(
    client, act, lead_lena, annotator_ann, annotator_bob
):
    target = item(act, "in depot 4")
    answer = services.label_submit(
        item_id=target.pk,
        annotator=annotator_ann,
        label="directive",
        submission_key="a",
    )
    services.label_change(
        label_id=answer.pk, annotator=annotator_ann, label="commissive"
    )
    client.force_login(lead_lena)
    dialogue_id = target.utterance.dialogue_id
    html = client.get(f"/projects/support/dialogues/{dialogue_id}/").content.decode()
    assert "in depot 4" in html and "<s>ann: directive</s>" in html
    assert "(changed from directive)" in html and "agreement" in html
    corpus = client.get(
        "/projects/support/tasks/act/corpus/?q=depot+4"
    ).content.decode()
    assert f"/projects/support/dialogues/{dialogue_id}/" in corpus
    response = client.post(
        f"/projects/support/tasks/act/corpus/{target.utterance_id}/requeue"
    )
    assert response.status_code == 302
    target.refresh_from_db()
    assert target.open and target.required == 2 and target.priority == 0.0
    # the next annotator who has not answered it gets it first
    assert services.queue_claim(task=act, annotator=annotator_bob).pk == target.pk
    assert HumanLabel.objects.filter(utterance_id=target.utterance_id).count() == 2


def test_only_leads_and_admins_browse(client, act, annotator_ann):
    client.force_login(annotator_ann)
    assert client.get("/projects/support/tasks/act/corpus/").status_code == 403
    dialogue_id = item(act, "in depot 4").utterance.dialogue_id
    assert client.get(f"/projects/support/dialogues/{dialogue_id}/").status_code == 403


def test_a_rare_filter_answers_what_it_found_in_its_time_and_continues(
    act, monkeypatch
):
    monkeypatch.setattr(browse, "FIRST_SPAN", 1)
    monkeypatch.setattr(browse, "MAX_SPAN", 1)
    monkeypatch.setattr(browse, "SCAN_BUDGET_S", 0.0)  # one id range per page
    found, after, pages = [], 0, 0
    while True:
        result = (
            page(act, q="parcel 11", after=after) if after else page(act, q="parcel 11")
        )
        pages += 1
        found += texts(result)
        if result["next_after"] is None:
            break
        assert result["partial"]
        after = result["next_after"]
    assert found == ["where is parcel 11?"] and pages > 2
