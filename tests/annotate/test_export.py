"""Export: streamed JSONL and CSV; import → export → import gives the same rows."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.utils import timezone

from annotate import services
from annotate.exports import export_response
from annotate.models import (
    HumanLabel,
    LabelRetraction,
    LlmLabel,
    ModelVersion,
    Prediction,
    SoftLabel,
    TrainingRun,
    Utterance,
)
from tests.conftest import TASKS, jsonl


def _export(project, fmt: str) -> bytes:
    return b"".join(export_response(project, fmt).streaming_content)


def _rows(project) -> dict[str, list[tuple]]:
    """Every imported row of a project, keyed so that two projects can be compared."""
    key = ("utterance__dialogue__external_id", "utterance__position", "task__name")
    return {
        "utterances": sorted(
            Utterance.objects.filter(dialogue__project=project).values_list(
                "dialogue__external_id",
                "dialogue__metadata",
                "position",
                "speaker",
                "text",
                "timestamp",
            )
        ),
        "llm": sorted(
            (*r[:-1], json.dumps(r[-1], sort_keys=True))
            for r in LlmLabel.objects.filter(task__project=project).values_list(
                *key, "prompt", "model", "label__value", "confidence", "distribution"
            )
        ),
        "soft": sorted(
            (*r[:-1], json.dumps(r[-1], sort_keys=True))
            for r in SoftLabel.objects.filter(task__project=project).values_list(
                *key,
                "label__value",
                "confidence",
                "agreement",
                "n_sources",
                "distribution",
            )
        ),
        "human": sorted(
            HumanLabel.objects.filter(task__project=project).values_list(
                *key,
                "label__value",
                "annotator_name",
                "annotator",
                "source",
                "created_at",
            )
        ),
    }


RICH = [
    {
        "id": "r1",
        "metadata": {"channel": "chat", "score": 3},
        "turns": [
            {
                "speaker": "A",
                "text": "Where is my parcel? ünïcödé ✓",
                "timestamp": "2026-03-01T08:00:00+00:00",
                "llm": {
                    "act": [
                        {"prompt": "P1", "label": "question", "confidence": 0.91},
                        {
                            "prompt": "P2",
                            "model": "small",
                            "distribution": {"question": 0.6, "inform": 0.4},
                        },
                    ],
                    "sentiment": {"label": "negative", "confidence": 0.55},
                },
                "human": {
                    "act": [
                        {
                            "label": "question",
                            "annotator": "ann",
                            "created_at": "2026-03-02T10:00:00+00:00",
                        },
                        {
                            "label": "directive",
                            "annotator": "bob",
                            "created_at": "2026-03-02T11:00:00+00:00",
                        },
                    ]
                },
            },
            {
                "speaker": "B",
                "text": 'It left the depot, "line two"\nwith a newline',
                "llm": {"act": "inform"},
            },
        ],
    },
    {
        "id": "r2",
        "turns": [
            {
                "speaker": "A",
                "text": "Thanks",
                "llm": {"sentiment": {"distribution": {"positive": 1, "neutral": 2}}},
            }
        ],
    },
]


def test_jsonl_round_trip_gives_the_same_rows(project, import_bytes, annotator_ann):
    import_bytes(jsonl(*RICH))
    exported = _export(project, "jsonl")
    copy = services.project_create(name="Copy", slug="copy", tasks=TASKS)
    services.transcripts_import(
        project=copy, stream=io.BytesIO(exported), name="export.jsonl"
    )
    assert _rows(copy) == _rows(project)
    # and the export of the copy is the export of the original
    assert _export(copy, "jsonl") == exported


def test_csv_round_trip_gives_the_same_rows_for_label_and_confidence_data(
    project, import_bytes
):
    csv_data = (
        b"dialogue_id,position,speaker,text,timestamp,act_llm_label@P1,act_llm_confidence@P1,"
        b"act_llm_label@P2,act_llm_confidence@P2,sentiment_llm_label,sentiment_human_label\n"
        b'c1,0,A,"Hi, ""you""",2026-01-01T00:00:00+00:00,inform,0.8,question,0.7,neutral,neutral\n'
        b"c1,1,B,Hello,,inform,,inform,0.9,,\n"
        b"c2,0,A,Bye,,directive,0.6,,,positive,\n"
    )
    import_bytes(csv_data, name="in.csv")
    exported = _export(project, "csv")
    copy = services.project_create(name="Copy", slug="copy", tasks=TASKS)
    services.transcripts_import(
        project=copy, stream=io.BytesIO(exported), name="export.csv"
    )
    rows, copied = _rows(project), _rows(copy)
    assert copied["utterances"] == rows["utterances"]
    assert copied["llm"] == rows["llm"]
    assert copied["soft"] == rows["soft"]
    # CSV keeps the label of a human answer, not its time
    assert [r[:4] for r in copied["human"]] == [r[:4] for r in rows["human"]]


def test_jsonl_export_carries_the_active_models_predictions(project, import_bytes):
    import_bytes(jsonl(*RICH))
    task = project.tasks.get(name="act")
    run = TrainingRun.objects.create(task=task, status="succeeded")
    old = ModelVersion.objects.create(
        task=task, run=None, version=1, artifact_path="/m/1"
    )
    new = ModelVersion.objects.create(
        task=task, run=run, version=2, artifact_path="/m/2", is_active=True
    )
    utterance = Utterance.objects.get(dialogue__external_id="r1", position=0)
    question = task.labels.get(value="question")
    Prediction.objects.create(
        utterance=utterance,
        task=task,
        model_version=old,
        probabilities={"question": 0.5},
        label=question,
    )
    Prediction.objects.create(
        utterance=utterance,
        task=task,
        model_version=new,
        probabilities={"question": 0.8},
        label=question,
        trust=0.3,
    )
    first = json.loads(_export(project, "jsonl").splitlines()[0])
    assert first["turns"][0]["prediction"] == {
        "act": {
            "label": "question",
            "probabilities": {"question": 0.8},
            "trust": 0.3,
            "model_version": 2,
        }
    }
    assert "prediction" not in first["turns"][1]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_streams_in_batches(
    project, import_bytes, django_assert_max_num_queries, fmt
):
    import_bytes(
        jsonl(
            *[
                {
                    "id": f"d{i}",
                    "turns": [{"speaker": "A", "text": "t", "llm": {"act": "inform"}}],
                }
                for i in range(1200)
            ]
        )
    )
    response = export_response(project, fmt)
    assert response.streaming
    with django_assert_max_num_queries(30):
        lines = b"".join(response.streaming_content).splitlines()
    assert len(lines) == 1200 + (fmt == "csv")


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised_and_re_import_as_they_were(
    project, import_bytes
):
    texts = [
        '=HYPERLINK("http://evil.example","click")',
        "+1 for that",
        "-- quoted",
        "@sum",
        "plain",
    ]
    import_bytes(
        jsonl(
            {
                "id": "=cmd|' /C calc'!A0",
                "turns": [{"speaker": "=A", "text": t} for t in texts],
            }
        )
    )
    exported = _export(project, "csv").decode()
    rows = list(csv.reader(io.StringIO(exported)))[1:]
    assert [r[3] for r in rows] == ["'" + t for t in texts[:4]] + ["plain"]
    assert {r[0] for r in rows} == {"'=cmd|' /C calc'!A0"} and {r[2] for r in rows} == {
        "'=A"
    }
    copy = services.project_create(name="Copy", slug="copy", tasks=TASKS)
    services.transcripts_import(
        project=copy, stream=io.BytesIO(exported.encode()), name="e.csv"
    )
    assert _rows(copy)["utterances"] == _rows(project)["utterances"]


def test_the_csv_writes_the_human_label_that_counts(
    project, import_bytes, annotator_ann, lead_lena
):
    import_bytes(
        jsonl(
            {
                "id": "d1",
                "turns": [{"speaker": "A", "text": "x"}, {"speaker": "B", "text": "y"}],
            }
        )
    )
    act = project.tasks.get(name="act")
    x, y = Utterance.objects.order_by("position")
    services.label_adjudicate(
        task=act, utterance_id=x.pk, lead=lead_lena, label="directive"
    )
    HumanLabel.objects.create(
        utterance=x,
        task=act,
        label=act.labels.get(value="inform"),
        annotator=annotator_ann,
        annotator_name="ann",
        source="annotation",
        created_at=timezone.now(),
    )  # later than the adjudication
    label = HumanLabel.objects.create(
        utterance=y,
        task=act,
        label=act.labels.get(value="question"),
        annotator=annotator_ann,
        annotator_name="ann",
        source="annotation",
        created_at=timezone.now(),
    )
    LabelRetraction.objects.create(label=label)
    rows = list(csv.DictReader(io.StringIO(_export(project, "csv").decode())))
    assert [r["act_human_label"] for r in rows] == ["directive", ""]
