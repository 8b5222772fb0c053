"""Background jobs and what they produce: imports, LLM runs and their failures, training runs,
model versions and their predictions. The row of a job is the truth (annotate/jobs.py).
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q

from .corpus import Utterance
from .projects import Label, LabelTask, Project


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
    budget = models.JSONField(
        default=dict,
        blank=True,
        help_text="Budget mode's calibration: per human answer, the cross-fitted student's "
        "confidence and whether it and the LLM were right.",
    )
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
        return f"import {self.pk}: {self.original_name}"  # the status changes: not here

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
    student_labelled = models.PositiveIntegerField(
        default=0,
        help_text="Utterances the student labelled in budget mode (the LLM was not asked).",
    )
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
