"""The CSV format: one utterance per row, rows grouped by dialogue (docs/import-format.md);
and the spreadsheet-safe cells its export writes.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from .fields import (
    NUL_MESSAGE,
    check_confidence,
    check_label,
    check_positions,
    check_text_length,
    check_turn_count,
    parse_time,
    spread_confidence,
)
from .records import (
    DialogueRecord,
    HumanAnswer,
    LlmAnswer,
    Located,
    Schema,
    TranscriptError,
    TurnRecord,
    numbered_lines,
)

CSV_BASE_COLUMNS = ("dialogue_id", "position", "speaker", "text")


CSV_OPTIONAL_COLUMNS = ("timestamp",)


CSV_TASK_COLUMN = re.compile(
    r"^(?P<task>[-\w]+?)_(?P<kind>llm_label|llm_confidence|human_label)(?:@(?P<prompt>[-\w.]+))?$"
)


@dataclass(frozen=True, slots=True)
class _CsvColumn:
    index: int
    task: str
    kind: str
    prompt: str


def _csv_header(
    loc: Located, header: list[str], schema: Schema
) -> tuple[dict[str, int], list[_CsvColumn]]:
    base: dict[str, int] = {}
    task_columns: list[_CsvColumn] = []
    seen: set[str] = set()
    for index, raw_name in enumerate(header):
        name = raw_name.strip()
        if name in seen:
            raise loc.error(name, "duplicate column")
        seen.add(name)
        if name in CSV_BASE_COLUMNS or name in CSV_OPTIONAL_COLUMNS:
            base[name] = index
            continue
        match = CSV_TASK_COLUMN.match(name)
        if not match:
            raise loc.error(name, "unknown column")
        if match["task"] not in schema:
            raise loc.error(
                name,
                f"unknown task '{match['task']}' (project tasks: {', '.join(schema)})",
            )
        if match["kind"] == "human_label" and match["prompt"]:
            raise loc.error(name, "human labels have no prompt")
        task_columns.append(
            _CsvColumn(index, match["task"], match["kind"], match["prompt"] or "")
        )
    for name in CSV_BASE_COLUMNS:
        if name not in base:
            raise loc.error(name, "missing column")
    label_sources = {(c.task, c.prompt) for c in task_columns if c.kind == "llm_label"}
    for column in task_columns:
        if (
            column.kind == "llm_confidence"
            and (column.task, column.prompt) not in label_sources
        ):
            raise loc.error(
                header[column.index], "confidence column without its label column"
            )
    return base, task_columns


def _csv_turn(
    loc: Located,
    row: list[str],
    base: dict[str, int],
    task_columns: list[_CsvColumn],
    schema: Schema,
    max_text_chars: int | None = None,
) -> TurnRecord:
    def cell(name: str) -> str:
        return row[base[name]] if name in base else ""

    try:
        position = int(cell("position"))
    except ValueError:
        raise loc.error(
            "position", f"expected an integer, got {cell('position')!r}"
        ) from None
    if position < 0:
        raise loc.error("position", "expected a non-negative integer")
    for name in ("speaker", "text"):
        if not cell(name).strip():
            raise loc.error(name, "empty")
    check_text_length(loc, "text", cell("text"), max_text_chars)
    turn = TurnRecord(
        position,
        cell("speaker"),
        cell("text"),
        parse_time(loc, "timestamp", cell("timestamp")),
    )
    answers: dict[tuple[str, str], dict[str, str]] = {}
    for column in task_columns:
        value = row[column.index].strip()
        if not value:
            continue
        name = csv_column_name(column.task, column.kind, column.prompt)
        if column.kind == "human_label":
            label = check_label(loc, name, schema, column.task, value)
            turn.human[column.task] = [HumanAnswer(label, "", None)]
        else:
            answers.setdefault((column.task, column.prompt), {})[column.kind] = value
    for (task, prompt), cells in answers.items():
        label_name = csv_column_name(task, "llm_label", prompt)
        conf_name = csv_column_name(task, "llm_confidence", prompt)
        if "llm_label" not in cells:
            raise loc.error(label_name, "empty, but its confidence is given")
        label = check_label(loc, label_name, schema, task, cells["llm_label"])
        confidence = None
        if "llm_confidence" in cells:
            try:
                confidence = float(cells["llm_confidence"])
            except ValueError:
                raise loc.error(
                    conf_name, f"expected a number, got {cells['llm_confidence']!r}"
                ) from None
            confidence = check_confidence(loc, conf_name, confidence)
        dist = spread_confidence(schema[task], label, confidence)
        turn.llm.setdefault(task, []).append(
            LlmAnswer(prompt, "", label, confidence, dist)
        )
    return turn


def csv_column_name(task: str, kind: str, prompt: str = "") -> str:
    return f"{task}_{kind}" + (f"@{prompt}" if prompt else "")


def parse_csv(
    stream: IO[bytes],
    *,
    name: str,
    schema: Schema,
    max_line_bytes: int,
    max_turns: int | None = None,
    max_text_chars: int | None = None,
) -> Iterator[DialogueRecord]:
    """Yield the dialogues of a CSV file with one utterance per row, rows grouped by dialogue."""
    numbered = numbered_lines(stream, name, max_line_bytes)
    line_of_row = 0

    def physical_lines() -> Iterator[str]:
        nonlocal line_of_row
        for number, text in numbered:
            line_of_row = number
            yield text

    reader = csv.reader(physical_lines(), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise TranscriptError("file is empty: no header row", file=name) from None
    except csv.Error as exc:
        raise TranscriptError(f"malformed CSV: {exc}", file=name, line=1) from None
    base, task_columns = _csv_header(Located(name, 1), header, schema)
    seen: dict[str, int] = {}
    current: DialogueRecord | None = None
    count = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise TranscriptError(
                f"malformed CSV: {exc}", file=name, line=line_of_row
            ) from None
        loc = Located(name, line_of_row)
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise loc.error("", f"expected {len(header)} cells, found {len(row)}")
        for column, value in zip(header, row, strict=True):
            if "\x00" in value:
                raise loc.error(column, NUL_MESSAGE)
        row = [from_spreadsheet_safe(value) for value in row]
        ext_id = row[base["dialogue_id"]].strip()
        if not ext_id:
            raise loc.error("dialogue_id", "empty")
        if current is None or ext_id != current.external_id:
            if ext_id in seen:
                raise loc.error(
                    "dialogue_id",
                    f"rows of dialogue {ext_id!r} must be contiguous (first seen on line {seen[ext_id]})",
                )
            if current is not None:
                check_positions(Located(name, current.line), "position", current.turns)
                count += 1
                yield current
            seen[ext_id] = line_of_row
            current = DialogueRecord(ext_id, line_of_row)
        current.turns.append(
            _csv_turn(loc, row, base, task_columns, schema, max_text_chars)
        )
        check_turn_count(loc, "dialogue_id", len(current.turns), max_turns)
    if current is None:
        raise TranscriptError("file is empty: no dialogues", file=name)
    check_positions(Located(name, current.line), "position", current.turns)
    yield current


# A cell starting with one of these is a formula to a spreadsheet (CSV injection, OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: str) -> str:
    """The cell as text a spreadsheet will not run: a leading ' before a formula character,
    as spreadsheet exporters do. `from_spreadsheet_safe` undoes it on import."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def from_spreadsheet_safe(value: str) -> str:
    """The cell as written before `spreadsheet_safe` (a Parley export re-imports as it was)."""
    if value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value
