"""Transcript imports: a parsed file written in bulk, with its queue items, all or nothing."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import IO

from django.conf import settings
from django.db import transaction

from .. import selectors
from ..models import (
    Project,
)
from ..transcripts import (
    PARSERS,
    DialogueRecord,
    TranscriptError,
    format_for,
)
from .import_writer import ImportResult, ImportWriter

ProgressCallback = Callable[[int, int], None]


def transcripts_import(
    *,
    project: Project,
    stream: IO[bytes],
    name: str,
    fmt: str | None = None,
    update: bool = False,
    on_progress: ProgressCallback | None = None,
    chunk_utterances: int = 5000,
) -> ImportResult:
    """Import a JSONL or CSV transcript file into `project`, all or nothing.

    The file is parsed as a stream and written in chunks with bulk inserts inside one
    transaction, so memory stays flat and a problem anywhere leaves the database unchanged.
    Known dialogue ids are skipped, or updated when `update` is set: their metadata, the text
    of their turns and, for every task the file gives, the LLM labels are replaced; human labels
    are only ever added.

    Raises:
        TranscriptError: the file is malformed; the message names the file, line and field.
    """
    fmt = fmt or format_for(name)
    if fmt not in PARSERS:
        raise TranscriptError(f"unknown format {fmt!r} (jsonl or csv)", file=name)
    total = _stream_size(stream)
    check_file_size(total, name)
    schema = selectors.project_schema(project=project)
    records = PARSERS[fmt](
        stream,
        name=name,
        schema=schema,
        max_line_bytes=settings.PARLEY_IMPORT_MAX_LINE_KB * 1024,
        max_turns=settings.PARLEY_IMPORT_MAX_TURNS,
        max_text_chars=settings.PARLEY_IMPORT_MAX_UTTERANCE_CHARS,
    )
    writer = ImportWriter(project, update=update)
    with transaction.atomic():
        chunk: list[DialogueRecord] = []
        size = 0
        for record in records:
            chunk.append(record)
            size += record.n_utterances
            if size >= chunk_utterances:
                writer.write(chunk)
                chunk, size = [], 0
                if on_progress:
                    on_progress(stream.tell(), total)
        if chunk:
            writer.write(chunk)
    if on_progress:
        on_progress(total, total)
    return writer.result


def check_file_size(size: int, name: str) -> None:
    """Refuse a file over PARLEY_IMPORT_MAX_FILE_MB before reading any of it."""
    if size > settings.PARLEY_IMPORT_MAX_FILE_MB * 1024 * 1024:
        raise TranscriptError(
            f"file is larger than the limit of {settings.PARLEY_IMPORT_MAX_FILE_MB} MB",
            file=name,
        )


def _stream_size(stream: IO[bytes]) -> int:
    try:
        return os.fstat(stream.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        position = stream.tell()
        size = stream.seek(0, os.SEEK_END)
        stream.seek(position)
        return size
