"""Parley's data model.

Invariants live in the database (unique and check constraints, a partial unique index for
"one active training run per task"); model methods only derive values from one row.
Human labels are append-only: a correction is a new row and the history stays.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q, QuerySet


def BULK_FK(on_delete: Any) -> dict[str, Any]:  # noqa: N802 - reads like a constant
    """Options for the task and label keys of the bulk label tables (LlmLabel, SoftLabel).

    An import writes several such rows per utterance, and on PostgreSQL every foreign-key
    constraint costs a trigger call per row at commit: with them, 50,000 utterances spent
    3.2 of 11 seconds in those checks (bench/import.py). The utterance key keeps its
    database constraint; task and label are written only from the project's own Label rows
    and their deletion is still cascaded/protected by Django's `on_delete`. They carry no
    index of their own either: every read of these tables goes through the utterance (the
    leading column of each table's unique index); only deleting a whole task or label scans.
    """
    return {"on_delete": on_delete, "db_constraint": False, "db_index": False}


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    LEAD = "lead", "Lead"
    ANNOTATOR = "annotator", "Annotator"


class Project(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    members: models.ManyToManyField[Any, Any] = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="projects"
    )

    class Meta:
        ordering: ClassVar = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="memberships"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANNOTATOR)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["project", "user"], name="membership_unique"
            ),
            models.CheckConstraint(
                condition=Q(role__in=Role.values), name="membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.project} ({self.role})"


class ApiToken(models.Model):
    """A bearer token carrying its user's rights. Only a hash of the secret is stored."""

    PREFIX = "prl_"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(
        max_length=12, editable=False, help_text="First characters."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def generate_key(cls) -> str:
        return cls.PREFIX + secrets.token_urlsafe(32)


class LabelTask(models.Model):
    """One labelling question asked of every utterance (dialogue act, sentiment, …)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tasks")
    name = models.SlugField(
        max_length=50, help_text="Key used in import files, e.g. 'act'."
    )
    title = models.CharField(max_length=200, blank=True)
    guidelines = models.TextField(
        blank=True, help_text="Annotation guidelines (Markdown)."
    )
    hide_suggestion = models.BooleanField(
        default=False,
        help_text="Hide the LLM suggestion from annotators (avoids anchoring).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["project", "name"], name="labeltask_unique_name"
            ),
        ]
        ordering: ClassVar = ["project", "name"]

    def __str__(self) -> str:
        return f"{self.project.slug}/{self.name}"

    def ordered_labels(self) -> QuerySet[Label]:
        """The task's labels in display order: the order of every probability vector."""
        return self.labels.order_by("order", "pk")


class Label(models.Model):
    """One class of a task, in display order, with its keyboard key."""

    task = models.ForeignKey(LabelTask, on_delete=models.CASCADE, related_name="labels")
    value = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    key = models.CharField(
        max_length=1, help_text="Keyboard key that picks this label."
    )
    order = models.PositiveIntegerField(default=0)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["task", "value"], name="label_unique_value"
            ),
            models.UniqueConstraint(fields=["task", "key"], name="label_unique_key"),
        ]
        ordering: ClassVar = ["task", "order", "pk"]

    def __str__(self) -> str:
        return self.value


class PromptTemplate(models.Model):
    """One prompt of a task's prompt bank."""

    task = models.ForeignKey(
        LabelTask, on_delete=models.CASCADE, related_name="prompts"
    )
    name = models.CharField(max_length=50)
    template = models.TextField()
    context_turns = models.PositiveIntegerField(
        default=3, help_text="How many previous turns the prompt shows."
    )
    active = models.BooleanField(default=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["task", "name"], name="prompt_unique_name"),
        ]
        ordering: ClassVar = ["task", "name"]

    def __str__(self) -> str:
        return self.name


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
    """The prompt-bank ensemble for one utterance and task: mean distribution and agreement."""

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


class TrainingRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE_STATUSES: ClassVar = (Status.QUEUED, Status.RUNNING)

    task = models.ForeignKey(
        LabelTask, on_delete=models.CASCADE, related_name="training_runs"
    )
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED
    )
    config = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    progress = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of the worker training it."
    )
    nudged_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When its Celery message was last sent (the sweeper sends a lost one again).",
    )

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["task"],
                condition=Q(status__in=["queued", "running"]),
                name="trainingrun_one_active_per_task",
            ),
            models.CheckConstraint(
                condition=Q(progress__gte=0.0, progress__lte=1.0),
                name="trainingrun_progress",
            ),
        ]
        ordering: ClassVar = ["-created_at"]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.status})"


class ModelVersion(models.Model):
    task = models.ForeignKey(
        LabelTask, on_delete=models.CASCADE, related_name="model_versions"
    )
    run = models.OneToOneField(
        TrainingRun,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="model_version",
    )
    version = models.PositiveIntegerField()
    artifact_path = models.CharField(max_length=500)
    metrics = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    pinned = models.BooleanField(
        default=False, help_text="Kept on disk whatever the retention policy says."
    )
    scored_at = models.DateTimeField(
        null=True, blank=True, help_text="When scoring the pool with it finished."
    )
    scoring_heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Last sign of life of the scoring (or when the sweeper last sent it again).",
    )
    files_deleted_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the retention policy deleted its checkpoints.",
    )

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["task", "version"], name="modelversion_unique"
            ),
            models.UniqueConstraint(
                fields=["task"],
                condition=Q(is_active=True),
                name="modelversion_one_active",
            ),
        ]
        ordering: ClassVar = ["task", "-version"]

    def __str__(self) -> str:
        return f"{self.task} v{self.version}"


class Prediction(models.Model):
    """The student's output for one utterance, stamped with the model version that made it."""

    utterance = models.ForeignKey(
        Utterance, on_delete=models.CASCADE, related_name="predictions"
    )
    task = models.ForeignKey(
        LabelTask, on_delete=models.CASCADE, related_name="predictions"
    )
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="predictions"
    )
    probabilities = models.JSONField()
    label = models.ForeignKey(Label, on_delete=models.PROTECT, related_name="+")
    trust = models.FloatField(
        null=True,
        blank=True,
        help_text="Estimated probability that the LLM label is right.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["utterance", "task", "model_version"], name="prediction_unique"
            ),
            models.CheckConstraint(
                condition=Q(trust__isnull=True) | Q(trust__gte=0.0, trust__lte=1.0),
                name="prediction_trust_range",
            ),
        ]
        indexes: ClassVar = [models.Index(fields=["model_version", "trust"])]

    def __str__(self) -> str:
        return f"v{self.model_version_id}: label {self.label_id} (utterance {self.utterance_id})"


class ImportJob(models.Model):
    """One uploaded transcript file, imported by a Celery worker."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Format(models.TextChoices):
        JSONL = "jsonl", "JSONL"
        CSV = "csv", "CSV"

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="import_jobs"
    )
    file = models.FileField(upload_to="imports/%Y/%m/")
    original_name = models.CharField(max_length=255)
    format = models.CharField(max_length=8, choices=Format.choices)
    update_existing = models.BooleanField(
        default=False,
        help_text="Update dialogues whose id is already known instead of skipping.",
    )
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED
    )
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    utterances = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    nudged_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When its Celery message was last sent (the sweeper sends a lost one again).",
    )
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Times a worker started it (a worker that died counts)."
    )

    class Meta:
        ordering: ClassVar = ["-created_at"]

    def __str__(self) -> str:
        return f"import {self.pk}: {self.original_name} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)

    @property
    def progress_cache_key(self) -> str:
        return f"import-progress:{self.pk}"


class LlmRun(models.Model):
    """One pass of the LLM teacher over a task: every (utterance, active prompt) still missing.

    A run can be resumed after a crash: it asks only for the pairs that have neither an
    LlmLabel nor an LlmFailure for its model. The worker holding it renews `lease_until`;
    a run whose lease has expired may be claimed again.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    task = models.ForeignKey(
        LabelTask, on_delete=models.CASCADE, related_name="llm_runs"
    )
    model = models.CharField(max_length=100)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED
    )
    total = models.PositiveIntegerField(
        default=0, help_text="Pairs missing when the run began."
    )
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0, help_text="Pairs marked as failed.")
    requests = models.PositiveIntegerField(default=0)
    retries = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    seconds = models.FloatField(
        default=0.0, help_text="Time spent working, over all attempts."
    )
    error = models.TextField(blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    nudged_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When its Celery message was last sent (the sweeper sends a lost one again).",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["task"],
                condition=Q(status__in=["queued", "running"]),
                name="llmrun_one_active_per_task",
            ),
        ]
        ordering: ClassVar = ["-created_at"]

    def __str__(self) -> str:
        return f"LLM run {self.pk} ({self.status})"

    @property
    def progress(self) -> float:
        return (self.done + self.failed) / self.total if self.total else 0.0


class LlmFailure(models.Model):
    """An (utterance, prompt) the LLM could not answer with a label, after one retry."""

    run = models.ForeignKey(LlmRun, on_delete=models.CASCADE, related_name="failures")
    utterance = models.ForeignKey(Utterance, on_delete=models.CASCADE, related_name="+")
    task = models.ForeignKey(LabelTask, on_delete=models.CASCADE, related_name="+")
    prompt = models.CharField(max_length=50)
    model = models.CharField(max_length=100)
    error = models.TextField()
    raw = models.TextField(blank=True, help_text="The last answer, as received.")
    attempts = models.PositiveIntegerField(default=2)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["utterance", "task", "prompt", "model"],
                name="llmfailure_unique",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.prompt} failed on utterance {self.utterance_id}: {self.error[:60]}"
        )


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
            # The queue's one query: open items of a task by trust (annotate/queue.md).
            models.Index(
                fields=["task", "trust", "id"],
                condition=Q(open=True),
                name="queueitem_open_by_trust",
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
