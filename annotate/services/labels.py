"""Human labels: an annotator's submit, undo and flag; a lead's adjudication."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from ..models import (
    Flag,
    HumanLabel,
    Label,
    LabelRetraction,
    LabelTask,
    QueueItem,
    SoftLabel,
)
from ..selectors.workspace import open_items_changed
from .queue import queue_skip
from .training import training_run_maybe_request


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
        if not item.open:
            open_items_changed(item.task_id, -1)
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
            .filter(
                task=task,
                annotator=annotator,
                source=HumanLabel.Source.ANNOTATION,
                retraction__isnull=True,
                created_at__gte=since,
            )
            .order_by("-created_at", "-pk")
            .first()
        )
        if last is None:
            return None
        LabelRetraction.objects.create(label=last)
        item = QueueItem.objects.select_for_update().get(
            utterance_id=last.utterance_id, task=task
        )
        item.answers = max(item.answers - 1, 0)
        if not item.open:
            open_items_changed(task.pk, +1)
        item.open = True
        item.claimed_by = annotator
        item.lease_until = timezone.now() + timedelta(
            seconds=settings.PARLEY_CLAIM_LEASE_S
        )
        item.save(
            update_fields=["answers", "open", "claimed_by", "lease_until", "updated_at"]
        )
    return item


def label_change(*, label_id: int, annotator: User, label: str) -> HumanLabel:
    """Change one of the annotator's own answers (their history page): a new label row that
    `replaces` the old one, which is retracted; what they were shown (the LLM label and its
    trust) carries over. The same change sent twice is stored once; an answer changed since,
    undone, or not theirs is refused with a SubmitError."""
    with transaction.atomic():
        old = (
            HumanLabel.objects.select_for_update(of=("self",))
            .filter(
                pk=label_id, annotator=annotator, source=HumanLabel.Source.ANNOTATION
            )
            .select_related("label")
            .first()
        )
        if old is None:
            raise SubmitError("not one of your answers")
        new = HumanLabel.objects.filter(replaces=old).first()
        if new is not None:
            if new.label.value == label:
                return new  # the same change, sent again
            raise SubmitError("this answer was changed already: change the newer one")
        if LabelRetraction.objects.filter(label=old).exists():
            raise SubmitError("this answer was undone")
        if old.label.value == label:
            return old
        try:
            chosen = Label.objects.get(task_id=old.task_id, value=label)
        except Label.DoesNotExist as exc:
            raise SubmitError(f"unknown label {label!r}") from exc
        new = HumanLabel.objects.create(
            utterance_id=old.utterance_id,
            task_id=old.task_id,
            label=chosen,
            annotator=annotator,
            annotator_name=old.annotator_name,
            source=HumanLabel.Source.ANNOTATION,
            created_at=timezone.now(),
            llm_label_id=old.llm_label_id,
            trust=old.trust,
            trust_version_id=old.trust_version_id,
            replaces=old,
        )
        LabelRetraction.objects.create(label=old)
    return new


@transaction.atomic
def flag_create(*, item_id: int, annotator: User, comment: str) -> Flag:
    """Flag an item for review: the lead sees it on the review page; the annotator moves on."""
    item = QueueItem.objects.get(pk=item_id)
    flag = Flag.objects.create(
        utterance_id=item.utterance_id,
        task_id=item.task_id,
        annotator=annotator,
        comment=comment.strip() or "(no comment)",
    )
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
        utterance_id=utterance_id,
        task=task,
        label=chosen,
        annotator=lead,
        annotator_name=lead.get_username(),
        source=HumanLabel.Source.ADJUDICATION,
        created_at=timezone.now(),
    )
    closed = QueueItem.objects.filter(
        utterance_id=utterance_id, task=task, open=True
    ).update(open=False, claimed_by=None, lease_until=None)
    QueueItem.objects.filter(utterance_id=utterance_id, task=task).update(
        claimed_by=None, lease_until=None
    )
    if closed:
        open_items_changed(task.pk, -closed)
    Flag.objects.filter(
        utterance_id=utterance_id, task=task, resolved_at__isnull=True
    ).update(resolved_at=timezone.now(), resolved_by=lead)
    return decided
