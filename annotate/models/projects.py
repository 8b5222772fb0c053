"""Projects, their members and API tokens, label tasks with their labels and prompt bank."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q, QuerySet


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
    overlap_fraction = models.FloatField(
        null=True,
        blank=True,
        help_text="Share of new items drawn for a second annotator (agreement); none: the "
        "PARLEY_OVERLAP_FRACTION setting.",
    )
    budget_mode = models.BooleanField(
        default=False,
        help_text="LLM budget mode: where the active student is confident enough, its answer "
        "becomes the utterance's label and the LLM is not asked.",
    )
    budget_tolerance = models.FloatField(
        default=1.0,
        help_text="Budget mode: accuracy points the student-labelled share may lose against "
        "the LLM's labels (measured on human answers).",
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

    def overlap(self) -> float:
        """The share of new items that go to two annotators."""
        if self.overlap_fraction is not None:
            return self.overlap_fraction
        return float(settings.PARLEY_OVERLAP_FRACTION)

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
    colour = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="A colour of the palette (0–7, static/annotate/app.css); none: by order.",
    )

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
