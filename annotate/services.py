"""Services: every write Parley makes goes through a function here (`<entity>_<action>`)."""

from __future__ import annotations

import hashlib
import logging
import os
import string
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, F, Max, OuterRef, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from learner import trust
from learner.data import Example
from learner.ensemble import agreement, soft_label

from . import selectors
from .jobs import enqueue_on_commit, hold_job_lock
from .llm import Answer, ChatClient, LlmError, LlmSettings, MalformedAnswer
from .models import (
    ApiToken,
    Dialogue,
    Flag,
    HumanLabel,
    ImportJob,
    Label,
    LabelRetraction,
    LabelTask,
    LlmFailure,
    LlmLabel,
    LlmRun,
    Membership,
    ModelVersion,
    Prediction,
    Project,
    PromptTemplate,
    QueueItem,
    QueueSkip,
    SoftLabel,
    TrainingRun,
    Utterance,
)
from .transcripts import PARSERS, DialogueRecord, LlmAnswer, TranscriptError, format_for

logger = logging.getLogger(__name__)

LABEL_KEYS = "1234567890" + string.ascii_lowercase.replace("s", "").replace(
    "f", ""
).replace("u", "")
"""Default keyboard keys for labels, in order. S, F and U are the queue's skip/flag/undo."""


# --- Projects, people, tokens ---------------------------------------------------------------


@transaction.atomic
def project_create(
    *,
    name: str,
    slug: str,
    tasks: Mapping[str, Sequence[str | tuple[str, str]]],
    description: str = "",
) -> Project:
    """A project with its label tasks; each label is a value or (value, description)."""
    project = Project.objects.create(name=name, slug=slug, description=description)
    for task_name, labels in tasks.items():
        label_task_create(project=project, name=task_name, labels=labels)
    return project


@transaction.atomic
def label_task_create(
    *,
    project: Project,
    name: str,
    labels: Sequence[str | tuple[str, str]],
    guidelines: str = "",
) -> LabelTask:
    if len(labels) > len(LABEL_KEYS):
        raise ValueError(f"a task has at most {len(LABEL_KEYS)} labels")
    task = LabelTask.objects.create(project=project, name=name, guidelines=guidelines)
    Label.objects.bulk_create(
        Label(
            task=task,
            value=label if isinstance(label, str) else label[0],
            description="" if isinstance(label, str) else label[1],
            key=LABEL_KEYS[i],
            order=i,
        )
        for i, label in enumerate(labels)
    )
    queue_sync(task=task)  # a task added to a project with dialogues gets their items
    return task


def membership_set(*, project: Project, user: User, role: str) -> Membership:
    membership, _ = Membership.objects.update_or_create(
        project=project, user=user, defaults={"role": role}
    )
    return membership


def api_token_create(*, user: User, name: str) -> tuple[ApiToken, str]:
    """A new token for `user`. The secret is returned once and never stored."""
    key = ApiToken.generate_key()
    token = ApiToken.objects.create(
        user=user, name=name, key_hash=ApiToken.hash_key(key), hint=key[:8]
    )
    return token, key


def api_token_authenticate(*, key: str) -> Any | None:
    """The active user a token belongs to, or None; records when the token was used."""
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=ApiToken.hash_key(key), revoked=False, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token.user


# --- Import ---------------------------------------------------------------------------------


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    utterances: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "created": self.created,
            "updated": self.updated,
            "skipped": self.skipped,
            "utterances": self.utterances,
        }


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
    if total > settings.PARLEY_IMPORT_MAX_FILE_MB * 1024 * 1024:
        raise TranscriptError(
            f"file is larger than the limit of {settings.PARLEY_IMPORT_MAX_FILE_MB} MB",
            file=name,
        )
    schema = selectors.project_schema(project=project)
    records = PARSERS[fmt](
        stream,
        name=name,
        schema=schema,
        max_line_bytes=settings.PARLEY_IMPORT_MAX_LINE_KB * 1024,
        max_turns=settings.PARLEY_IMPORT_MAX_TURNS,
        max_text_chars=settings.PARLEY_IMPORT_MAX_UTTERANCE_CHARS,
    )
    writer = _ImportWriter(project, update=update)
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


def _stream_size(stream: IO[bytes]) -> int:
    try:
        return os.fstat(stream.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        position = stream.tell()
        size = stream.seek(0, os.SEEK_END)
        stream.seek(position)
        return size


class _ImportWriter:
    """Writes parsed dialogues of one project in bulk; keeps the running counts."""

    def __init__(self, project: Project, *, update: bool) -> None:
        self.project = project
        self.update = update
        self.result = ImportResult()
        self.now = timezone.now()
        self.task_ids: dict[str, int] = {}
        self.label_ids: dict[tuple[str, str], int] = {}
        self.task_label_ids: dict[str, dict[str, int]] = {}
        self.labels: dict[str, list[str]] = {}
        # What the new queue items need, per (utterance id, task id): the soft label and
        # agreement (for the heuristic trust) and the annotators who answered (imported labels).
        self.soft_of: dict[tuple[int, int], tuple[list[float], float]] = {}
        self.answered_by: dict[tuple[int, int], set[str]] = {}
        for label in Label.objects.filter(task__project=project).select_related("task"):
            self.task_ids[label.task.name] = label.task_id
            self.label_ids[(label.task.name, label.value)] = label.pk
            self.task_label_ids.setdefault(label.task.name, {})[label.value] = label.pk
            self.labels.setdefault(label.task.name, []).append(label.value)

    def write(self, records: list[DialogueRecord]) -> None:
        known = dict(
            Dialogue.objects.filter(
                project=self.project, external_id__in=[r.external_id for r in records]
            ).values_list("external_id", "id")
        )
        new = [r for r in records if r.external_id not in known]
        old = [r for r in records if r.external_id in known]
        users = self._users(records)
        if new:
            self._create(new, users)
        if old and self.update:
            self._update(old, known, users)
        elif old:
            self.result.skipped += len(old)

    def _users(self, records: list[DialogueRecord]) -> dict[str, int]:
        names = {
            h.annotator
            for r in records
            for t in r.turns
            for answers in t.human.values()
            for h in answers
            if h.annotator
        }
        if not names:
            return {}
        user_model = get_user_model()
        return dict(
            user_model.objects.filter(username__in=names).values_list("username", "id")
        )

    def _create(self, records: list[DialogueRecord], users: dict[str, int]) -> None:
        dialogue_ids = _allocate_ids(Dialogue, len(records))
        _insert_rows(
            Dialogue,
            ["id", "project_id", "external_id", "metadata", "created_at", "updated_at"],
            [
                (
                    pk,
                    self.project.pk,
                    r.external_id,
                    _json(r.metadata),
                    self.now,
                    self.now,
                )
                for pk, r in zip(dialogue_ids, records, strict=True)
            ],
        )
        turns = [
            (d, t) for d, r in zip(dialogue_ids, records, strict=True) for t in r.turns
        ]
        utterance_ids = _allocate_ids(Utterance, len(turns))
        _insert_rows(
            Utterance,
            ["id", "dialogue_id", "position", "speaker", "text", "timestamp"],
            [
                (pk, d, t.position, t.speaker, t.text, t.timestamp)
                for pk, (d, t) in zip(utterance_ids, turns, strict=True)
            ],
        )
        pairs = [(pk, t) for pk, (_, t) in zip(utterance_ids, turns, strict=True)]
        self._write_labels(pairs, users)
        self._queue_items(utterance_ids)
        self.result.created += len(records)
        self.result.utterances += len(turns)

    def _update(
        self,
        records: list[DialogueRecord],
        known: dict[str, int],
        users: dict[str, int],
    ) -> None:
        ids = [known[r.external_id] for r in records]
        existing = {
            (u.dialogue_id, u.position): u
            for u in Utterance.objects.filter(dialogue_id__in=ids)
        }
        changed_dialogues = []
        for record in records:
            dialogue = Dialogue(pk=known[record.external_id], metadata=record.metadata)
            dialogue.updated_at = self.now
            changed_dialogues.append(dialogue)
        Dialogue.objects.bulk_update(changed_dialogues, ["metadata", "updated_at"])

        to_update: list[Utterance] = []
        to_create: list[tuple[Utterance, Any]] = []
        for record in records:
            for turn in record.turns:
                utt = existing.get((known[record.external_id], turn.position))
                if utt is None:
                    new = Utterance(
                        dialogue_id=known[record.external_id],
                        position=turn.position,
                        speaker=turn.speaker,
                        text=turn.text,
                        timestamp=turn.timestamp,
                    )
                    to_create.append((new, turn))
                else:
                    utt.speaker, utt.text, utt.timestamp = (
                        turn.speaker,
                        turn.text,
                        turn.timestamp,
                    )
                    to_update.append(utt)
        Utterance.objects.bulk_update(
            to_update, ["speaker", "text", "timestamp"], batch_size=2000
        )
        Utterance.objects.bulk_create([u for u, _ in to_create], batch_size=5000)

        turn_of = {
            (known[r.external_id], t.position): t for r in records for t in r.turns
        }
        pairs = [(u.pk, turn_of[(u.dialogue_id, u.position)]) for u in to_update]
        # The file's LLM answers replace those stored for each task it gives.
        for task_name, task_id in self.task_ids.items():
            replaced = [pk for pk, turn in pairs if task_name in turn.llm]
            if replaced:
                LlmLabel.objects.filter(
                    utterance_id__in=replaced, task_id=task_id
                ).delete()
                SoftLabel.objects.filter(
                    utterance_id__in=replaced, task_id=task_id
                ).delete()
        pairs += [(u.pk, turn) for u, turn in to_create]
        self._write_labels(pairs, users, skip_known_human=True)
        self._queue_items([u.pk for u, _ in to_create])
        for task_id in self.task_ids.values():
            _queue_heuristic_trust(task_id, utterance_ids=[u.pk for u in to_update])
        self.result.updated += len(records)
        self.result.utterances += len(pairs)

    def _write_labels(
        self,
        pairs: Iterable[tuple[int, Any]],
        users: dict[str, int],
        *,
        skip_known_human: bool = False,
    ) -> None:
        pairs = list(pairs)
        llm_rows: list[tuple[Any, ...]] = []
        soft_rows: list[tuple[Any, ...]] = []
        human_rows: list[tuple[Any, ...]] = []
        known_human = (
            self._known_human([pk for pk, _ in pairs]) if skip_known_human else set()
        )
        now = self.now
        for utterance_id, turn in pairs:
            for task_name, answers in turn.llm.items():
                task_id = self.task_ids[task_name]
                label_ids = self.task_label_ids[task_name]
                for a in answers:
                    dist_json = _json(a.distribution)
                    llm_rows.append((
                        utterance_id, task_id, a.prompt, a.model, label_ids[a.label],
                        a.confidence, dist_json, now,
                    ))  # fmt: skip
                if len(answers) == 1:  # the ensemble of one answer is that answer
                    dist = answers[0].distribution
                    best = max(dist, key=dist.__getitem__)
                    soft_rows.append((
                        utterance_id, task_id, dist_json, label_ids[best], dist[best], 1.0, 1,
                        now,
                    ))  # fmt: skip
                    vector = [dist[label] for label in self.labels[task_name]]
                    self.soft_of[(utterance_id, task_id)] = (vector, 1.0)
                else:
                    soft_rows.append(self._soft_row(utterance_id, task_name, answers))
            for task_name, humans in turn.human.items():
                task_id = self.task_ids[task_name]
                for h in humans:
                    self.answered_by.setdefault((utterance_id, task_id), set()).add(
                        h.annotator
                    )
                    label_id = self.label_ids[(task_name, h.label)]
                    key = (utterance_id, task_id, label_id, h.annotator)
                    if key in known_human or (*key, h.created_at) in known_human:
                        continue
                    human_rows.append((
                        utterance_id, task_id, label_id, users.get(h.annotator), h.annotator,
                        HumanLabel.Source.IMPORT.value, h.created_at or self.now,
                    ))  # fmt: skip
        _insert_rows(
            LlmLabel,
            ["utterance_id", "task_id", "prompt", "model", "label_id", "confidence",
             "distribution", "created_at"],
            llm_rows,
        )  # fmt: skip
        _insert_rows(
            SoftLabel,
            ["utterance_id", "task_id", "distribution", "label_id", "confidence", "agreement",
             "n_sources", "updated_at"],
            soft_rows,
        )  # fmt: skip
        _insert_rows(
            HumanLabel,
            ["utterance_id", "task_id", "label_id", "annotator_id", "annotator_name", "source",
             "created_at"],
            human_rows,
        )  # fmt: skip

    def _soft_row(
        self, utterance_id: int, task_name: str, answers: list[LlmAnswer]
    ) -> tuple[Any, ...]:
        labels = self.labels[task_name]
        dists = [[a.distribution[label] for label in labels] for a in answers]
        mean = soft_label(dists)
        best = max(range(len(labels)), key=mean.__getitem__)
        agree = agreement(dists, mean)
        self.soft_of[(utterance_id, self.task_ids[task_name])] = (list(mean), agree)
        return (
            utterance_id, self.task_ids[task_name], _json(dict(zip(labels, mean, strict=True))),
            self.task_label_ids[task_name][labels[best]], mean[best], agree,
            len(answers), self.now,
        )  # fmt: skip

    def _queue_items(self, utterance_ids: list[int]) -> None:
        """Queue items of new utterances, in the import's own transaction: an import that
        commits has its items, and its cost grows with the file, not with the project.

        Each item gets the heuristic trust of its soft label (0 without one: nothing to trust),
        the overlap draw, and the answers of the human labels the file brought.
        """
        fraction = settings.PARLEY_OVERLAP_FRACTION
        rows: list[tuple[Any, ...]] = []
        for task_id in self.task_ids.values():
            known = [pk for pk in utterance_ids if (pk, task_id) in self.soft_of]
            trusts = dict.fromkeys(utterance_ids, 0.0)
            if known:
                vectors = np.array([self.soft_of[(pk, task_id)][0] for pk in known])
                agree = np.array([self.soft_of[(pk, task_id)][1] for pk in known])
                scores = trust.heuristic_trust(trust.signals(vectors, agree))
                trusts.update(zip(known, (float(t) for t in scores), strict=True))
            for pk in utterance_ids:
                required = 2 if _needs_two(pk, fraction) else 1
                answers = min(len(self.answered_by.get((pk, task_id), ())), required)
                rows.append((
                    pk, task_id, trusts[pk], QueueItem.TrustSource.HEURISTIC.value,
                    required, answers, answers < required, self.now,
                ))  # fmt: skip
        _insert_rows(
            QueueItem,
            ["utterance_id", "task_id", "trust", "trust_source", "required", "answers",
             "open", "updated_at"],
            rows,
        )  # fmt: skip

    def _known_human(self, utterance_ids: list[int]) -> set[tuple[Any, ...]]:
        """Keys of imported human labels already stored, with and without their time."""
        known: set[tuple[Any, ...]] = set()
        rows = HumanLabel.objects.filter(
            utterance_id__in=utterance_ids, source=HumanLabel.Source.IMPORT
        ).values_list(
            "utterance_id", "task_id", "label_id", "annotator_name", "created_at"
        )
        for *key, created_at in rows:
            known.add(tuple(key))
            known.add((*key, created_at))
        return known


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _allocate_ids(model: type[Any], n: int) -> list[int]:
    """Reserve `n` primary keys of `model`'s table, so that rows can be copied in with them.

    PostgreSQL: from the identity sequence (safe under concurrency). SQLite: after the
    AUTOINCREMENT counter, which is safe because an import holds SQLite's write lock from
    its first statement (IMMEDIATE transactions) and inserting explicit ids advances it.
    """
    if n == 0:
        return []
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [table, n],
            )
            return [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
        row = cursor.fetchone()
        if row is None:
            cursor.execute(
                f"SELECT COALESCE(MAX(id), 0) FROM {connection.ops.quote_name(table)}"
            )
            row = cursor.fetchone()
        start = int(row[0]) + 1
        return list(range(start, start + n))


def _insert_rows(
    model: type[Any], columns: list[str], rows: list[tuple[Any, ...]]
) -> None:
    """Insert plain rows: COPY on PostgreSQL, executemany elsewhere. No ids come back."""
    if not rows:
        return
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    cols = ", ".join(quote(c) for c in columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            from psycopg.copy import QueuedLibpqWriter

            # The queued writer sends from a thread while this one formats the next rows.
            raw = cursor.cursor
            with raw.copy(
                f"COPY {table} ({cols}) FROM STDIN", writer=QueuedLibpqWriter(raw)
            ) as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join(["%s"] * len(columns))
            cursor.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)


# --- Import jobs (the admin upload and the API run through a worker) --------------------------


def import_job_create(
    *,
    project: Project,
    upload: UploadedFile,
    user: User | None,
    fmt: str | None = None,
    update: bool = False,
) -> ImportJob:
    """Store an uploaded file and queue its import on a worker.

    The job exists once this returns, even if the broker is down: its message is then sent
    by the sweeper (annotate/jobs.py).
    """
    from .tasks import import_transcripts

    name = upload.name or "upload"
    fmt = fmt or format_for(name)
    if upload.size and upload.size > settings.PARLEY_IMPORT_MAX_FILE_MB * 1024 * 1024:
        raise TranscriptError(
            f"file is larger than the limit of {settings.PARLEY_IMPORT_MAX_FILE_MB} MB",
            file=name,
        )
    with transaction.atomic():
        job = ImportJob.objects.create(
            project=project,
            file=upload,
            original_name=name,
            format=fmt,
            update_existing=update,
            created_by=user,
            nudged_at=timezone.now(),
        )
        enqueue_on_commit(import_transcripts, job.pk)
    return job


IMPORT_LOCK = "import"


def import_job_execute(*, job_id: int) -> None:
    """Run a queued import job; a job already claimed (a redelivery) is left alone.

    The import, its queue items and the job's "succeeded" are one transaction, which holds
    the job's lock while it runs: a worker killed anywhere in it leaves the database as it
    was and the job "running" under a free lock, which the sweeper puts back in the queue.
    """
    claimed = ImportJob.objects.filter(
        pk=job_id, status=ImportJob.Status.QUEUED
    ).update(
        status=ImportJob.Status.RUNNING,
        started_at=timezone.now(),
        attempts=F("attempts") + 1,
    )
    if not claimed:
        return
    job = ImportJob.objects.select_related("project").get(pk=job_id)

    def progress(done: int, total: int) -> None:
        cache.set(job.progress_cache_key, (done, total), timeout=24 * 3600)

    try:
        with transaction.atomic():
            hold_job_lock(IMPORT_LOCK, job_id)
            with job.file.open("rb") as stream:
                result = transcripts_import(
                    project=job.project,
                    stream=stream,
                    name=job.original_name,
                    fmt=job.format,
                    update=job.update_existing,
                    on_progress=progress,
                )
            _import_job_finish(
                job_id, status=ImportJob.Status.SUCCEEDED, **result.as_dict()
            )
    except TranscriptError as exc:
        _import_job_finish(job_id, status=ImportJob.Status.FAILED, error=str(exc))
    except Exception as exc:
        logger.exception("import job %s failed", job_id)
        _import_job_finish(
            job_id, status=ImportJob.Status.FAILED, error=f"internal error: {exc}"
        )
        raise


def _import_job_finish(job_id: int, **fields: Any) -> None:
    ImportJob.objects.filter(pk=job_id).update(finished_at=timezone.now(), **fields)


def import_job_progress(job: ImportJob) -> float:
    """Share of the file read so far, 0..1."""
    if job.is_finished:
        return 1.0
    value = cache.get(job.progress_cache_key)
    if not value:
        return 0.0
    done, total = value
    return min(1.0, done / total) if total else 0.0


# --- LLM teacher runs ---------------------------------------------------------------------

ANSWER_FORMAT = (
    "You label utterances of dialogues. Answer with JSON only, no other text: "
    '{{"label": "<one of: {labels}>", "confidence": <your confidence that the label is right, '
    "between 0 and 1>}}"
)


class LlmNotConfigured(Exception):
    """No LLM provider is configured (LLM_BASE_URL)."""


def llm_settings() -> LlmSettings:
    if not settings.LLM_BASE_URL:
        raise LlmNotConfigured("set LLM_BASE_URL and LLM_MODEL to label with an LLM")
    return LlmSettings(
        base_url=settings.LLM_BASE_URL, model=settings.LLM_MODEL, api_key=settings.LLM_API_KEY,
        concurrency=settings.LLM_CONCURRENCY, requests_per_second=settings.LLM_REQUESTS_PER_SECOND,
        timeout=settings.LLM_TIMEOUT_S, max_retries=settings.LLM_MAX_RETRIES,
        logprobs=settings.LLM_LOGPROBS, samples=settings.LLM_SAMPLES,
    )  # fmt: skip


def llm_run_request(*, task: LabelTask, requested_by: User | None = None) -> LlmRun:
    """Queue an LLM run for `task`, or return the one already queued or running."""
    from .tasks import llm_label_run

    model = llm_settings().model
    with transaction.atomic():
        active = (
            LlmRun.objects.select_for_update()
            .filter(task=task, status__in=[LlmRun.Status.QUEUED, LlmRun.Status.RUNNING])
            .first()
        )
        if active is None:
            active = LlmRun.objects.create(
                task=task, model=model, requested_by=requested_by
            )
        elif active.status == LlmRun.Status.QUEUED or (
            active.lease_until and active.lease_until > timezone.now()
        ):
            return active  # already on its way (or the sweeper's), or being worked on
        # new, or its worker died (lease expired): hand it to a worker
        LlmRun.objects.filter(pk=active.pk).update(nudged_at=timezone.now())
        enqueue_on_commit(llm_label_run, active.pk)
    return active


def prompt_messages(
    prompt: PromptTemplate,
    labels: list[str],
    utterance: Utterance,
    context: list[Utterance],
) -> list[dict[str, str]]:
    """The chat messages of one prompt of the bank for one utterance.

    The template may use {task}, {labels}, {guidelines}, {context}, {speaker} and {utterance};
    {context} holds the prompt's `context_turns` previous turns, one "speaker: text" a line.
    """
    task = prompt.task
    shown = context[-prompt.context_turns :] if prompt.context_turns else []
    values = {
        "task": task.title or task.name,
        "labels": ", ".join(labels),
        "guidelines": task.guidelines,
        "context": "\n".join(f"{u.speaker}: {u.text}" for u in shown),
        "speaker": utterance.speaker,
        "utterance": f"{utterance.speaker}: {utterance.text}",
    }
    return [
        {"role": "system", "content": ANSWER_FORMAT.format(labels=", ".join(labels))},
        {"role": "user", "content": prompt.template.format_map(_Blank(values))},
    ]


class _Blank(dict[str, str]):
    """format_map values where an unknown {name} renders as itself, not a KeyError."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def llm_run_execute(
    *,
    run_id: int,
    client: ChatClient | None = None,
    batch_size: int = 64,
    lease_s: int | None = None,
) -> None:
    """Ask the LLM for every (utterance, active prompt) pair of the run's task still missing.

    Claims the run (queued, or running with an expired lease: a crashed worker's run resumes).
    Pairs are answered concurrently (LLM_CONCURRENCY) and written a batch at a time, each
    batch in its own transaction with the soft labels it changes, so a crash loses at most
    one batch of answers and never leaves a half-written one. A malformed answer is asked
    again once, then recorded as an LlmFailure. An endpoint that fails for good (after its
    retries) fails the run; asking again later resumes where it stopped. The lease
    (PARLEY_JOB_STALE_S by default) is renewed after every batch; once it runs out, the
    sweeper sends the run to a worker again.
    """
    lease_s = lease_s or settings.PARLEY_JOB_STALE_S
    now = timezone.now()
    claimed = (
        LlmRun.objects.filter(pk=run_id)
        .filter(Q(status=LlmRun.Status.QUEUED) | Q(status=LlmRun.Status.RUNNING, lease_until__lt=now))
        .update(status=LlmRun.Status.RUNNING, lease_until=now + timedelta(seconds=lease_s),
                started_at=Coalesce("started_at", Value(now)), error="")
    )  # fmt: skip
    if not claimed:
        return
    run = LlmRun.objects.select_related("task").get(pk=run_id)
    client = client or ChatClient(llm_settings())
    started = time.monotonic()
    task = run.task
    labels = list(task.labels.order_by("order", "pk").values_list("value", flat=True))
    prompts = list(task.prompts.filter(active=True).order_by("name"))
    if not prompts:
        _llm_run_finish(
            run,
            LlmRun.Status.FAILED,
            started,
            client,
            error="the task has no active prompt",
        )
        return
    missing = _llm_missing_pairs(run, prompts)
    LlmRun.objects.filter(pk=run.pk).update(
        total=F("done") + F("failed") + len(missing)
    )
    try:
        with ThreadPoolExecutor(max_workers=client.settings.concurrency) as pool:
            for start in range(0, len(missing), batch_size):
                batch = missing[start : start + batch_size]
                answers = list(
                    pool.map(
                        lambda pair: _llm_ask(client, labels, *pair),
                        _with_context(batch),
                    )
                )
                _llm_store(run, task, labels, answers)
                LlmRun.objects.filter(pk=run.pk).update(
                    lease_until=timezone.now() + timedelta(seconds=lease_s)
                )
    except LlmError as exc:
        _llm_run_finish(run, LlmRun.Status.FAILED, started, client, error=str(exc))
        return
    except Exception as exc:
        logger.exception("LLM run %s failed", run.pk)
        _llm_run_finish(
            run, LlmRun.Status.FAILED, started, client, error=f"internal error: {exc}"
        )
        raise
    queue_sync(task=task)
    _llm_run_finish(run, LlmRun.Status.SUCCEEDED, started, client)


def _llm_missing_pairs(
    run: LlmRun, prompts: list[PromptTemplate]
) -> list[tuple[int, PromptTemplate]]:
    """(utterance id, prompt) pairs with neither an answer nor a failure for the run's model."""
    task = run.task
    missing: list[tuple[int, PromptTemplate]] = []
    for prompt in prompts:
        answered = LlmLabel.objects.filter(
            task=task, prompt=prompt.name, model=run.model, utterance=OuterRef("pk")
        )
        failed = LlmFailure.objects.filter(
            task=task, prompt=prompt.name, model=run.model, utterance=OuterRef("pk")
        )
        ids = (
            Utterance.objects.filter(dialogue__project_id=task.project_id)
            .filter(~Exists(answered), ~Exists(failed))
            .order_by("pk").values_list("pk", flat=True)
        )  # fmt: skip
        missing.extend((pk, prompt) for pk in ids)
    missing.sort(key=lambda pair: (pair[0], pair[1].name))
    return missing


def _with_context(
    batch: list[tuple[int, PromptTemplate]],
) -> list[tuple[PromptTemplate, Utterance, list[Utterance]]]:
    utterances = Utterance.objects.in_bulk([pk for pk, _ in batch])
    need = max((p.context_turns for _, p in batch), default=0)
    dialogues: dict[int, dict[int, Utterance]] = {}
    if need:
        wanted = {u.dialogue_id for u in utterances.values()}
        for u in Utterance.objects.filter(dialogue_id__in=wanted):
            dialogues.setdefault(u.dialogue_id, {})[u.position] = u
    out = []
    for pk, prompt in batch:
        u = utterances[pk]
        turns = dialogues.get(u.dialogue_id, {})
        context = [
            turns[p] for p in range(max(0, u.position - need), u.position) if p in turns
        ]
        out.append((prompt, u, context))
    return out


@dataclass
class _Asked:
    utterance: Utterance
    prompt: PromptTemplate
    answer: Answer | None = None
    error: str = ""
    raw: str = ""


def _llm_ask(
    client: ChatClient, labels: list[str], prompt: PromptTemplate, utterance: Utterance,
    context: list[Utterance],
) -> _Asked:  # fmt: skip
    """One pair, on a pool thread (no database access here)."""
    messages = prompt_messages(prompt, labels, utterance, context)
    try:
        return _Asked(utterance, prompt, client.ask(messages, labels))
    except MalformedAnswer:
        pass  # asked again once: a sampled or truncated answer may come out right
    try:
        return _Asked(utterance, prompt, client.ask(messages, labels))
    except MalformedAnswer as exc:
        return _Asked(utterance, prompt, error=str(exc), raw=exc.raw[:4000])


@transaction.atomic
def _llm_store(
    run: LlmRun, task: LabelTask, labels: list[str], asked: list[_Asked]
) -> None:
    label_ids = dict(task.labels.values_list("value", "pk"))
    LlmLabel.objects.bulk_create(
        [LlmLabel(utterance=a.utterance, task=task, prompt=a.prompt.name, model=run.model,
                  label_id=label_ids[a.answer.label], confidence=a.answer.confidence,
                  distribution=a.answer.distribution)
         for a in asked if a.answer],
        ignore_conflicts=True,  # a resumed run may race a slow earlier attempt: first answer wins
    )  # fmt: skip
    LlmFailure.objects.bulk_create(
        [LlmFailure(run=run, utterance=a.utterance, task=task, prompt=a.prompt.name,
                    model=run.model, error=a.error, raw=a.raw)
         for a in asked if not a.answer],
        ignore_conflicts=True,
    )  # fmt: skip
    soft_labels_refresh(
        task=task, utterance_ids=[a.utterance.pk for a in asked if a.answer]
    )
    n_done = sum(1 for a in asked if a.answer)
    LlmRun.objects.filter(pk=run.pk).update(
        done=F("done") + n_done, failed=F("failed") + len(asked) - n_done
    )


def soft_labels_refresh(*, task: LabelTask, utterance_ids: Sequence[int]) -> None:
    """Recompute the ensemble soft label and prompt agreement of these utterances."""
    if not utterance_ids:
        return
    values = list(task.labels.order_by("order", "pk").values_list("value", "pk"))
    by_utterance: dict[int, list[dict[str, float]]] = {}
    for utterance_id, dist in LlmLabel.objects.filter(
        task=task, utterance_id__in=set(utterance_ids)
    ).values_list("utterance_id", "distribution"):
        by_utterance.setdefault(utterance_id, []).append(dist)
    rows = []
    for utterance_id, dists in by_utterance.items():
        vectors = [[float(d.get(value, 0.0)) for value, _ in values] for d in dists]
        mean = soft_label(vectors)
        best = max(range(len(values)), key=mean.__getitem__)
        rows.append(SoftLabel(
            utterance_id=utterance_id, task=task, label_id=values[best][1], confidence=mean[best],
            distribution={value: p for (value, _), p in zip(values, mean, strict=True)},
            agreement=agreement(vectors, mean), n_sources=len(vectors),
        ))  # fmt: skip
    SoftLabel.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["utterance", "task"],
        update_fields=["distribution", "label", "confidence", "agreement", "n_sources", "updated_at"],
    )  # fmt: skip


def _llm_run_finish(
    run: LlmRun, status: str, started: float, client: ChatClient, *, error: str = ""
) -> None:
    usage = client.usage
    LlmRun.objects.filter(pk=run.pk).update(
        status=status, error=error, finished_at=timezone.now(), lease_until=None,
        seconds=F("seconds") + (time.monotonic() - started),
        requests=F("requests") + usage.requests, retries=F("retries") + usage.retries,
        prompt_tokens=F("prompt_tokens") + usage.prompt_tokens,
        completion_tokens=F("completion_tokens") + usage.completion_tokens,
    )  # fmt: skip
    usage.requests = usage.retries = usage.prompt_tokens = usage.completion_tokens = 0


# --- The annotator queue (design: annotate/queue.md) -------------------------------------------


def _needs_two(utterance_id: int, fraction: float) -> bool:
    """Whether an item goes to two annotators: a fixed pseudo-random draw per utterance."""
    return ((utterance_id * 2654435761) % 2**32) / 2**32 < fraction


def project_queue_sync(*, project: Project) -> int:
    """`queue_sync` every task of the project (after an import)."""
    return sum(queue_sync(task=task) for task in project.tasks.all())


def queue_sync(*, task: LabelTask) -> int:
    """Give every utterance of the task's project a queue item; refresh the LLM-only trust.

    New items get the heuristic trust of their soft label (0 without one: nothing to trust)
    and count the human labels they already have (imported ones). Items not yet scored by a
    student have their heuristic trust refreshed (new LLM answers change it). Returns the
    number of items created.
    """
    fraction = settings.PARLEY_OVERLAP_FRACTION
    known = set(
        QueueItem.objects.filter(task=task).values_list("utterance_id", flat=True)
    )
    new_ids = [
        pk for pk in Utterance.objects.filter(dialogue__project_id=task.project_id)
        .order_by("pk").values_list("pk", flat=True) if pk not in known
    ]  # fmt: skip
    answered = dict(
        HumanLabel.objects.filter(task=task, utterance_id__in=new_ids, retraction__isnull=True)
        .values("utterance_id").annotate(n=Count("annotator_name", distinct=True))
        .values_list("utterance_id", "n")
    )  # fmt: skip
    items = []
    for pk in new_ids:
        required = 2 if _needs_two(pk, fraction) else 1
        answers = min(answered.get(pk, 0), required)
        items.append(QueueItem(utterance_id=pk, task=task, required=required, answers=answers,
                               open=answers < required))  # fmt: skip
    QueueItem.objects.bulk_create(items, batch_size=2000, ignore_conflicts=True)
    _queue_heuristic_trust(task.pk)
    return len(items)


def _queue_heuristic_trust(
    task_id: int, *, utterance_ids: Collection[int] | None = None
) -> None:
    """Refresh the LLM-only trust of the task's items no student has scored yet (all of
    them, or those of `utterance_ids`), from their current soft labels."""
    labels = list(
        Label.objects.filter(task_id=task_id)
        .order_by("order", "pk")
        .values_list("value", flat=True)
    )
    items = QueueItem.objects.filter(task_id=task_id, trust_version__isnull=True)
    if utterance_ids is not None:
        if not utterance_ids:
            return
        items = items.filter(utterance_id__in=list(utterance_ids))
    rows = list(items.values_list("pk", "utterance_id"))
    for start in range(0, len(rows), 5000):
        chunk = rows[start : start + 5000]
        soft = {
            utterance_id: (dist, agree)
            for utterance_id, dist, agree in SoftLabel.objects.filter(
                task_id=task_id, utterance_id__in=[u for _, u in chunk]
            ).values_list("utterance_id", "distribution", "agreement")
        }
        known = [(pk, u) for pk, u in chunk if u in soft]
        # no LLM label: nothing to trust
        values = dict.fromkeys((pk for pk, _ in chunk), 0.0)
        if known:
            vectors = np.array(
                [[float(soft[u][0].get(v, 0.0)) for v in labels] for _, u in known]
            )
            agree = np.array([soft[u][1] for _, u in known])
            scores = trust.heuristic_trust(trust.signals(vectors, agree))
            values.update(
                (pk, float(t)) for (pk, _), t in zip(known, scores, strict=True)
            )
        updates = [
            QueueItem(pk=pk, trust=t, trust_source=QueueItem.TrustSource.HEURISTIC)
            for pk, t in values.items()
        ]
        QueueItem.objects.bulk_update(
            updates, ["trust", "trust_source"], batch_size=2000
        )


def queue_claim(
    *, task: LabelTask, annotator: User, exclude: Collection[int] = ()
) -> QueueItem | None:
    """The item this annotator should label now, claimed for them; None when nothing is left.

    The annotator's own unexpired claim comes back first (a reload keeps the item). Else the
    open item with the lowest trust that nobody holds, that they have neither answered nor
    skipped, is locked with SKIP LOCKED (so concurrent annotators never wait on or get the same
    row) and claimed with a lease. `exclude`: item ids the caller already shows (the workspace
    holds the current item and the next one, fetched ahead).
    """
    now = timezone.now()
    lease = timedelta(seconds=settings.PARLEY_CLAIM_LEASE_S)
    with transaction.atomic():
        held = (
            QueueItem.objects.select_for_update()
            .filter(task=task, claimed_by=annotator, lease_until__gt=now, open=True)
            .exclude(pk__in=exclude)
            .order_by("trust", "pk")
            .first()
        )
        if held is not None:
            held.lease_until = now + lease
            held.save(update_fields=["lease_until", "updated_at"])
            return held
        mine = HumanLabel.objects.filter(
            task=task, utterance=OuterRef("utterance"), annotator=annotator,
            retraction__isnull=True,
        )  # fmt: skip
        skipped = QueueSkip.objects.filter(item=OuterRef("pk"), annotator=annotator)
        item = (
            QueueItem.objects.filter(task=task, open=True)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
            .exclude(Exists(mine))
            .exclude(Exists(skipped))
            .exclude(pk__in=exclude)
            .order_by("trust", "pk")
            .select_for_update(skip_locked=True, of=("self",))
            .first()
        )
        if item is None:
            return None
        item.claimed_by = annotator
        item.lease_until = now + lease
        item.save(update_fields=["claimed_by", "lease_until", "updated_at"])
        return item


def queue_renew(*, item_id: int, annotator: User) -> bool:
    """Extend the annotator's claim on the item; False when they no longer hold it."""
    return bool(
        QueueItem.objects.filter(pk=item_id, claimed_by=annotator, lease_until__gt=timezone.now())
        .update(lease_until=timezone.now() + timedelta(seconds=settings.PARLEY_CLAIM_LEASE_S))
    )  # fmt: skip


def queue_release(*, item_id: int, annotator: User, after_s: int = 0) -> None:
    """Give the item back now, or let the claim run out in `after_s` seconds.

    The page asks for the latter when it is left (`after_s`): a reload comes back within it
    and keeps the item; a closed tab frees it shortly.
    """
    claims = QueueItem.objects.filter(pk=item_id, claimed_by=annotator)
    if after_s:
        claims.filter(
            lease_until__gt=timezone.now() + timedelta(seconds=after_s)
        ).update(lease_until=timezone.now() + timedelta(seconds=after_s))
    else:
        claims.update(claimed_by=None, lease_until=None)


@transaction.atomic
def queue_skip(*, item_id: int, annotator: User) -> None:
    """Release the item and never offer it to this annotator again."""
    item = QueueItem.objects.filter(pk=item_id).first()
    if item is None:
        return
    QueueSkip.objects.get_or_create(item=item, annotator=annotator)
    queue_release(item_id=item_id, annotator=annotator)


class SubmitError(Exception):
    """The submit cannot be taken (unknown label, an item this annotator already answered, an
    item another annotator holds, or an item already closed)."""


def label_submit(
    *, item_id: int, annotator: User, label: str, submission_key: str
) -> HumanLabel:
    """Store the annotator's answer to a queue item, once.

    Idempotent, under races too: a submit resent with the same `submission_key` returns the
    stored label, even when the two copies arrive at once (the key is looked up again once
    the item's row lock is held, so the second copy sees the first one's label). The rules:
    an item another annotator holds under a live claim is refused; a closed item is refused
    with its outcome (it never gets a label beyond those it required); the annotator's own
    claim that expired meanwhile still submits (work is never thrown away); an annotator
    answers an item once (a correction goes through undo). Counts towards the automatic
    retrain.
    """
    stored = _submitted(submission_key, annotator)
    if stored is not None:
        return stored
    with transaction.atomic():
        item = (
            QueueItem.objects.select_for_update().select_related("task").get(pk=item_id)
        )
        stored = _submitted(
            submission_key, annotator
        )  # a concurrent copy got here first
        if stored is not None:
            return stored
        chosen = Label.objects.filter(task=item.task, value=label).first()
        if chosen is None:
            raise SubmitError(f"unknown label {label!r}")
        answered = HumanLabel.objects.filter(
            utterance_id=item.utterance_id,
            task=item.task,
            annotator=annotator,
            retraction__isnull=True,
        )
        if answered.exists():
            raise SubmitError("you have already answered this item")
        _check_submittable(item, annotator)
        llm_label_id = (
            SoftLabel.objects.filter(utterance_id=item.utterance_id, task=item.task)
            .values_list("label_id", flat=True)
            .first()
        )
        human = HumanLabel.objects.create(
            utterance_id=item.utterance_id,
            task=item.task,
            label=chosen,
            annotator=annotator,
            annotator_name=annotator.get_username(),
            source=HumanLabel.Source.ANNOTATION,
            created_at=timezone.now(),
            submission_key=submission_key,
            llm_label_id=llm_label_id,
            trust=item.trust,
            trust_version_id=item.trust_version_id,
        )
        item.answers = min(item.answers + 1, item.required)
        item.open = item.answers < item.required
        if item.claimed_by_id == annotator.pk:
            item.claimed_by, item.lease_until = None, None
        item.save(
            update_fields=["answers", "open", "claimed_by", "lease_until", "updated_at"]
        )
        training_run_maybe_request(task=item.task)
    return human


def _submitted(submission_key: str, annotator: User) -> HumanLabel | None:
    """The label already stored under this key, if any (a resent submit)."""
    stored = HumanLabel.objects.filter(submission_key=submission_key).first()
    if stored is not None and stored.annotator_id != annotator.pk:
        raise SubmitError("this submission key belongs to another annotator")
    return stored


def _check_submittable(item: QueueItem, annotator: User) -> None:
    """Refuse a submit on a closed item, or on an item someone else holds right now."""
    if not item.open:
        outcome = (
            HumanLabel.objects.filter(
                utterance_id=item.utterance_id, task=item.task, retraction__isnull=True
            )
            .order_by("-created_at", "-pk")
            .values_list("label__value", flat=True)
            .first()
        )
        done = f" as “{outcome}”" if outcome else ""
        raise SubmitError(f"this item is already labelled{done}; nothing was added")
    held_by_other = (
        item.claimed_by_id is not None
        and item.claimed_by_id != annotator.pk
        and item.lease_until is not None
        and item.lease_until > timezone.now()
    )
    if held_by_other:
        raise SubmitError(
            "another annotator is working on this item; nothing was added"
        )


def label_undo(*, task: LabelTask, annotator: User) -> QueueItem | None:
    """Take back the annotator's last submit on `task` if it is within PARLEY_UNDO_GRACE_S.

    The label row stays (a LabelRetraction marks it); the item reopens and is claimed by the
    annotator again so they can answer anew. None when there is nothing to undo.
    """
    since = timezone.now() - timedelta(seconds=settings.PARLEY_UNDO_GRACE_S)
    with transaction.atomic():
        last = (
            HumanLabel.objects.select_for_update(of=("self",))
            .filter(task=task, annotator=annotator, source=HumanLabel.Source.ANNOTATION,
                    retraction__isnull=True, created_at__gte=since)
            .order_by("-created_at", "-pk").first()
        )  # fmt: skip
        if last is None:
            return None
        LabelRetraction.objects.create(label=last)
        item = QueueItem.objects.select_for_update().get(
            utterance_id=last.utterance_id, task=task
        )
        item.answers = max(item.answers - 1, 0)
        item.open = True
        item.claimed_by = annotator
        item.lease_until = timezone.now() + timedelta(
            seconds=settings.PARLEY_CLAIM_LEASE_S
        )
        item.save(
            update_fields=["answers", "open", "claimed_by", "lease_until", "updated_at"]
        )
    return item


@transaction.atomic
def flag_create(*, item_id: int, annotator: User, comment: str) -> Flag:
    """Flag an item for review: the lead sees it on the review page; the annotator moves on."""
    item = QueueItem.objects.get(pk=item_id)
    flag = Flag.objects.create(utterance_id=item.utterance_id, task_id=item.task_id,
                               annotator=annotator, comment=comment.strip() or "(no comment)")  # fmt: skip
    queue_skip(item_id=item_id, annotator=annotator)
    return flag


@transaction.atomic
def label_adjudicate(
    *, task: LabelTask, utterance_id: int, lead: User, label: str
) -> HumanLabel:
    """Record a lead's decision on a flagged or disputed item.

    The decision is a new HumanLabel with source "adjudication" (the annotators' labels stay),
    the item leaves the queue and its open flags are resolved.
    """
    chosen = Label.objects.get(task=task, value=label)
    decided = HumanLabel.objects.create(
        utterance_id=utterance_id, task=task, label=chosen, annotator=lead,
        annotator_name=lead.get_username(), source=HumanLabel.Source.ADJUDICATION,
        created_at=timezone.now(),
    )  # fmt: skip
    QueueItem.objects.filter(utterance_id=utterance_id, task=task).update(
        open=False, claimed_by=None, lease_until=None
    )
    Flag.objects.filter(
        utterance_id=utterance_id, task=task, resolved_at__isnull=True
    ).update(resolved_at=timezone.now(), resolved_by=lead)
    return decided


# --- Training runs and scoring (design: annotate/queue.md, "Retrain") ---------------------------


def training_run_request(
    *, task: LabelTask, requested_by: User | None = None
) -> TrainingRun:
    """Queue a training run for `task`, or return the one queued or running.

    At most one active run per task is a database constraint, so two requests racing each
    other end with one run.
    """
    from .tasks import train_student

    training_runs_fail_stale(task=task)
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(
                task=task,
                requested_by=requested_by,
                config=_learner_config(),
                nudged_at=timezone.now(),
            )
            enqueue_on_commit(train_student, run.pk)
    except IntegrityError:
        return TrainingRun.objects.get(
            task=task, status__in=TrainingRun.ACTIVE_STATUSES
        )
    return run


def job_stale_before() -> Any:
    """A running job whose last sign of life is older than this is taken for dead
    (PARLEY_JOB_STALE_S)."""
    return timezone.now() - timedelta(seconds=settings.PARLEY_JOB_STALE_S)


def training_runs_fail_stale(*, task: LabelTask | None = None) -> int:
    """A run whose worker died (no progress for PARLEY_JOB_STALE_S) would block every later
    run of the task (one active run per task): mark it failed so that a new one can start.
    Every task's, or one task's."""
    runs = TrainingRun.objects.filter(
        status=TrainingRun.Status.RUNNING, heartbeat_at__lt=job_stale_before()
    )
    if task is not None:
        runs = runs.filter(task=task)
    return runs.update(status=TrainingRun.Status.FAILED, finished_at=timezone.now(),
             error="the worker stopped reporting progress (crashed or killed); nothing was changed")  # fmt: skip


def _is_stale(run: TrainingRun) -> bool:
    return (
        run.status == TrainingRun.Status.RUNNING
        and run.heartbeat_at is not None
        and run.heartbeat_at < job_stale_before()
    )


def training_run_maybe_request(*, task: LabelTask) -> TrainingRun | None:
    """Start a retrain once PARLEY_RETRAIN_EVERY human labels arrived since the last run."""
    last = TrainingRun.objects.filter(task=task).order_by("-created_at").first()
    if (
        last is not None
        and last.status in TrainingRun.ACTIVE_STATUSES
        and not _is_stale(last)
    ):
        return None  # (a stale one is failed by training_run_request, only when it matters)
    new = HumanLabel.objects.filter(task=task, retraction__isnull=True).exclude(
        source=HumanLabel.Source.IMPORT
    )
    if last is not None:
        new = new.filter(created_at__gt=last.created_at)
    if (
        new.order_by()[: settings.PARLEY_RETRAIN_EVERY].count()
        < settings.PARLEY_RETRAIN_EVERY
    ):
        return None  # counted up to the threshold only: cheap however many labels exist
    return training_run_request(task=task)


def _learner_config() -> dict[str, Any]:
    return {
        "backbone": settings.LEARNER_BACKBONE, "objective": settings.LEARNER_OBJECTIVE,
        "epochs": settings.LEARNER_EPOCHS, "batch_size": settings.LEARNER_BATCH_SIZE,
        "max_length": settings.LEARNER_MAX_LENGTH, "context_turns": settings.LEARNER_CONTEXT_TURNS,
        "device": settings.LEARNER_DEVICE, "folds": settings.PARLEY_TRUST_FOLDS,
        "precision": settings.LEARNER_PRECISION,
    }  # fmt: skip


def fold_of(dialogue_id: str | int, folds: int) -> int:
    """The cross-fitting fold of a dialogue (stable across runs and processes)."""
    return int(hashlib.sha256(str(dialogue_id).encode()).hexdigest()[:8], 16) % folds


def training_run_execute(*, run_id: int) -> None:
    """Train the student of a queued run, then activate it and queue the pool's scoring.

    Trains one student on everything (the model that is exported and predicts) and one per
    dialogue fold on the other folds (for cross-fitted trust signals). Claimed with a
    conditional update, so a redelivered task does nothing. Training happens outside any
    transaction; the new ModelVersion is activated in one. On any error the run is marked
    failed with the error and the active model stays as it was.
    """
    claimed = TrainingRun.objects.filter(
        pk=run_id, status=TrainingRun.Status.QUEUED
    ).update(status=TrainingRun.Status.RUNNING, started_at=timezone.now(),
             heartbeat_at=timezone.now(), progress=0.0)  # fmt: skip
    if not claimed:
        return
    run = TrainingRun.objects.select_related("task").get(pk=run_id)
    try:
        version = _train_and_save(run)
    except Exception as exc:
        logger.exception("training run %s failed", run_id)
        TrainingRun.objects.filter(pk=run_id).update(
            status=TrainingRun.Status.FAILED, error=f"{type(exc).__name__}: {exc}",
            finished_at=timezone.now(),
        )  # fmt: skip
        return
    from .tasks import score_pool

    with transaction.atomic():
        ModelVersion.objects.filter(task=run.task, is_active=True).update(
            is_active=False
        )
        ModelVersion.objects.create(**version, is_active=True)
        TrainingRun.objects.filter(pk=run_id).update(
            status=TrainingRun.Status.SUCCEEDED, progress=1.0, finished_at=timezone.now(),
            metrics=version["metrics"],
        )  # fmt: skip
        enqueue_on_commit(score_pool, run.pk)


def _train_and_save(run: TrainingRun) -> dict[str, Any]:
    from learner import checkpoint
    from learner.model import StudentConfig
    from learner.training import Progress, TrainingConfig, train

    task, config = run.task, {**_learner_config(), **run.config}
    labels = list(task.labels.order_by("order", "pk").values_list("value", flat=True))
    examples = [ex for ex in selectors.training_examples(task=task) if ex.has_target]
    if not examples:
        raise ValueError("no utterance of this task has an LLM or a human label yet")
    student_config = StudentConfig(labels=labels, backbone=config["backbone"],
                                   context_turns=config["context_turns"], max_length=config["max_length"])  # fmt: skip
    training = TrainingConfig(objective=config["objective"], epochs=config["epochs"],
                              batch_size=config["batch_size"], device=config["device"],
                              precision=config.get("precision", "fp32"))  # fmt: skip
    folds = int(config["folds"])
    jobs = [("full", examples)]
    for k in range(folds):
        # A fold whose dialogues are all the labelled ones (a project of one dialogue, or of
        # a few that hash alike) has nothing to train on: no fold model; see predictions_store.
        rest = [ex for ex in examples if fold_of(ex.dialogue_id, folds) != k]
        if rest:
            jobs.append((f"fold-{k}", rest))
    number = (
        ModelVersion.objects.filter(task=task).aggregate(n=Max("version"))["n"] or 0
    ) + 1
    directory = Path(settings.DATA_DIR) / "models" / f"task-{task.pk}" / f"run-{run.pk}"
    metrics: dict[str, Any] = {}
    last_write = 0.0
    for j, (name, data) in enumerate(jobs):

        def progress(p: Progress, j: int = j) -> None:
            nonlocal last_write
            if time.monotonic() - last_write > 1.0 or p.fraction >= 1.0:
                last_write = time.monotonic()
                TrainingRun.objects.filter(pk=run.pk).update(
                    progress=min((j + p.fraction) / len(jobs), 0.99),
                    heartbeat_at=timezone.now(),
                )

        result = train(data, student_config, training, on_progress=progress)
        if name == "full":
            metrics = {
                "validation": result.validation.as_dict() if result.validation else None,
                "history": result.history, "seconds": result.seconds, "best_epoch": result.best_epoch,
                "train_utterances": len(data), "human_labels": sum(ex.human is not None for ex in data),
            }  # fmt: skip
        checkpoint.save(
            result.student,
            directory / name,
            version=number,
            metrics=metrics,
            training=config,
        )
    return {
        "task": task,
        "run": run,
        "version": number,
        "artifact_path": str(directory),
        "metrics": metrics,
    }


def predictions_store(*, run_id: int, chunk_size: int = 2000) -> None:
    """Score every utterance of the task with the run's model version; refresh the queue's trust.

    Predictions (stamped with the version) come from the full student. Trust uses the
    cross-fitted students: each utterance is scored by the fold model that did not train on
    its dialogue. With PARLEY_TRUST_MIN_HUMAN human labels (both outcomes present), a
    calibrated TrustModel is fitted on them; before that, the heuristic. Utterances already
    scored for this version are skipped, so a redelivered task only finishes the rest.
    """
    from learner import checkpoint
    from learner.training import predict_proba

    version = ModelVersion.objects.select_related("task").filter(run_id=run_id).first()
    if version is None:
        return
    task = version.task
    directory = Path(version.artifact_path)
    folds = int(
        (version.run.config if version.run else {}).get(
            "folds", settings.PARLEY_TRUST_FOLDS
        )
    )
    full, _ = checkpoint.load(directory / "full", device=settings.LEARNER_DEVICE)

    def fold_model(k: int) -> Any:
        # A fold trained on nothing has no model (see _train_and_save): its dialogues are
        # scored by the full student, the only one there is, which has seen them.
        path = directory / f"fold-{k}"
        if not path.exists():
            return full
        return checkpoint.load(path, device=settings.LEARNER_DEVICE)[0]

    fold_models = [fold_model(k) for k in range(folds)]
    label_ids = list(task.labels.order_by("order", "pk").values_list("pk", flat=True))

    def cross_fitted(examples: list[Example]) -> np.ndarray:
        out = np.zeros((len(examples), len(label_ids)))
        for k, model in enumerate(fold_models):
            index = [
                i
                for i, ex in enumerate(examples)
                if fold_of(ex.dialogue_id, folds) == k
            ]
            if index:
                out[index] = predict_proba(model, [examples[i] for i in index]).numpy()
        return out

    calibrated = _trust_model(task, cross_fitted)
    done = set(
        Prediction.objects.filter(model_version=version).values_list(
            "utterance_id", flat=True
        )
    )
    ids = [pk for pk in selectors.training_example_ids(task=task) if pk not in done]
    for start in range(0, len(ids), chunk_size):
        ModelVersion.objects.filter(pk=version.pk).update(
            scoring_heartbeat_at=timezone.now()
        )
        chunk = ids[start : start + chunk_size]
        examples = selectors.training_examples(task=task, utterance_ids=chunk)
        probabilities = predict_proba(full, examples).numpy()
        features = _trust_features(examples, len(label_ids), cross_fitted(examples))
        values = (
            calibrated.predict(features)
            if calibrated
            else trust.heuristic_trust(features)
        )
        has_llm = np.array([bool(ex.llm) for ex in examples])
        values = np.where(has_llm, values, 0.0)
        source = (
            QueueItem.TrustSource.CALIBRATED
            if calibrated
            else QueueItem.TrustSource.HEURISTIC
        )
        with transaction.atomic():
            Prediction.objects.bulk_create(
                [Prediction(utterance_id=pk, task=task, model_version=version,
                            probabilities=[round(float(p), 6) for p in probs],
                            label_id=label_ids[int(probs.argmax())], trust=float(t))
                 for pk, probs, t in zip(chunk, probabilities, values, strict=True)],
                ignore_conflicts=True,
            )  # fmt: skip
            items = dict(
                QueueItem.objects.filter(task=task, utterance_id__in=chunk).values_list(
                    "utterance_id", "pk"
                )
            )
            QueueItem.objects.bulk_update(
                [QueueItem(pk=items[pk], trust=float(t), trust_version=version, trust_source=source)
                 for pk, t in zip(chunk, values, strict=True) if pk in items],
                ["trust", "trust_version", "trust_source"], batch_size=2000,
            )  # fmt: skip
    ModelVersion.objects.filter(pk=version.pk).update(scored_at=timezone.now())
    from . import retention

    retention.model_files_prune(task=task)
    # The new version starts a new dashboard snapshot: compute it here, on the worker, rather
    # than on the first lead who looks.
    from . import dashboards

    dashboards.dashboard_compute(task=task)


def _trust_features(
    examples: list[Example], n_classes: int, student: np.ndarray
) -> np.ndarray:
    soft = np.array(
        [ex.soft if ex.llm else [1.0 / n_classes] * n_classes for ex in examples]
    )
    agree = np.array([ex.agreement if ex.llm else 0.0 for ex in examples])
    return trust.signals(soft, agree, student)


def _trust_model(
    task: LabelTask, cross_fitted: Callable[[list[Example]], np.ndarray]
) -> trust.TrustModel | None:
    """A calibrated trust model from the human labels, once there are enough of both outcomes."""
    labelled = list(
        HumanLabel.objects.filter(task=task)
        .values_list("utterance_id", flat=True)
        .distinct()
    )
    if len(labelled) < settings.PARLEY_TRUST_MIN_HUMAN:
        return None
    examples = [ex for ex in selectors.training_examples(task=task, utterance_ids=labelled)
                if ex.llm and ex.human is not None]  # fmt: skip
    n_classes = task.labels.count()
    features = _trust_features(examples, n_classes, cross_fitted(examples))
    right = np.array([float(np.argmax(ex.soft) == ex.human) for ex in examples])
    if len(examples) < settings.PARLEY_TRUST_MIN_HUMAN or right.min() == right.max():
        return None
    return trust.TrustModel().fit(features, right)


__all__ = [
    "ImportResult",
    "api_token_authenticate",
    "api_token_create",
    "import_job_create",
    "import_job_execute",
    "import_job_progress",
    "label_task_create",
    "llm_run_execute",
    "llm_run_request",
    "flag_create",
    "label_adjudicate",
    "label_submit",
    "label_undo",
    "predictions_store",
    "project_queue_sync",
    "prompt_messages",
    "queue_claim",
    "queue_release",
    "queue_renew",
    "queue_skip",
    "queue_sync",
    "soft_labels_refresh",
    "membership_set",
    "project_create",
    "training_run_execute",
    "training_run_maybe_request",
    "training_run_request",
    "transcripts_import",
]
