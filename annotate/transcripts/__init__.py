"""Transcript file formats: streaming parsers for JSONL and CSV, and the export writers.

`records` (what a parsed file is; reading lines), `fields` (the checks both parsers share),
`jsonl`, `csv_format`, `export`; everything callers use is re-exported here.

Parsing is strict and names where it failed: every problem raises `TranscriptError` with the
file, the line and the field. Parsers yield one `DialogueRecord` at a time, so memory stays
flat in the size of the file. The formats are described in docs/import-format.md and
docs/transcript.schema.json.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from .csv_format import (
    csv_column_name,
    from_spreadsheet_safe,
    parse_csv,
    spreadsheet_safe,
)
from .export import csv_header, csv_writer_line, dialogue_to_csv_rows, dialogue_to_json
from .fields import spread_confidence
from .jsonl import parse_jsonl
from .records import (
    DialogueRecord,
    HumanAnswer,
    LlmAnswer,
    Schema,
    TranscriptError,
    TurnRecord,
)

PARSERS: dict[str, Callable[..., Iterator[DialogueRecord]]] = {
    "jsonl": parse_jsonl,
    "csv": parse_csv,
}


def format_for(filename: str) -> str:
    """The import format a file name implies, by extension."""
    lowered = filename.lower()
    if lowered.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if lowered.endswith(".csv"):
        return "csv"
    raise TranscriptError(
        "unknown file type: name it .jsonl or .csv, or give the format", file=filename
    )


__all__ = [
    "PARSERS",
    "DialogueRecord",
    "HumanAnswer",
    "LlmAnswer",
    "Schema",
    "TranscriptError",
    "TurnRecord",
    "csv_column_name",
    "csv_header",
    "csv_writer_line",
    "dialogue_to_csv_rows",
    "dialogue_to_json",
    "format_for",
    "from_spreadsheet_safe",
    "parse_csv",
    "parse_jsonl",
    "spread_confidence",
    "spreadsheet_safe",
]
