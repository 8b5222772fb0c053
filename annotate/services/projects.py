"""Projects, label tasks, members and API tokens."""

from __future__ import annotations

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
)
from .queue import queue_sync

# Digits, then letters; S, F, U, G and W are the workspace's own keys (skip, flag, undo,
# guidelines, why).
LABEL_KEYS = "1234567890" + "".join(
    c for c in string.ascii_lowercase if c not in "sfugw"
)


"""Default keyboard keys for labels, in order. S, F and U are the queue's skip/flag/undo."""


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
