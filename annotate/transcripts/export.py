"""The export writers: a dialogue as a JSONL line (the import format plus predictions), or as
CSV rows.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .csv_format import CSV_BASE_COLUMNS, csv_column_name, spreadsheet_safe
from .records import DialogueRecord, LlmAnswer, Schema


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def dialogue_to_json(
    record: DialogueRecord, predictions: dict[int, dict[str, Any]] | None = None
) -> str:
    """One JSONL line in the import format; `predictions` (by position) is output-only."""
    turns = []
    for turn in record.turns:
        item: dict[str, Any] = {
            "position": turn.position,
            "speaker": turn.speaker,
            "text": turn.text,
        }
        if turn.timestamp:
            item["timestamp"] = iso(turn.timestamp)
        if turn.llm:
            item["llm"] = {
                task: [_answer_json(a) for a in answers]
                for task, answers in turn.llm.items()
            }
        if turn.human:
            item["human"] = {
                task: [
                    {
                        "label": h.label,
                        "annotator": h.annotator,
                        "created_at": iso(h.created_at),
                    }
                    for h in answers
                ]
                for task, answers in turn.human.items()
            }
        if turn.soft_label:
            item["soft_label"] = turn.soft_label
        if predictions and turn.position in predictions:
            item["prediction"] = predictions[turn.position]
        turns.append(item)
    return json.dumps(
        {"id": record.external_id, "metadata": record.metadata, "turns": turns},
        ensure_ascii=False,
    )


def _answer_json(answer: LlmAnswer) -> dict[str, Any]:
    out: dict[str, Any] = {"prompt": answer.prompt}
    if answer.model:
        out["model"] = answer.model
    out["label"] = answer.label
    if answer.confidence is not None:
        out["confidence"] = answer.confidence
    out["distribution"] = answer.distribution
    return out


def csv_header(schema: Schema, sources: dict[str, list[str]]) -> list[str]:
    """Export header: base columns, then per task its LLM sources, human label, prediction."""
    header = [*CSV_BASE_COLUMNS, "timestamp"]
    for task in schema:
        for prompt in sources.get(task, []):
            header += [
                csv_column_name(task, "llm_label", prompt),
                csv_column_name(task, "llm_confidence", prompt),
            ]
        header.append(csv_column_name(task, "human_label"))
    return header


def dialogue_to_csv_rows(
    record: DialogueRecord, header: list[str]
) -> Iterable[list[str]]:
    """CSV rows for one dialogue. Per task the human label that counts (its reference label:
    the adjudication, else the latest not retracted) is written; CSV keeps one."""
    index = {name: i for i, name in enumerate(header)}
    for turn in record.turns:
        row = [""] * len(header)
        row[index["dialogue_id"]] = record.external_id
        row[index["position"]] = str(turn.position)
        row[index["speaker"]] = turn.speaker
        row[index["text"]] = turn.text
        row[index["timestamp"]] = iso(turn.timestamp) or ""
        for task, answers in turn.llm.items():
            for answer in answers:
                label_col = csv_column_name(task, "llm_label", answer.prompt)
                if label_col in index:
                    row[index[label_col]] = answer.label
                    if answer.confidence is not None:
                        conf_col = csv_column_name(
                            task, "llm_confidence", answer.prompt
                        )
                        row[index[conf_col]] = repr(answer.confidence)
        for task, label in turn.reference.items():
            row[index[csv_column_name(task, "human_label")]] = label
        yield [spreadsheet_safe(value) for value in row]


class _Echo:
    """A file-like object whose write returns what it is given (for streaming CSV)."""

    def write(self, value: str) -> str:
        return value


_CSV_LINE = csv.writer(_Echo())


def csv_writer_line(row: list[str]) -> str:
    """One CSV row as text (for streaming responses)."""
    return str(_CSV_LINE.writerow(row))
