"""Who may act on what: every view and API endpoint looks its objects up through these.

A project the user is not a member of does not exist for them (404); a role too low is a 403;
an object id is always resolved through the project and task of the URL, so an id of another
project is a 404, never a write.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404

from . import selectors
from .models import LabelTask, Project, QueueItem, Role

EVERYONE = frozenset(Role.values)
LEADS = frozenset({Role.ADMIN, Role.LEAD})
ADMINS = frozenset({Role.ADMIN})


def get_project_for_user(
    user: Any, slug: str, *, roles: frozenset[str] = EVERYONE
) -> tuple[Project, str]:
    """The project and the user's role in it: 404 for non-members, 403 for a role too low."""
    project = get_object_or_404(Project, slug=slug)
    role = selectors.project_role(user=user, project=project)
    if role is None:
        raise Http404("No such project.")
    if role not in roles:
        raise PermissionDenied(
            f"Your role in this project ({role}) does not allow this."
        )
    return project, role


def get_task_for_user(
    user: Any, slug: str, task_name: str, *, roles: frozenset[str] = EVERYONE
) -> tuple[Project, str, LabelTask]:
    """`get_project_for_user`, and the project's label task of that name (404 otherwise)."""
    project, role = get_project_for_user(user, slug, roles=roles)
    return project, role, get_object_or_404(LabelTask, project=project, name=task_name)


def get_item_for_task(task: LabelTask, item_id: int) -> QueueItem:
    """A queue item of this task: an id from another task or project is a 404."""
    return get_object_or_404(QueueItem, pk=item_id, task=task)


def item_ids_of_task(task: LabelTask, wanted: list[int]) -> list[int]:
    """Those of `wanted` that are items of this task (the rest are ignored)."""
    return list(
        QueueItem.objects.filter(task=task, pk__in=wanted).values_list("pk", flat=True)
    )
