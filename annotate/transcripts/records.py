"""What a parsed transcript is (records, errors located by file, line and field), and how a
file is read: numbered, decoded lines with the encoding checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

# Task name → its label values in display order.
Schema = dict[str, list[str]]


TURN_KEYS = {
    "position",
    "speaker",
    "text",
    "timestamp",
    "llm",
    "human",
    "prediction",  # export only, ignored on import
    "soft_label",  # export only, ignored on import
}


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
    # Export only: per task, the soft label and where it came from (the LLM prompt bank, or
    # the student in LLM budget mode).
    soft_label: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(slots=True)
class DialogueRecord:
    external_id: str
    line: int
    metadata: dict[str, Any] = field(default_factory=dict)
    turns: list[TurnRecord] = field(default_factory=list)

    @property
    def n_utterances(self) -> int:
        return len(self.turns)


class Located:
    """Raises TranscriptError for one line of one file."""

    def __init__(self, file: str, line: int) -> None:
        self.file = file
        self.line = line

    def error(self, field: str, message: str) -> TranscriptError:
        return TranscriptError(message, file=self.file, line=self.line, field=field)


def numbered_lines(
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
