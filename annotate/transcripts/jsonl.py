"""The JSONL format: one dialogue per line (docs/import-format.md)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

import orjson

from .fields import (
    NUL_MESSAGE,
    check_positions,
    check_text_length,
    check_turn_count,
    nul_path,
    parse_human,
    parse_llm,
    parse_time,
)
from .records import (
    TURN_KEYS,
    DialogueRecord,
    Located,
    Schema,
    TranscriptError,
    TurnRecord,
    numbered_lines,
)


def _parse_turn(
    loc: Located,
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
    check_text_length(loc, f"{field}.text", value["text"], max_text_chars)
    return TurnRecord(
        position=position,
        speaker=value["speaker"],
        text=value["text"],
        timestamp=parse_time(loc, f"{field}.timestamp", value.get("timestamp")),
        llm=parse_llm(loc, f"{field}.llm", schema, value.get("llm", {})),
        human=parse_human(loc, f"{field}.human", schema, value.get("human", {})),
    )


def _parse_dialogue_obj(
    loc: Located,
    schema: Schema,
    obj: object,
    max_turns: int | None = None,
    max_text_chars: int | None = None,
) -> DialogueRecord:
    if not isinstance(obj, dict):
        raise loc.error("", "expected a JSON object (one dialogue per line)")
    nul = nul_path(obj, "")
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
    check_turn_count(loc, "turns", len(turns), max_turns)
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
    check_positions(loc, "turns", records)
    return DialogueRecord(ext_id, loc.line, {**extra, **metadata}, records)


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
    for number, text in numbered_lines(stream, name, max_line_bytes):
        if not text.strip():
            continue
        loc = Located(name, number)
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
