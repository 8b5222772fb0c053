"""Transcript file formats: streaming parsers for JSONL and CSV, and the export writers.

Parsing is strict and names where it failed: every problem raises `TranscriptError` with the
file, the line and the field. Parsers yield one `DialogueRecord` at a time, so memory stays
flat in the size of the file. The formats are described in docs/import-format.md and
docs/transcript.schema.json.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import orjson
from django.utils.dateparse import parse_datetime

import learner

# Task name → its label values in display order.
Schema = dict[str, list[str]]

CSV_BASE_COLUMNS = ("dialogue_id", "position", "speaker", "text")
CSV_OPTIONAL_COLUMNS = ("timestamp",)
CSV_TASK_COLUMN = re.compile(
    r"^(?P<task>[-\w]+?)_(?P<kind>llm_label|llm_confidence|human_label)(?:@(?P<prompt>[-\w.]+))?$"
)
TURN_KEYS = {"position", "speaker", "text", "timestamp", "llm", "human", "prediction"}
ANSWER_KEYS = {"prompt", "model", "label", "confidence", "distribution"}
HUMAN_KEYS = {"label", "annotator", "created_at", "source"}


class TranscriptError(ValueError):
    """A problem in an import file, located by file, line and field."""

    def __init__(
        self, message: str, *, file: str, line: int | None = None, field: str = ""
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        where = file
        if line is not None:
            where += f", line {line}"
        if field:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")


@dataclass(slots=True)
class LlmAnswer:
    prompt: str
    model: str
    label: str
    confidence: float | None
    distribution: dict[str, float]


@dataclass(slots=True)
class HumanAnswer:
    label: str
    annotator: str
    created_at: datetime | None


@dataclass(slots=True)
class TurnRecord:
    position: int
    speaker: str
    text: str
    timestamp: datetime | None = None
    llm: dict[str, list[LlmAnswer]] = field(default_factory=dict)
    human: dict[str, list[HumanAnswer]] = field(default_factory=dict)
    # Export only: per task, the human label that counts (selectors.reference_labels).
    reference: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class DialogueRecord:
    external_id: str
    line: int
    metadata: dict[str, Any] = field(default_factory=dict)
    turns: list[TurnRecord] = field(default_factory=list)

    @property
    def n_utterances(self) -> int:
        return len(self.turns)


class _Located:
    """Raises TranscriptError for one line of one file."""

    def __init__(self, file: str, line: int) -> None:
        self.file = file
        self.line = line

    def error(self, field: str, message: str) -> TranscriptError:
        return TranscriptError(message, file=self.file, line=self.line, field=field)


def _is_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _parse_time(loc: _Located, field: str, value: object) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise loc.error(field, "expected an ISO 8601 date-time string")
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise loc.error(field, f"not an ISO 8601 date-time: {value!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _check_label(
    loc: _Located, field: str, schema: Schema, task: str, label: object
) -> str:
    if not isinstance(label, str) or not label:
        raise loc.error(field, "expected a label name")
    if label not in schema[task]:
        allowed = ", ".join(schema[task])
        raise loc.error(
            field, f"unknown label {label!r} for task '{task}' (one of: {allowed})"
        )
    return label


def _check_confidence(loc: _Located, field: str, value: object) -> float | None:
    if value is None:
        return None
    if not _is_number(value) or not 0.0 <= float(value) <= 1.0:  # type: ignore[arg-type]
        raise loc.error(field, f"confidence must be a number in [0, 1], got {value!r}")
    return float(value)  # type: ignore[arg-type]


def spread_confidence(
    labels: list[str], label: str, confidence: float | None
) -> dict[str, float]:
    """A verbalised answer as a distribution: its confidence on the label, the rest uniform."""
    return dict(
        zip(labels, learner.spread_confidence(labels, label, confidence), strict=True)
    )


def _parse_distribution(
    loc: _Located, field: str, schema: Schema, task: str, value: object
) -> dict[str, float]:
    if not isinstance(value, dict) or not value:
        raise loc.error(field, "expected an object mapping labels to probabilities")
    for label, prob in value.items():
        _check_label(loc, f"{field}.{label}", schema, task, label)
        if not _is_number(prob) or prob < 0:
            raise loc.error(
                f"{field}.{label}", f"expected a non-negative number, got {prob!r}"
            )
    total = float(sum(value.values()))
    if total <= 0:
        raise loc.error(field, "probabilities sum to zero")
    # Renormalise only what is off by more than rounding, so that exported values re-import
    # bit for bit.
    scale = 1.0 if abs(total - 1.0) <= 1e-6 else 1.0 / total
    return {label: float(value.get(label, 0.0)) * scale for label in schema[task]}


def _parse_answer(
    loc: _Located,
    task_field: str,
    index: int | None,
    schema: Schema,
    task: str,
    value: object,
) -> LlmAnswer:
    """One LLM answer in any of its shapes: a label, {label, confidence}, {distribution}.

    The hot loop of an import (one call per utterance × prompt): field names for the error
    messages are only built when there is an error.
    """

    def where(key: str = "") -> str:
        field = task_field if index is None else f"{task_field}[{index}]"
        return f"{field}.{key}" if key else field

    labels = schema[task]
    if isinstance(value, str):
        if value not in labels:
            _check_label(loc, where(), schema, task, value)
        return LlmAnswer("", "", value, None, spread_confidence(labels, value, None))
    if not isinstance(value, dict):
        raise loc.error(
            where(), "expected a label, an object or a list of per-prompt answers"
        )
    if not ANSWER_KEYS.issuperset(value):
        raise loc.error(where(sorted(set(value) - ANSWER_KEYS)[0]), "unknown key")
    prompt = value.get("prompt", "")
    model = value.get("model", "")
    if not isinstance(prompt, str) or len(prompt) > 50:
        raise loc.error(where("prompt"), "expected a short string")
    if not isinstance(model, str) or len(model) > 100:
        raise loc.error(where("model"), "expected a short string")
    confidence = value.get("confidence")
    if confidence is not None:
        if not _is_number(confidence) or not 0.0 <= confidence <= 1.0:
            _check_confidence(loc, where("confidence"), confidence)  # raises
        confidence = float(confidence)
    label = value.get("label")
    if "label" in value and label not in labels:
        _check_label(loc, where("label"), schema, task, label)  # raises
    if "distribution" in value:
        dist = _parse_distribution(
            loc, where("distribution"), schema, task, value["distribution"]
        )
        if label is None:
            label = max(dist, key=dist.__getitem__)
    elif label is not None:
        dist = spread_confidence(labels, label, confidence)
    else:
        raise loc.error(where("label"), "missing: give a label or a distribution")
    return LlmAnswer(prompt, model, label, confidence, dist)


def _parse_llm(
    loc: _Located, field: str, schema: Schema, value: object
) -> dict[str, list[LlmAnswer]]:
    if not isinstance(value, dict):
        raise loc.error(field, "expected an object keyed by task name")
    result: dict[str, list[LlmAnswer]] = {}
    for task, answer in value.items():
        task_field = f"{field}.{task}"
        if task not in schema:
            raise loc.error(
                task_field, f"unknown task (project tasks: {', '.join(schema)})"
            )
        if isinstance(answer, list):
            if not answer:
                raise loc.error(task_field, "empty list of answers")
            answers = [
                _parse_answer(loc, task_field, i, schema, task, item)
                for i, item in enumerate(answer)
            ]
            sources = {(a.prompt, a.model) for a in answers}
            if len(sources) != len(answers):
                raise loc.error(
                    task_field, "two answers from the same prompt and model"
                )
        else:
            answers = [_parse_answer(loc, task_field, None, schema, task, answer)]
        result[task] = answers
    return result


def _parse_human_one(
    loc: _Located, field: str, schema: Schema, task: str, value: object
) -> HumanAnswer:
    if isinstance(value, str):
        return HumanAnswer(_check_label(loc, field, schema, task, value), "", None)
    if not isinstance(value, dict):
        raise loc.error(field, "expected a label or an object with a label")
    unknown = set(value) - HUMAN_KEYS
    if unknown:
        raise loc.error(f"{field}.{sorted(unknown)[0]}", "unknown key")
    if "label" not in value:
        raise loc.error(f"{field}.label", "missing")
    label = _check_label(loc, f"{field}.label", schema, task, value["label"])
    annotator = value.get("annotator") or ""
    if not isinstance(annotator, str) or len(annotator) > 150:
        raise loc.error(
            f"{field}.annotator", "expected a name of at most 150 characters"
        )
    created_at = _parse_time(loc, f"{field}.created_at", value.get("created_at"))
    return HumanAnswer(label, annotator, created_at)


def _parse_human(
    loc: _Located, field: str, schema: Schema, value: object
) -> dict[str, list[HumanAnswer]]:
    if not isinstance(value, dict):
        raise loc.error(field, "expected an object keyed by task name")
    result: dict[str, list[HumanAnswer]] = {}
    for task, answer in value.items():
        task_field = f"{field}.{task}"
        if task not in schema:
            raise loc.error(
                task_field, f"unknown task (project tasks: {', '.join(schema)})"
            )
        items = answer if isinstance(answer, list) else [answer]
        result[task] = [
            _parse_human_one(
                loc,
                f"{task_field}[{i}]" if isinstance(answer, list) else task_field,
                schema,
                task,
                item,
            )
            for i, item in enumerate(items)
        ]
    return result


def _check_positions(loc: _Located, field: str, turns: list[TurnRecord]) -> None:
    """Positions must be 0..n-1, each once, in any order."""
    seen: set[int] = set()
    for i, turn in enumerate(turns):
        if turn.position in seen:
            raise loc.error(
                f"{field}[{i}].position", f"duplicate position {turn.position}"
            )
        seen.add(turn.position)
    for expected in range(len(turns)):
        if expected not in seen:
            raise loc.error(
                field,
                f"position {expected} is missing (positions run 0..{len(turns) - 1})",
            )
    turns.sort(key=lambda t: t.position)


def _parse_turn(
    loc: _Located,
    field: str,
    schema: Schema,
    value: object,
    index: int,
    explicit: bool,
    max_text_chars: int | None = None,
) -> TurnRecord:
    if not isinstance(value, dict):
        raise loc.error(field, "expected an object")
    unknown = set(value) - TURN_KEYS
    if unknown:
        raise loc.error(f"{field}.{sorted(unknown)[0]}", "unknown key")
    if explicit != ("position" in value):
        raise loc.error(
            f"{field}.position", "missing (give a position on every turn or on none)"
        )
    position = value.get("position", index)
    if not isinstance(position, int) or isinstance(position, bool) or position < 0:
        raise loc.error(f"{field}.position", "expected a non-negative integer")
    for key in ("speaker", "text"):
        if key not in value:
            raise loc.error(f"{field}.{key}", "missing")
        if not isinstance(value[key], str) or not value[key].strip():
            raise loc.error(f"{field}.{key}", "expected a non-empty string")
    if len(value["speaker"]) > 100:
        raise loc.error(f"{field}.speaker", "longer than 100 characters")
    _check_text_length(loc, f"{field}.text", value["text"], max_text_chars)
    return TurnRecord(
        position=position,
        speaker=value["speaker"],
        text=value["text"],
        timestamp=_parse_time(loc, f"{field}.timestamp", value.get("timestamp")),
        llm=_parse_llm(loc, f"{field}.llm", schema, value.get("llm", {})),
        human=_parse_human(loc, f"{field}.human", schema, value.get("human", {})),
    )


def _check_text_length(
    loc: _Located, field: str, text: str, max_chars: int | None
) -> None:
    if max_chars is not None and len(text) > max_chars:
        raise loc.error(
            field,
            f"{len(text):,} characters, more than the limit of {max_chars:,} "
            "(PARLEY_IMPORT_MAX_UTTERANCE_CHARS)",
        )


def _check_turn_count(loc: _Located, field: str, n: int, max_turns: int | None) -> None:
    if max_turns is not None and n > max_turns:
        raise loc.error(
            field,
            f"more than the limit of {max_turns:,} turns per dialogue "
            "(PARLEY_IMPORT_MAX_TURNS); split the dialogue",
        )


def _nul_path(value: object, path: str) -> str | None:
    """The JSON path of the first string (or key) holding a NUL character, if any.

    PostgreSQL cannot store NUL in text; a `\u0000` escape is the only way JSON brings one.
    """
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return where
            found = _nul_path(item, where)
            if found is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _nul_path(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


NUL_MESSAGE = "contains a NUL character (\\u0000), which cannot be stored; remove it"


def _parse_dialogue_obj(
    loc: _Located,
    schema: Schema,
    obj: object,
    max_turns: int | None = None,
    max_text_chars: int | None = None,
) -> DialogueRecord:
    if not isinstance(obj, dict):
        raise loc.error("", "expected a JSON object (one dialogue per line)")
    nul = _nul_path(obj, "")
    if nul is not None:
        raise loc.error(nul, NUL_MESSAGE)
    if "id" not in obj:
        raise loc.error("id", "missing")
    ext_id = obj["id"]
    if isinstance(ext_id, int) and not isinstance(ext_id, bool):
        ext_id = str(ext_id)
    if not isinstance(ext_id, str) or not ext_id.strip() or len(ext_id) > 200:
        raise loc.error("id", "expected a non-empty string of at most 200 characters")
    if "turns" not in obj:
        raise loc.error("turns", "missing")
    turns = obj["turns"]
    if not isinstance(turns, list) or not turns:
        raise loc.error("turns", "expected a non-empty list of turns")
    _check_turn_count(loc, "turns", len(turns), max_turns)
    metadata = obj.get("metadata", {})
    if not isinstance(metadata, dict):
        raise loc.error("metadata", "expected an object")
    # Any other top-level key (DailyDialog's "topic", say) is kept as metadata.
    extra = {k: v for k, v in obj.items() if k not in ("id", "turns", "metadata")}
    explicit = isinstance(turns[0], dict) and "position" in turns[0]
    records = [
        _parse_turn(loc, f"turns[{i}]", schema, turn, i, explicit, max_text_chars)
        for i, turn in enumerate(turns)
    ]
    _check_positions(loc, "turns", records)
    return DialogueRecord(ext_id, loc.line, {**extra, **metadata}, records)


def _lines(
    stream: IO[bytes], name: str, max_line_bytes: int
) -> Iterator[tuple[int, str]]:
    """Decoded lines with their 1-based numbers; fails on non-UTF-8 bytes or long lines."""
    number = 0
    while True:
        raw = stream.readline(max_line_bytes + 1)
        if not raw:
            return
        number += 1
        if len(raw) > max_line_bytes:
            raise TranscriptError(
                f"line longer than the limit of {max_line_bytes // 1024} KB",
                file=name,
                line=number,
            )
        if number == 1:
            if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
                raise TranscriptError(
                    "file is UTF-16; save it as UTF-8", file=name, line=1
                )
            if _looks_like_utf16(raw):
                raise TranscriptError(
                    "file looks like UTF-16 without a byte-order mark (every other byte "
                    "is 0); save it as UTF-8",
                    file=name,
                    line=1,
                )
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TranscriptError(
                f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                "save the file as UTF-8",
                file=name,
                line=number,
            ) from None


def _looks_like_utf16(raw: bytes) -> bool:
    """ASCII text in UTF-16 has a zero byte in every other position."""
    head = raw[:200]
    if len(head) < 4:
        return False
    even, odd = head[0::2], head[1::2]
    return even.count(0) > 0.8 * len(even) or odd.count(0) > 0.8 * len(odd)


def parse_jsonl(
    stream: IO[bytes],
    *,
    name: str,
    schema: Schema,
    max_line_bytes: int,
    max_turns: int | None = None,
    max_text_chars: int | None = None,
) -> Iterator[DialogueRecord]:
    """Yield the dialogues of a JSONL file, one per non-blank line."""
    seen: dict[str, int] = {}
    count = 0
    for number, text in _lines(stream, name, max_line_bytes):
        if not text.strip():
            continue
        loc = _Located(name, number)
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            # The column from the error's offset in this one line (characters, 1-based).
            column = exc.pos + 1
            raise loc.error("", f"invalid JSON: {exc.msg} at column {column}") from None
        record = _parse_dialogue_obj(loc, schema, obj, max_turns, max_text_chars)
        if record.external_id in seen:
            raise loc.error(
                "id",
                f"dialogue {record.external_id!r} already on line {seen[record.external_id]}",
            )
        seen[record.external_id] = number
        count += 1
        yield record
    if count == 0:
        raise TranscriptError("file is empty: no dialogues", file=name)


@dataclass(frozen=True, slots=True)
class _CsvColumn:
    index: int
    task: str
    kind: str
    prompt: str


def _csv_header(
    loc: _Located, header: list[str], schema: Schema
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
    loc: _Located,
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
    _check_text_length(loc, "text", cell("text"), max_text_chars)
    turn = TurnRecord(
        position,
        cell("speaker"),
        cell("text"),
        _parse_time(loc, "timestamp", cell("timestamp")),
    )
    answers: dict[tuple[str, str], dict[str, str]] = {}
    for column in task_columns:
        value = row[column.index].strip()
        if not value:
            continue
        name = csv_column_name(column.task, column.kind, column.prompt)
        if column.kind == "human_label":
            label = _check_label(loc, name, schema, column.task, value)
            turn.human[column.task] = [HumanAnswer(label, "", None)]
        else:
            answers.setdefault((column.task, column.prompt), {})[column.kind] = value
    for (task, prompt), cells in answers.items():
        label_name = csv_column_name(task, "llm_label", prompt)
        conf_name = csv_column_name(task, "llm_confidence", prompt)
        if "llm_label" not in cells:
            raise loc.error(label_name, "empty, but its confidence is given")
        label = _check_label(loc, label_name, schema, task, cells["llm_label"])
        confidence = None
        if "llm_confidence" in cells:
            try:
                confidence = float(cells["llm_confidence"])
            except ValueError:
                raise loc.error(
                    conf_name, f"expected a number, got {cells['llm_confidence']!r}"
                ) from None
            confidence = _check_confidence(loc, conf_name, confidence)
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
    numbered = _lines(stream, name, max_line_bytes)
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
    base, task_columns = _csv_header(_Located(name, 1), header, schema)
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
        loc = _Located(name, line_of_row)
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
                _check_positions(
                    _Located(name, current.line), "position", current.turns
                )
                count += 1
                yield current
            seen[ext_id] = line_of_row
            current = DialogueRecord(ext_id, line_of_row)
        current.turns.append(
            _csv_turn(loc, row, base, task_columns, schema, max_text_chars)
        )
        _check_turn_count(loc, "dialogue_id", len(current.turns), max_turns)
    if current is None:
        raise TranscriptError("file is empty: no dialogues", file=name)
    _check_positions(_Located(name, current.line), "position", current.turns)
    yield current


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


# --- Export ---------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
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
            item["timestamp"] = _iso(turn.timestamp)
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
                        "created_at": _iso(h.created_at),
                    }
                    for h in answers
                ]
                for task, answers in turn.human.items()
            }
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
        row[index["timestamp"]] = _iso(turn.timestamp) or ""
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


class _Echo:
    """A file-like object whose write returns what it is given (for streaming CSV)."""

    def write(self, value: str) -> str:
        return value


_CSV_LINE = csv.writer(_Echo())


def csv_writer_line(row: list[str]) -> str:
    """One CSV row as text (for streaming responses)."""
    return str(_CSV_LINE.writerow(row))
