"""The annotator queue (design: annotate/queue.md): items, trust before any student, claims."""

from __future__ import annotations

import random
from collections.abc import Collection
from datetime import timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

import learner
from learner import heuristic_trust, signals

from ..models import (
    HumanLabel,
    LabelTask,
    Project,
    QueueItem,
    QueueSkip,
    SoftLabel,
    Utterance,
)
from ..selectors.workspace import open_items_changed

# The audit's coin; bench.active_loop seeds it for a reproducible run.
audit_rng = random.Random()


def needs_two(utterance_id: int, fraction: float) -> bool:
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
    fraction = task.overlap()
    known = set(
        QueueItem.objects.filter(task=task).values_list("utterance_id", flat=True)
    )
    new_ids = [
        pk
        for pk in Utterance.objects.filter(dialogue__project_id=task.project_id)
        .order_by("pk")
        .values_list("pk", flat=True)
        if pk not in known
    ]
    answered = dict(
        HumanLabel.objects.filter(
            task=task, utterance_id__in=new_ids, retraction__isnull=True
        )
        .values("utterance_id")
        .annotate(n=Count("annotator_name", distinct=True))
        .values_list("utterance_id", "n")
    )
    items = []
    for pk in new_ids:
        required = 2 if needs_two(pk, fraction) else 1
        answers = min(answered.get(pk, 0), required)
        items.append(
            QueueItem(
                utterance_id=pk,
                task=task,
                required=required,
                answers=answers,
                open=answers < required,
            )
        )
    QueueItem.objects.bulk_create(items, batch_size=2000, ignore_conflicts=True)
    queue_trust_refresh(task.pk)
    return len(items)


def queue_trust_refresh(
    task_id: int, *, utterance_ids: Collection[int] | None = None
) -> None:
    """Refresh the LLM-only trust of the task's items no student has scored yet (all of
    them, or those of `utterance_ids`), from their current soft labels."""
    labels = list(
        LabelTask(pk=task_id).ordered_labels().values_list("value", flat=True)
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
            scores = heuristic_trust(signals(vectors, agree))
            values.update(
                (pk, float(t)) for (pk, _), t in zip(known, scores, strict=True)
            )
        updates = [
            QueueItem(
                pk=pk, trust=t, priority=t, trust_source=QueueItem.TrustSource.HEURISTIC
            )
            for pk, t in values.items()
        ]
        QueueItem.objects.bulk_update(
            updates, ["trust", "priority", "trust_source"], batch_size=2000
        )


def queue_diversify(
    *, task: LabelTask, embeddings: dict[int, Any] | None = None
) -> int:
    """The diversity rule (docs/active-loop.md): re-rank the open items' priority so that the
    items served together are not near-duplicates. Walking the queue's order, an item with
    PARLEY_DIVERSITY_CAP items of its dialogue (or, given utterance `embeddings`, of its
    tight embedding cluster among the front of the queue) ahead of it goes back by
    PARLEY_DIVERSITY_MARGIN of trust per item over; a far lower trust still goes first.
    Run after each scoring (a "round"). Returns the number of items whose priority changed.
    """
    cap = settings.PARLEY_DIVERSITY_CAP
    rows = list(
        QueueItem.objects.filter(task=task, open=True)
        .order_by("trust", "pk")
        .values_list(
            "pk", "trust", "priority", "utterance_id", "utterance__dialogue_id"
        )
    )
    if not rows:
        return 0
    trust = np.array([r[1] for r in rows])
    priority = trust
    if cap > 0:
        groups = [np.array([r[4] for r in rows])]
        if embeddings:
            front = [
                i
                for i, r in enumerate(rows[: settings.PARLEY_DIVERSITY_WINDOW])
                if r[3] in embeddings
            ]
            cluster = np.full(len(rows), -1)
            if front:
                cluster[front] = learner.clusters(
                    np.stack([embeddings[rows[i][3]] for i in front]),
                    threshold=settings.PARLEY_DIVERSITY_SIMILARITY,
                )
            groups.append(cluster)
        priority = learner.diversify(
            trust, groups, cap=cap, margin=settings.PARLEY_DIVERSITY_MARGIN
        )
    changed = [
        QueueItem(pk=r[0], priority=float(p))
        for r, p in zip(rows, priority, strict=True)
        if abs(r[2] - p) > 1e-12
    ]
    QueueItem.objects.bulk_update(changed, ["priority"], batch_size=2000)
    return len(changed)


def queue_claim(
    *, task: LabelTask, annotator: User, exclude: Collection[int] = ()
) -> QueueItem | None:
    """The item this annotator should label now, claimed for them; None when nothing is left.

    The annotator's own unexpired claim comes back first (a reload keeps the item). Else the
    open item with the lowest priority (the trust, after the diversity rule) that nobody
    holds, that they have neither answered nor skipped, is locked with SKIP LOCKED (so
    concurrent annotators never wait on or get the same row) and claimed with a lease. A share
    PARLEY_AUDIT_FRACTION of claims are audits instead: the same filters, but the open item
    with the lowest random `audit_key` (a uniform draw), its selection probability stored. `exclude`: item ids the caller already shows (the workspace
    holds the current item and the next one, fetched ahead).
    """
    now = timezone.now()
    lease = timedelta(seconds=settings.PARLEY_CLAIM_LEASE_S)
    with transaction.atomic():
        held = (
            QueueItem.objects.select_for_update()
            .filter(task=task, claimed_by=annotator, lease_until__gt=now, open=True)
            .exclude(pk__in=exclude)
            .order_by("priority", "pk")
            .first()
        )
        if held is not None:
            held.lease_until = now + lease
            held.save(update_fields=["lease_until", "updated_at"])
            return held
        mine = HumanLabel.objects.filter(
            task=task,
            utterance=OuterRef("utterance"),
            annotator=annotator,
            retraction__isnull=True,
        )
        skipped = QueueSkip.objects.filter(item=OuterRef("pk"), annotator=annotator)
        # An audit: a uniform draw from the unanswered pool (the open item with the lowest
        # random key), so that the answers also describe the items the queue never reaches.
        audit = audit_rng.random() < settings.PARLEY_AUDIT_FRACTION
        item = (
            QueueItem.objects.filter(task=task, open=True)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
            .exclude(Exists(mine))
            .exclude(Exists(skipped))
            .exclude(pk__in=exclude)
            .order_by(*(("audit_key", "pk") if audit else ("priority", "pk")))
            .select_for_update(skip_locked=True, of=("self",))
            .first()
        )
        if item is None:
            return None
        item.claimed_by = annotator
        item.lease_until = now + lease
        item.audit = audit
        item.selection_probability = (
            1.0 / max(QueueItem.objects.filter(task=task, open=True).count(), 1)
            if audit
            else 1.0
        )
        item.save(
            update_fields=[
                "claimed_by",
                "lease_until",
                "audit",
                "selection_probability",
                "updated_at",
            ]
        )
        return item


def queue_renew(*, item_id: int, annotator: User) -> bool:
    """Extend the annotator's claim on the item; False when they no longer hold it."""
    return bool(
        QueueItem.objects.filter(
            pk=item_id, claimed_by=annotator, lease_until__gt=timezone.now()
        ).update(
            lease_until=timezone.now()
            + timedelta(seconds=settings.PARLEY_CLAIM_LEASE_S)
        )
    )


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
def queue_requeue(*, task: LabelTask, utterance_id: int) -> QueueItem:
    """A lead sends an utterance back to the queue (corpus browser): its item opens for one
    more answer than it has, at the front (priority 0), unclaimed. Its answers stay."""
    item = QueueItem.objects.select_for_update().get(
        task=task, utterance_id=utterance_id
    )
    if not item.open:
        open_items_changed(task.pk, +1)
    item.required = item.answers + 1
    item.open = True
    item.priority = 0.0
    item.claimed_by = None
    item.lease_until = None
    item.save(
        update_fields=[
            "required",
            "open",
            "priority",
            "claimed_by",
            "lease_until",
            "updated_at",
        ]
    )
    return item


@transaction.atomic
def queue_skip(*, item_id: int, annotator: User) -> None:
    """Release the item and never offer it to this annotator again."""
    item = QueueItem.objects.filter(pk=item_id).first()
    if item is None:
        return
    QueueSkip.objects.get_or_create(item=item, annotator=annotator)
    queue_release(item_id=item_id, annotator=annotator)


def queue_workspace(
    *, task: LabelTask, annotator: User, wanted: int | None = None
) -> tuple[QueueItem | None, QueueItem | None]:
    """The two items the annotator's workspace shows: the current one and the next, claimed
    ahead so that the flow never waits. The current one is `wanted` when the annotator still
    holds it open (the item an undo gave back), else their next claim. Any other claim of
    theirs on the task is let go (a page left open elsewhere)."""
    current = None
    if wanted is not None:
        current = QueueItem.objects.filter(
            pk=wanted, task=task, claimed_by=annotator, open=True
        ).first()
    current = current or queue_claim(task=task, annotator=annotator)
    ahead = (
        queue_claim(task=task, annotator=annotator, exclude=[current.pk])
        if current
        else None
    )
    shown = [i.pk for i in (current, ahead) if i is not None]
    others = QueueItem.objects.filter(task=task, claimed_by=annotator).exclude(
        pk__in=shown
    )
    for pk in others.values_list("pk", flat=True):
        queue_release(item_id=pk, annotator=annotator)
    return current, ahead
