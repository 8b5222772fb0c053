"""The corpus: dialogues, utterances and their labels (LLM answers, soft labels, human labels
with retractions and flags). Human labels are append-only: a correction is a new row.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q

from .projects import Label, LabelTask, Project


def BULK_FK(on_delete: Any) -> dict[str, Any]:  # noqa: N802 - reads like a constant
    """Options for the task and label keys of the bulk label tables (LlmLabel, SoftLabel).

    An import writes several such rows per utterance, and on PostgreSQL every foreign-key
    constraint costs a trigger call per row at commit: with them, 50,000 utterances spent
    3.2 of 11 seconds in those checks (bench/import_speed.py). The utterance key keeps its
    database constraint; task and label are written only from the project's own Label rows
    and their deletion is still cascaded/protected by Django's `on_delete`. They carry no
    index of their own either: every read of these tables goes through the utterance (the
    leading column of each table's unique index); only deleting a whole task or label scans.
    """
    return {"on_delete": on_delete, "db_constraint": False, "db_index": False}


class Dialogue(models.Model):
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="dialogues"
    )
    external_id = models.CharField(max_length=200)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["project", "external_id"], name="dialogue_unique_external_id"
            ),
        ]

    def __str__(self) -> str:
        return self.external_id


class Utterance(models.Model):
    # No separate index: utterance_unique_position (dialogue, position) serves dialogue lookups.
    dialogue = models.ForeignKey(
        Dialogue, on_delete=models.CASCADE, related_name="utterances", db_index=False
    )
    position = models.PositiveIntegerField()
    speaker = models.CharField(max_length=100)
    text = models.TextField()
    timestamp = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["dialogue", "position"], name="utterance_unique_position"
            ),
        ]
        ordering: ClassVar = ["dialogue", "position"]

    def __str__(self) -> str:
        return f"{self.dialogue_id}#{self.position}"


class LlmLabel(models.Model):
    """One LLM answer for an utterance under one prompt (and model) of the bank.

    `distribution` maps label value → probability (sums to 1); `label` is the answer and
    `confidence` the confidence the source stated or the probability it put on the label.
    """

    # Bulk table (several rows per utterance): see the module note on BULK_FK.
    utterance = models.ForeignKey(
        Utterance, on_delete=models.CASCADE, related_name="llm_labels", db_index=False
    )
    task = models.ForeignKey(
        LabelTask, related_name="llm_labels", **BULK_FK(models.CASCADE)
    )
    prompt = models.CharField(max_length=50, blank=True)
    model = models.CharField(max_length=100, blank=True)
    label = models.ForeignKey(Label, related_name="+", **BULK_FK(models.PROTECT))
    confidence = models.FloatField(null=True, blank=True)
    distribution = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["utterance", "task", "prompt", "model"],
                name="llmlabel_unique_source",
            ),
            models.CheckConstraint(
                condition=Q(confidence__isnull=True)
                | Q(confidence__gte=0.0, confidence__lte=1.0),
                name="llmlabel_confidence_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.prompt or 'answer'} → label {self.label_id} (utterance {self.utterance_id})"


class SoftLabel(models.Model):
    """The prompt-bank ensemble for one utterance and task: mean distribution and agreement.

    In LLM budget mode (`LabelTask.budget_mode`) the active student's distribution stands in
    for the ensemble where the student is confident enough: `source` says which, and
    `model_version` which student.
    """

    class Source(models.TextChoices):
        LLM = "llm", "LLM prompt bank"
        STUDENT = "student", "Student (LLM budget mode)"

    utterance = models.ForeignKey(
        Utterance, on_delete=models.CASCADE, related_name="soft_labels", db_index=False
    )
    task = models.ForeignKey(
        LabelTask, related_name="soft_labels", **BULK_FK(models.CASCADE)
    )
    distribution = models.JSONField()
    label = models.ForeignKey(Label, related_name="+", **BULK_FK(models.PROTECT))
    confidence = models.FloatField(help_text="Probability of the ensemble label.")
    agreement = models.FloatField(
        help_text="1 − mean total-variation distance to the mean."
    )
    n_sources = models.PositiveIntegerField()
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.LLM)
    model_version = models.ForeignKey(
        "annotate.ModelVersion",
        null=True,
        blank=True,
        related_name="+",
        **BULK_FK(models.SET_NULL),
        help_text="The student whose answer this is (source 'student').",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["utterance", "task"], name="softlabel_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"soft label {self.label_id} (utterance {self.utterance_id})"


class HumanLabel(models.Model):
    """A human answer. Never deleted or edited: a correction is a new row."""

    class Source(models.TextChoices):
        ANNOTATION = "annotation", "Annotation"
        IMPORT = "import", "Import"
        ADJUDICATION = "adjudication", "Adjudication"

    utterance = models.ForeignKey(
        Utterance, on_delete=models.PROTECT, related_name="human_labels"
    )
    task = models.ForeignKey(
        LabelTask, on_delete=models.PROTECT, related_name="human_labels"
    )
    label = models.ForeignKey(Label, on_delete=models.PROTECT, related_name="+")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="human_labels",
    )
    annotator_name = models.CharField(
        max_length=150,
        blank=True,
        help_text="Who answered, for labels imported from a file.",
    )
    source = models.CharField(
        max_length=16, choices=Source.choices, default=Source.ANNOTATION
    )
    created_at = models.DateTimeField()
    submission_key = models.CharField(
        max_length=80,
        null=True,
        blank=True,
        unique=True,
        help_text="Client key of the submit (item and attempt): a resent submit is stored once.",
    )
    # What the annotator was shown, kept for the trust calibration and LLM accuracy dashboards.
    llm_label = models.ForeignKey(
        Label, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    trust = models.FloatField(null=True, blank=True)
    trust_version = models.ForeignKey(
        "ModelVersion",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    replaces = models.OneToOneField(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="replaced_by",
        help_text="The annotator's earlier answer this one changed (retracted since).",
    )

    class Meta:
        indexes: ClassVar = [
            models.Index(fields=["task", "utterance", "created_at"]),
            models.Index(fields=["annotator", "created_at"]),
        ]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=~Q(source="annotation") | Q(annotator__isnull=False),
                name="humanlabel_annotation_has_annotator",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.annotator_name or self.annotator_id}: label {self.label_id} (utterance {self.utterance_id})"


class LabelRetraction(models.Model):
    """An annotator took back (undid) their label within the grace period.

    The label row itself stays as it was: it is ignored from then on wherever labels count.
    """

    label = models.OneToOneField(
        HumanLabel, on_delete=models.PROTECT, related_name="retraction"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"label {self.label_id} retracted"


class Flag(models.Model):
    """An annotator flagged an item for a lead's review, with a comment."""

    utterance = models.ForeignKey(
        Utterance, on_delete=models.CASCADE, related_name="flags"
    )
    task = models.ForeignKey(LabelTask, on_delete=models.CASCADE, related_name="flags")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    comment = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        indexes: ClassVar = [
            models.Index(
                fields=["task", "created_at"],
                condition=Q(resolved_at__isnull=True),
                name="flag_open",
            ),
        ]

    def __str__(self) -> str:
        return f"flag on utterance {self.utterance_id}: {self.comment[:40]}"
