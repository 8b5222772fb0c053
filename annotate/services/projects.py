"""Projects, label tasks, members and API tokens."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from ..models import (
    ApiToken,
    Label,
    LabelTask,
    Membership,
    Project,
    PromptTemplate,
    Role,
)
from .queue import queue_sync

# Digits, then letters; S, F, U, G and W are the workspace's own keys (skip, flag, undo,
# guidelines, why).
LABEL_KEYS = "1234567890" + "".join(
    c for c in string.ascii_lowercase if c not in "sfugw"
)
"""Default keyboard keys for labels, in order (the workspace's own keys left out)."""
RESERVED_KEYS = ("s", "f", "u", "g", "w")
"""The workspace's keys: skip, flag, undo, guidelines, why."""

SLUG = re.compile(r"[-a-zA-Z0-9_]+")
"""A project's short name or a task's name: they appear in URLs and import files."""


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
def project_create_by(
    *, user: User, name: str, slug: str, description: str = ""
) -> Project:
    """A project created in the app, without tasks yet; its creator is its admin."""
    if not name:
        raise ValueError("a project needs a name")
    if not slug or not SLUG.fullmatch(slug):
        raise ValueError("the short name (in URLs) uses letters, digits, - and _ only")
    if Project.objects.filter(slug=slug).exists():
        raise ValueError(f"the short name “{slug}” is taken")
    project = project_create(
        name=name[:200], slug=slug, tasks={}, description=description
    )
    membership_set(project=project, user=user, role=Role.ADMIN)
    return project


@transaction.atomic
def label_task_add(
    *,
    project: Project,
    name: str,
    title: str,
    labels: Sequence[tuple[str, str]],
    guidelines: str = "",
) -> LabelTask:
    """A label task added in the app, its labels checked (the keys are given in order)."""
    if not name or not SLUG.fullmatch(name) or len(name) > 50:
        raise ValueError(
            "the task's name (used in import files) uses letters, digits, - and _"
        )
    if project.tasks.filter(name=name).exists():
        raise ValueError(f"the project has a task “{name}” already")
    values = [value for value, _ in labels]
    if len(values) < 2:
        raise ValueError("a task needs at least two labels")
    if len(set(values)) != len(values) or any(not v or len(v) > 100 for v in values):
        raise ValueError("labels must be distinct, each 1 to 100 characters")
    task = label_task_create(
        project=project, name=name, labels=labels, guidelines=guidelines
    )
    if title:
        task.title = title[:200]
        task.save(update_fields=["title"])
    return task


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
    """Add `user` to the project with `role`, or change their role. A project keeps at least
    one admin: demoting its last one is refused (ValueError)."""
    with transaction.atomic():
        _keep_an_admin(project, user, leaving=role != Role.ADMIN)
        membership, _ = Membership.objects.update_or_create(
            project=project, user=user, defaults={"role": role}
        )
    return membership


@transaction.atomic
def membership_remove(*, project: Project, user: User) -> None:
    """Take `user` out of the project (their labels stay). The last admin stays."""
    _keep_an_admin(project, user, leaving=True)
    Membership.objects.filter(project=project, user=user).delete()


def _keep_an_admin(project: Project, user: User, *, leaving: bool) -> None:
    """Refuse a change that would leave the project without an admin. The admins' rows are
    locked, so two admins demoting each other at once cannot both succeed."""
    admins = list(
        Membership.objects.select_for_update()
        .filter(project=project, role=Role.ADMIN)
        .values_list("user_id", flat=True)
    )
    if leaving and admins == [user.pk]:
        raise ValueError(
            f"{user.get_username()} is the project's last admin: make another member "
            "admin first"
        )


@transaction.atomic
def project_update(*, project: Project, name: str, description: str) -> Project:
    """A project's name and description (its short name stays: URLs and tokens use it)."""
    if not name.strip():
        raise ValueError("a project needs a name")
    project.name, project.description = name.strip()[:200], description
    project.save(update_fields=["name", "description"])
    return project


@transaction.atomic
def labels_update(*, task: LabelTask, rows: Sequence[Mapping[str, Any]]) -> None:
    """Each label's place, key, description and colour (rows: {"pk", "order", "key",
    "description", "colour"}). Keys are single characters, distinct, none of the workspace's
    own; a label's value stays (answers refer to it)."""
    labels = {label.pk: label for label in task.labels.select_for_update()}
    if {int(r["pk"]) for r in rows} != set(labels):
        raise ValueError("give every label of the task once")
    keys = [str(r["key"]).strip().lower() for r in rows]
    if any(len(k) != 1 or k in RESERVED_KEYS or k.isspace() for k in keys):
        raise ValueError(
            f"a key is one character, not one of the workspace's ({', '.join(RESERVED_KEYS)})"
        )
    if len(set(keys)) != len(keys):
        raise ValueError("two labels have the same key")
    # Keys may swap places: park each on a private character first, so the (task, key)
    # unique constraint never sees two labels with one key in between.
    for n, label in enumerate(labels.values()):
        label.key = chr(0xE000 + n)
        label.save(update_fields=["key"])
    ordered = sorted(rows, key=lambda r: (int(r["order"]), int(r["pk"])))
    for position, row in enumerate(ordered):
        label = labels[int(row["pk"])]
        label.order = position
        label.key = str(row["key"]).strip().lower()
        label.description = str(row.get("description", ""))
        colour = row.get("colour")
        label.colour = None if colour in (None, "") else int(colour) % 8
        label.save(update_fields=["order", "key", "description", "colour"])


@transaction.atomic
def label_task_update(
    *,
    task: LabelTask,
    title: str,
    guidelines: str,
    hide_suggestion: bool,
    budget_mode: bool,
    budget_tolerance: float,
    overlap_fraction: float | None = None,
) -> LabelTask:
    """A task's settings (its name and label values are fixed once answers refer to them).
    The overlap applies to items created from now on."""
    if not 0.0 <= budget_tolerance <= 100.0:
        raise ValueError("the budget tolerance is in accuracy points, 0 to 100")
    if overlap_fraction is not None and not 0.0 <= overlap_fraction <= 1.0:
        raise ValueError("the overlap is a share of the items, 0 to 1")
    task.overlap_fraction = overlap_fraction
    task.title, task.guidelines = title, guidelines
    task.hide_suggestion, task.budget_mode = hide_suggestion, budget_mode
    task.budget_tolerance = budget_tolerance
    task.save(
        update_fields=[
            "title",
            "guidelines",
            "hide_suggestion",
            "budget_mode",
            "budget_tolerance",
            "overlap_fraction",
        ]
    )
    return task


@transaction.atomic
def prompt_save(
    *,
    task: LabelTask,
    name: str,
    template: str,
    context_turns: int,
    active: bool = True,
) -> PromptTemplate:
    """Add a prompt to the task's bank, or change the one of that name. A changed template
    asks the LLM anew only for what it has not answered under that name: rename it to have
    everything asked again."""
    if not template.strip():
        raise ValueError("the template is empty")
    prompt, _ = PromptTemplate.objects.update_or_create(
        task=task,
        name=name,
        defaults={
            "template": template,
            "context_turns": context_turns,
            "active": active,
        },
    )
    return prompt


def api_token_create(*, user: User, name: str) -> tuple[ApiToken, str]:
    """A new token for `user`. The secret is returned once and never stored."""
    key = ApiToken.generate_key()
    token = ApiToken.objects.create(
        user=user, name=name, key_hash=ApiToken.hash_key(key), hint=key[:8]
    )
    return token, key


def api_token_authenticate(*, key: str) -> Any | None:
    """The active user a token belongs to, or None; records when the token was used, to the
    minute (a write on every request would cost each one a commit)."""
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=ApiToken.hash_key(key), revoked=False, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > TOKEN_USE_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


TOKEN_USE_RESOLUTION = timedelta(minutes=1)
