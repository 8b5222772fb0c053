"""The annotator queue: one item per (utterance, task), claimed under a lease; skips."""

from __future__ import annotations

import random
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q

from .corpus import Utterance
from .projects import LabelTask


def random_key() -> float:
    """A uniform key in [0, 1) (the audit draw's order)."""
    return random.random()


class QueueItem(models.Model):
    """One (utterance, task) in the annotator queue; the least trusted LLM labels come first.

    `open` while it has fewer answers than `required` (2 for the items drawn for agreement).
    A claim is held by one annotator until `lease_until`. See annotate/queue.md.
    """

    class TrustSource(models.TextChoices):
        HEURISTIC = "heuristic", "Heuristic"
        CALIBRATED = "calibrated", "Calibrated"

    utterance = models.ForeignKey(
        Utterance, on_delete=models.CASCADE, related_name="queue_items"
    )
    task = models.ForeignKey(
        LabelTask, on_delete=models.CASCADE, related_name="queue_items"
    )
    trust = models.FloatField(default=0.0, help_text="P(the LLM label is right).")
    trust_source = models.CharField(
        max_length=16, choices=TrustSource.choices, default=TrustSource.HEURISTIC
    )
    trust_version = models.ForeignKey(
        "ModelVersion",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The model version whose signals produced the trust (none: LLM signals only).",
    )
    priority = models.FloatField(
        default=0.0,
        help_text="The queue's order, lowest first: the trust, pushed back by the diversity "
        "rule where many items of one dialogue or cluster would come together.",
    )
    audit_key = models.FloatField(
        default=random_key,
        help_text="A uniform random key: an audit draw takes the open item with the lowest.",
    )
    audit = models.BooleanField(
        default=False,
        help_text="Served as an audit: drawn uniformly from the unanswered pool, not for its "
        "trust (never shown to the annotator).",
    )
    selection_probability = models.FloatField(
        null=True,
        blank=True,
        help_text="When last served, the probability that this item was the one drawn: "
        "1 / open items for an audit, 1 for the queue's own pick.",
    )
    required = models.PositiveSmallIntegerField(default=1)
    answers = models.PositiveSmallIntegerField(default=0)
    open = models.BooleanField(default=True)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    lease_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["utterance", "task"], name="queueitem_unique"
            ),
            models.CheckConstraint(
                condition=Q(trust__gte=0.0, trust__lte=1.0),
                name="queueitem_trust_range",
            ),
            models.CheckConstraint(
                condition=Q(required__gte=1), name="queueitem_required"
            ),
        ]
        indexes: ClassVar = [
            # The queue's query: open items of a task by priority (annotate/queue.md).
            models.Index(
                fields=["task", "priority", "id"],
                condition=Q(open=True),
                name="queueitem_open_by_priority",
            ),
            # The audit draw: open items of a task by their random key.
            models.Index(
                fields=["task", "audit_key"],
                condition=Q(open=True),
                name="queueitem_open_by_audit_key",
            ),
            models.Index(fields=["claimed_by", "lease_until"], name="queueitem_claims"),
        ]

    def __str__(self) -> str:
        return f"queue item {self.pk} (utterance {self.utterance_id}, trust {self.trust:.2f})"


class QueueSkip(models.Model):
    """An annotator skipped an item: it is not offered to them again."""

    item = models.ForeignKey(QueueItem, on_delete=models.CASCADE, related_name="skips")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["item", "annotator"], name="queueskip_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"user {self.annotator_id} skipped item {self.item_id}"
