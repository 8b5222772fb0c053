"""The writer of an import: parsed dialogues in bulk (COPY on PostgreSQL), with their labels and
queue items, inside the import's transaction."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.utils import timezone

from learner import ensemble_summary, heuristic_trust, signals

from ..models import (
    Dialogue,
    HumanLabel,
    Label,
    LabelTask,
    LlmLabel,
    Project,
    QueueItem,
    SoftLabel,
    Utterance,
)
from ..transcripts import (
    DialogueRecord,
    LlmAnswer,
)
from .bulk import allocate_ids, insert_rows, json_text
from .queue import needs_two, queue_trust_refresh


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


class ImportWriter:
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
        dialogue_ids = allocate_ids(Dialogue, len(records))
        insert_rows(
            Dialogue,
            ["id", "project_id", "external_id", "metadata", "created_at", "updated_at"],
            [
                (
                    pk,
                    self.project.pk,
                    r.external_id,
                    json_text(r.metadata),
                    self.now,
                    self.now,
                )
                for pk, r in zip(dialogue_ids, records, strict=True)
            ],
        )
        turns = [
            (d, t) for d, r in zip(dialogue_ids, records, strict=True) for t in r.turns
        ]
        utterance_ids = allocate_ids(Utterance, len(turns))
        insert_rows(
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
            queue_trust_refresh(task_id, utterance_ids=[u.pk for u in to_update])
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
                    dist_json = json_text(a.distribution)
                    llm_rows.append(
                        (
                            utterance_id,
                            task_id,
                            a.prompt,
                            a.model,
                            label_ids[a.label],
                            a.confidence,
                            dist_json,
                            now,
                        )
                    )
                if len(answers) == 1:  # the ensemble of one answer is that answer
                    dist = answers[0].distribution
                    best = max(dist, key=dist.__getitem__)
                    soft_rows.append(
                        (
                            utterance_id,
                            task_id,
                            dist_json,
                            label_ids[best],
                            dist[best],
                            1.0,
                            1,
                            SoftLabel.Source.LLM,
                            now,
                        )
                    )
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
                    human_rows.append(
                        (
                            utterance_id,
                            task_id,
                            label_id,
                            users.get(h.annotator),
                            h.annotator,
                            HumanLabel.Source.IMPORT.value,
                            h.created_at or self.now,
                        )
                    )
        insert_rows(
            LlmLabel,
            [
                "utterance_id",
                "task_id",
                "prompt",
                "model",
                "label_id",
                "confidence",
                "distribution",
                "created_at",
            ],
            llm_rows,
        )
        insert_rows(
            SoftLabel,
            [
                "utterance_id",
                "task_id",
                "distribution",
                "label_id",
                "confidence",
                "agreement",
                "n_sources",
                "source",
                "updated_at",
            ],
            soft_rows,
        )
        insert_rows(
            HumanLabel,
            [
                "utterance_id",
                "task_id",
                "label_id",
                "annotator_id",
                "annotator_name",
                "source",
                "created_at",
            ],
            human_rows,
        )

    def _soft_row(
        self, utterance_id: int, task_name: str, answers: list[LlmAnswer]
    ) -> tuple[Any, ...]:
        labels = self.labels[task_name]
        summary = ensemble_summary(
            [[a.distribution[label] for label in labels] for a in answers]
        )
        self.soft_of[(utterance_id, self.task_ids[task_name])] = (
            summary.soft,
            summary.agreement,
        )
        return (
            utterance_id,
            self.task_ids[task_name],
            json_text(dict(zip(labels, summary.soft, strict=True))),
            self.task_label_ids[task_name][labels[summary.label]],
            summary.soft[summary.label],
            summary.agreement,
            len(answers),
            SoftLabel.Source.LLM,
            self.now,
        )

    def _queue_items(self, utterance_ids: list[int]) -> None:
        """Queue items of new utterances, in the import's own transaction: an import that
        commits has its items, and its cost grows with the file, not with the project.

        Each item gets the heuristic trust of its soft label (0 without one: nothing to trust),
        the overlap draw, and the answers of the human labels the file brought.
        """
        overlap = {
            task.pk: task.overlap()
            for task in LabelTask.objects.filter(pk__in=self.task_ids.values())
        }
        rows: list[tuple[Any, ...]] = []
        for task_id in self.task_ids.values():
            fraction = overlap[task_id]
            known = [pk for pk in utterance_ids if (pk, task_id) in self.soft_of]
            trusts = dict.fromkeys(utterance_ids, 0.0)
            if known:
                vectors = np.array([self.soft_of[(pk, task_id)][0] for pk in known])
                agree = np.array([self.soft_of[(pk, task_id)][1] for pk in known])
                scores = heuristic_trust(signals(vectors, agree))
                trusts.update(zip(known, (float(t) for t in scores), strict=True))
            for pk in utterance_ids:
                required = 2 if needs_two(pk, fraction) else 1
                answers = min(len(self.answered_by.get((pk, task_id), ())), required)
                rows.append(
                    (
                        pk,
                        task_id,
                        trusts[pk],
                        trusts[pk],  # the priority: no diversity pass before a student
                        random.random(),  # the audit draw's key
                        False,  # not served yet, so not an audit
                        QueueItem.TrustSource.HEURISTIC.value,
                        required,
                        answers,
                        answers < required,
                        self.now,
                    )
                )
        insert_rows(
            QueueItem,
            [
                "utterance_id",
                "task_id",
                "trust",
                "priority",
                "audit_key",
                "audit",
                "trust_source",
                "required",
                "answers",
                "open",
                "updated_at",
            ],
            rows,
        )

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
