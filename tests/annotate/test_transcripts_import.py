"""transcripts_import: every accepted shape, every malformed file, idempotent re-import."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from django.utils import timezone

from annotate.models import Dialogue, HumanLabel, LlmLabel, SoftLabel, Utterance
from annotate.transcripts import TranscriptError
from tests.conftest import dialogue, jsonl


def _llm(utterance: Utterance, task: str) -> list[LlmLabel]:
    return list(
        LlmLabel.objects.filter(utterance=utterance, task__name=task)
        .select_related("label")
        .order_by("prompt")
    )


def _counts() -> tuple[int, ...]:
    return tuple(
        m.objects.count()
        for m in (Dialogue, Utterance, LlmLabel, SoftLabel, HumanLabel)
    )


def test_it_imports_dialogues_with_turns_in_order(import_bytes):
    obj = {
        "id": "d1",
        "metadata": {"channel": "phone"},
        "topic": "billing",
        "turns": [
            {
                "position": 1,
                "speaker": "agent",
                "text": "How can I help?",
                "timestamp": "2026-01-05T10:00:03+01:00",
            },
            {"position": 0, "speaker": "customer", "text": "Hello"},
        ],
    }
    result = import_bytes(jsonl(obj))
    assert result.as_dict() == {
        "created": 1,
        "updated": 0,
        "skipped": 0,
        "utterances": 2,
    }
    d = Dialogue.objects.get(external_id="d1")
    assert d.metadata == {"channel": "phone", "topic": "billing"}
    turns = list(d.utterances.order_by("position"))
    assert [(t.position, t.speaker, t.text) for t in turns] == [
        (0, "customer", "Hello"),
        (1, "agent", "How can I help?"),
    ]
    assert turns[1].timestamp.isoformat() == "2026-01-05T09:00:03+00:00"


def test_a_bare_label_is_a_certain_answer(import_bytes):
    import_bytes(jsonl(dialogue(llm={"act": "question"})))
    (answer,) = _llm(Utterance.objects.first(), "act")
    assert (answer.prompt, answer.label.value, answer.confidence) == (
        "",
        "question",
        None,
    )
    assert answer.distribution == {
        "inform": 0,
        "question": 1,
        "directive": 0,
        "commissive": 0,
    }


def test_a_label_with_confidence_spreads_the_rest_uniformly(import_bytes):
    import_bytes(
        jsonl(dialogue(llm={"sentiment": {"label": "negative", "confidence": 0.7}}))
    )
    (answer,) = _llm(Utterance.objects.first(), "sentiment")
    assert answer.confidence == 0.7
    assert answer.distribution == pytest.approx(
        {"positive": 0.15, "negative": 0.7, "neutral": 0.15}
    )


def test_a_distribution_is_normalised_and_gives_its_argmax(import_bytes):
    import_bytes(
        jsonl(
            dialogue(llm={"sentiment": {"distribution": {"positive": 2, "neutral": 6}}})
        )
    )
    (answer,) = _llm(Utterance.objects.first(), "sentiment")
    assert answer.label.value == "neutral"
    assert answer.distribution == {"positive": 0.25, "negative": 0.0, "neutral": 0.75}


def test_per_prompt_answers_make_a_soft_label_with_agreement(import_bytes):
    answers = [
        {"prompt": "P1", "label": "question"},
        {"prompt": "P2", "label": "question"},
        {
            "prompt": "P3",
            "model": "m2",
            "distribution": {"question": 0.5, "directive": 0.5},
        },
    ]
    import_bytes(jsonl(dialogue(n_turns=1, llm={"act": answers})))
    utterance = Utterance.objects.get()
    assert [(a.prompt, a.model) for a in _llm(utterance, "act")] == [
        ("P1", ""),
        ("P2", ""),
        ("P3", "m2"),
    ]
    soft = SoftLabel.objects.get(utterance=utterance, task__name="act")
    # mean = (0, 2.5/3, 0.5/3, 0); TV of each answer from it: 1/6, 1/6, 1/3 → agreement 7/9
    assert soft.distribution == pytest.approx(
        {"inform": 0.0, "question": 5 / 6, "directive": 1 / 6, "commissive": 0.0}
    )
    assert (soft.label.value, soft.n_sources) == ("question", 3)
    assert soft.confidence == pytest.approx(5 / 6)
    assert soft.agreement == pytest.approx(7 / 9)


def test_human_labels_in_every_shape_are_kept_with_their_annotator(
    import_bytes, annotator_ann
):
    human = {
        "act": "inform",
        "sentiment": [
            {
                "label": "neutral",
                "annotator": "ann",
                "created_at": "2026-02-01T12:00:00Z",
            },
            {"label": "negative", "annotator": "external-42"},
        ],
    }
    import_bytes(jsonl(dialogue(n_turns=1, human=human)))
    rows = list(
        HumanLabel.objects.order_by("task__name", "created_at").select_related(
            "label", "task"
        )
    )
    assert [
        (r.task.name, r.label.value, r.annotator, r.annotator_name, r.source)
        for r in rows
    ] == [
        ("act", "inform", None, "", "import"),
        ("sentiment", "neutral", annotator_ann, "ann", "import"),
        ("sentiment", "negative", None, "external-42", "import"),
    ]
    assert rows[1].created_at.isoformat() == "2026-02-01T12:00:00+00:00"


def test_csv_rows_become_dialogues_with_per_prompt_labels(import_bytes):
    data = (
        b"dialogue_id,position,speaker,text,act_llm_label@P1,act_llm_confidence@P1,"
        b"act_llm_label@P2,sentiment_llm_label,sentiment_human_label\n"
        b'c1,0,A,"Hello, there",inform,0.8,question,neutral,neutral\n'
        b"c1,1,B,Hi!,inform,,inform,positive,\n"
        b"c2,0,A,Bye,directive,0.6,,,\n"
    )
    result = import_bytes(data, name="calls.csv")
    assert (result.created, result.utterances) == (2, 3)
    first = Utterance.objects.get(dialogue__external_id="c1", position=0)
    assert first.text == "Hello, there"
    assert [(a.prompt, a.label.value, a.confidence) for a in _llm(first, "act")] == [
        ("P1", "inform", 0.8),
        ("P2", "question", None),
    ]
    assert first.human_labels.get().label.value == "neutral"
    assert _llm(Utterance.objects.get(dialogue__external_id="c2"), "sentiment") == []


def test_reimporting_known_dialogues_skips_them(import_bytes):
    data = jsonl(dialogue("d1", llm={"act": "inform"}), dialogue("d2"))
    import_bytes(data)
    before = _counts()
    result = import_bytes(jsonl(dialogue("d1"), dialogue("d2"), dialogue("d3")))
    assert (result.created, result.updated, result.skipped) == (1, 0, 2)
    assert _counts()[0] == before[0] + 1


def test_update_replaces_text_and_llm_labels_and_only_adds_human_labels(
    import_bytes, annotator_ann
):
    first = dialogue(
        "d1",
        n_turns=2,
        llm={"act": [{"prompt": "P1", "label": "inform"}]},
        human={"act": {"label": "inform", "annotator": "ann"}},
    )
    import_bytes(jsonl(first))
    utterance = Utterance.objects.get(position=0)
    HumanLabel.objects.create(
        utterance=utterance,
        task=utterance.llm_labels.get().task,
        label=utterance.llm_labels.get().label,
        annotator=annotator_ann,
        created_at=timezone.now(),
    )
    second = dialogue(
        "d1",
        n_turns=3,
        llm={"act": [{"prompt": "P2", "label": "question"}]},
        human={"act": {"label": "inform", "annotator": "ann"}},
    )
    second["turns"][0]["text"] = "edited"
    result = import_bytes(jsonl(second), update=True)
    assert (result.created, result.updated, result.skipped, result.utterances) == (
        0,
        1,
        0,
        3,
    )
    assert Utterance.objects.get(position=0).text == "edited"
    assert Utterance.objects.count() == 3
    assert [
        (a.prompt, a.label.value)
        for a in _llm(Utterance.objects.get(position=0), "act")
    ] == [("P2", "question")]
    assert SoftLabel.objects.get(utterance__position=0).label.value == "question"
    # two imported rows for turns 0-1 (the same answer is not added twice), one for turn 2,
    # and the annotation made in between
    assert HumanLabel.objects.filter(source="import").count() == 3
    assert HumanLabel.objects.filter(source="annotation").count() == 1
    # a second identical update changes nothing
    before = _counts()
    import_bytes(jsonl(second), update=True)
    assert _counts() == before


def test_a_bad_line_late_in_a_large_file_rolls_back_every_chunk(import_bytes):
    import_bytes(jsonl(dialogue("existing")))
    before = _counts()
    good = [dialogue(f"g{i}", n_turns=5, llm={"act": "inform"}) for i in range(50)]
    bad = dialogue("bad", llm={"act": "chitchat"})
    with pytest.raises(TranscriptError) as info:
        import_bytes(jsonl(*good, bad), chunk_utterances=20)
    assert (info.value.line, info.value.field) == (51, "turns[0].llm.act")
    assert _counts() == before


def test_progress_is_reported_in_bytes(import_bytes):
    seen: list[tuple[int, int]] = []
    data = jsonl(*[dialogue(f"d{i}", n_turns=4) for i in range(30)])
    import_bytes(
        data,
        chunk_utterances=40,
        on_progress=lambda done, total: seen.append((done, total)),
    )
    assert seen[-1] == (len(data), len(data))
    assert len(seen) >= 3 and all(
        a[0] <= b[0] for a, b in zip(seen, seen[1:], strict=False)
    )


LONG = "x" * 2000

MALFORMED: list[tuple[str, str, bytes, int | None, str, str]] = [
    # (case, file name, content, line, field, message fragment)
    (
        "invalid json",
        "f.jsonl",
        jsonl(dialogue()) + b'{"id": "d9", "turns": [\n',
        2,
        "",
        "invalid JSON",
    ),
    ("not an object", "f.jsonl", b"[1, 2]\n", 1, "", "expected a JSON object"),
    (
        "non-utf8 bytes",
        "f.jsonl",
        jsonl(dialogue()) + '{"id": "é"}\n'.encode("latin-1"),
        2,
        "",
        "not valid UTF-8",
    ),
    ("utf-16", "f.jsonl", '{"id": "x"}\n'.encode("utf-16"), 1, "", "UTF-16"),
    (
        "missing id",
        "f.jsonl",
        b'{"turns": [{"speaker": "A", "text": "hi"}]}\n',
        1,
        "id",
        "missing",
    ),
    ("missing turns", "f.jsonl", b'{"id": "d1"}\n', 1, "turns", "missing"),
    ("no turns", "f.jsonl", b'{"id": "d1", "turns": []}\n', 1, "turns", "non-empty"),
    (
        "missing text",
        "f.jsonl",
        b'{"id": "d1", "turns": [{"speaker": "A"}]}\n',
        1,
        "turns[0].text",
        "missing",
    ),
    (
        "missing speaker",
        "f.jsonl",
        b'{"id": "d1", "turns": [{"text": "hi"}]}\n',
        1,
        "turns[0].speaker",
        "missing",
    ),
    (
        "unknown turn key",
        "f.jsonl",
        b'{"id": "d1", "turns": [{"speaker": "A", "txt": "hi"}]}\n',
        1,
        "turns[0].txt",
        "unknown key",
    ),
    (
        "unknown label",
        "f.jsonl",
        jsonl(dialogue(llm={"act": "chitchat"})),
        1,
        "turns[0].llm.act",
        "unknown label 'chitchat'",
    ),
    (
        "unknown human label",
        "f.jsonl",
        jsonl(dialogue(human={"sentiment": "angry"})),
        1,
        "turns[0].human.sentiment",
        "unknown label",
    ),
    (
        "unknown task",
        "f.jsonl",
        jsonl(dialogue(llm={"topic": "x"})),
        1,
        "turns[0].llm.topic",
        "unknown task",
    ),
    (
        "bad confidence",
        "f.jsonl",
        jsonl(dialogue(llm={"act": {"label": "inform", "confidence": 1.5}})),
        1,
        "turns[0].llm.act.confidence",
        "[0, 1]",
    ),
    (
        "bad distribution",
        "f.jsonl",
        jsonl(dialogue(llm={"act": {"distribution": {"inform": -1}}})),
        1,
        "turns[0].llm.act.distribution.inform",
        "non-negative",
    ),
    (
        "same prompt twice",
        "f.jsonl",
        jsonl(
            dialogue(
                llm={
                    "act": [
                        {"prompt": "P1", "label": "inform"},
                        {"prompt": "P1", "label": "question"},
                    ]
                }
            )
        ),
        1,
        "turns[0].llm.act",
        "same prompt",
    ),
    (
        "bad timestamp",
        "f.jsonl",
        jsonl(dialogue(timestamp="yesterday")),
        1,
        "turns[0].timestamp",
        "ISO 8601",
    ),
    (
        "duplicate position",
        "f.jsonl",
        b'{"id": "d1", "turns": [{"position": 0, "speaker": "A", "text": "a"}, {"position": 0, "speaker": "B", "text": "b"}]}\n',
        1,
        "turns[1].position",
        "duplicate position 0",
    ),
    (
        "missing position",
        "f.jsonl",
        b'{"id": "d1", "turns": [{"position": 0, "speaker": "A", "text": "a"}, {"position": 2, "speaker": "B", "text": "b"}]}\n',
        1,
        "turns",
        "position 1 is missing",
    ),
    (
        "position on some turns only",
        "f.jsonl",
        b'{"id": "d1", "turns": [{"position": 0, "speaker": "A", "text": "a"}, {"speaker": "B", "text": "b"}]}\n',
        1,
        "turns[1].position",
        "missing",
    ),
    (
        "duplicate dialogue id",
        "f.jsonl",
        jsonl(dialogue("d1"), dialogue("d2"), dialogue("d1")),
        3,
        "id",
        "already on line 1",
    ),
    ("empty file", "f.jsonl", b"", None, "", "empty"),
    ("blank lines only", "f.jsonl", b"\n  \n", None, "", "empty"),
    (
        "oversized line",
        "f.jsonl",
        jsonl(dialogue()) + jsonl(dialogue("big", text=LONG))[:-1] + b"\n",
        2,
        "",
        "longer than the limit",
    ),
    (
        "csv missing column",
        "f.csv",
        b"dialogue_id,position,text\nd1,0,hi\n",
        1,
        "speaker",
        "missing column",
    ),
    (
        "csv unknown column",
        "f.csv",
        b"dialogue_id,position,speaker,text,mood\nd1,0,A,hi,ok\n",
        1,
        "mood",
        "unknown column",
    ),
    (
        "csv unknown task column",
        "f.csv",
        b"dialogue_id,position,speaker,text,topic_llm_label\nd1,0,A,hi,x\n",
        1,
        "topic_llm_label",
        "unknown task",
    ),
    (
        "csv duplicate column",
        "f.csv",
        b"dialogue_id,position,speaker,text,text\nd1,0,A,hi,hi\n",
        1,
        "text",
        "duplicate column",
    ),
    (
        "csv confidence without label column",
        "f.csv",
        b"dialogue_id,position,speaker,text,act_llm_confidence\nd1,0,A,hi,0.5\n",
        1,
        "act_llm_confidence",
        "without its label",
    ),
    (
        "csv bad position",
        "f.csv",
        b"dialogue_id,position,speaker,text\nd1,zero,A,hi\n",
        2,
        "position",
        "integer",
    ),
    (
        "csv short row",
        "f.csv",
        b"dialogue_id,position,speaker,text\nd1,0,A\n",
        2,
        "",
        "expected 4 cells",
    ),
    (
        "csv unknown label",
        "f.csv",
        b"dialogue_id,position,speaker,text,act_llm_label\nd1,0,A,hi,inform\nd1,1,B,yo,chat\n",
        3,
        "act_llm_label",
        "unknown label",
    ),
    (
        "csv bad confidence",
        "f.csv",
        b"dialogue_id,position,speaker,text,act_llm_label,act_llm_confidence\nd1,0,A,hi,inform,high\n",
        2,
        "act_llm_confidence",
        "expected a number",
    ),
    (
        "csv duplicate position",
        "f.csv",
        b"dialogue_id,position,speaker,text\nd1,0,A,hi\nd1,0,B,yo\n",
        2,
        "position[1].position",
        "duplicate position 0",
    ),
    (
        "csv missing position",
        "f.csv",
        b"dialogue_id,position,speaker,text\nd1,0,A,hi\nd1,2,B,yo\n",
        2,
        "position",
        "position 1 is missing",
    ),
    (
        "csv rows not contiguous",
        "f.csv",
        b"dialogue_id,position,speaker,text\nd1,0,A,hi\nd2,0,A,x\nd1,1,B,yo\n",
        4,
        "dialogue_id",
        "contiguous",
    ),
    (
        "csv header only",
        "f.csv",
        b"dialogue_id,position,speaker,text\n",
        None,
        "",
        "empty",
    ),
    ("csv empty", "f.csv", b"", None, "", "empty"),
    (
        "csv non-utf8",
        "f.csv",
        b"dialogue_id,position,speaker,text\nd1,0,A,caf\xe9\n",
        2,
        "",
        "not valid UTF-8",
    ),
    ("unknown extension", "f.txt", jsonl(dialogue()), None, "", "unknown file type"),
    (
        "nul in text",
        "f.jsonl",
        jsonl(dialogue())
        + b'{"id": "d2", "turns": [{"speaker": "A", "text": "a\\u0000b"}]}\n',
        2,
        "turns[0].text",
        "NUL character",
    ),
    (
        "nul in metadata",
        "f.jsonl",
        b'{"id": "d2", "metadata": {"note": ["ok", "\\u0000"]}, "turns": [{"speaker": "A", "text": "a"}]}\n',
        1,
        "metadata.note[1]",
        "NUL character",
    ),
    (
        "csv nul",
        "f.csv",
        b"dialogue_id,position,speaker,text\nd1,0,A,a\x00b\n",
        2,
        "text",
        "NUL character",
    ),
    (
        "utf-16 without bom",
        "f.jsonl",
        jsonl(dialogue()).decode().encode("utf-16-le"),
        1,
        "",
        "UTF-16 without a byte-order mark",
    ),
    (
        "invalid json far into the line",
        "f.jsonl",
        b'{"id": "d2", "turns": [{"speaker": "A", "text": "'
        + b"a" * 80
        + b'"}], oops}\n',
        1,
        "",
        "at column 135",
    ),
    (
        "too many turns",
        "f.jsonl",
        jsonl(dialogue("d2", n_turns=6)),
        1,
        "turns",
        "more than the limit of 5 turns",
    ),
    (
        "csv too many turns",
        "f.csv",
        b"dialogue_id,position,speaker,text\n"
        + b"".join(b"d1,%d,A,hi\n" % i for i in range(6)),
        7,
        "dialogue_id",
        "more than the limit of 5 turns",
    ),
    (
        "utterance too long",
        "f.jsonl",
        jsonl({"id": "d2", "turns": [{"speaker": "A", "text": "y" * 301}]}),
        1,
        "turns[0].text",
        "301 characters, more than the limit of 300",
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "line", "field", "fragment"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_a_malformed_file_names_line_and_field_and_imports_nothing(
    import_bytes,
    settings,
    name: str,
    content: bytes,
    line: int | None,
    field: str,
    fragment: str,
):
    settings.PARLEY_IMPORT_MAX_LINE_KB = 1
    settings.PARLEY_IMPORT_MAX_TURNS = 5
    settings.PARLEY_IMPORT_MAX_UTTERANCE_CHARS = 300
    import_bytes(
        jsonl(dialogue("existing", llm={"act": "inform"}, human={"act": "inform"}))
    )
    before = _counts()
    with pytest.raises(TranscriptError) as info:
        import_bytes(content, name=name)
    error: TranscriptError = info.value
    assert (error.file, error.line, error.field) == (name, line, field)
    assert fragment in error.message
    assert str(error).startswith(name)
    assert _counts() == before


def test_a_file_over_the_size_limit_is_refused(import_bytes, settings):
    settings.PARLEY_IMPORT_MAX_FILE_MB = 1
    content = jsonl(*[dialogue(f"d{i}", text="y" * 900) for i in range(600)])
    with pytest.raises(TranscriptError, match="larger than the limit of 1 MB"):
        import_bytes(content)
    assert Dialogue.objects.count() == 0


DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_worked_examples_in_docs_import(import_bytes):
    examples = sorted((DOCS / "examples").glob("*.*"))
    assert len(examples) >= 3
    for path in examples:
        result = import_bytes(path.read_bytes(), name=path.name)
        assert result.created == 1 and result.utterances > 0, path


def test_the_jsonl_examples_and_an_export_follow_the_json_schema(project, import_bytes):
    from annotate.exports import export_response

    schema = json.loads((DOCS / "transcript.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    lines = []
    for path in sorted((DOCS / "examples").glob("*.jsonl")):
        lines += path.read_text().splitlines()
        import_bytes(path.read_bytes(), name=path.name)
    lines += (
        b"".join(export_response(project, "jsonl").streaming_content)
        .decode()
        .splitlines()
    )
    for line in lines:
        validator.validate(json.loads(line))
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({"id": "x", "turns": [{"speaker": "A", "txt": "typo"}]})
