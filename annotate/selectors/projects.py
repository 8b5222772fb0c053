"""Reads about projects: membership and roles, the project page, the label schema."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import (
    Count,
    Exists,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)

from ..models import (
    HumanLabel,
    Label,
    LabelTask,
    LlmLabel,
    Membership,
    Project,
    Role,
    Utterance,
)
from ..transcripts import (
    Schema,
)
from .workspace import _open_items, annotator_progress


def project_role(*, user: User | AnonymousUser, project: Project) -> str | None:
    """The user's role in the project; superusers act as admins everywhere."""
    if not user.is_authenticated:
        return None
    if getattr(user, "is_superuser", False):
        return Role.ADMIN
    return (
        Membership.objects.filter(project=project, user=user)
        .values_list("role", flat=True)
        .first()
    )


def task_and_role(
    *, user: User | AnonymousUser, slug: str, task: str
) -> tuple[LabelTask | None, str | None]:
    """The project's label task of that name and the user's role in the project (as
    `project_role` says), in one query: the prediction API's hot path."""
    if not user.is_authenticated:
        return None, None
    found = (
        LabelTask.objects.select_related("project")
        .filter(project__slug=slug, name=task)
        .annotate(
            member_role=Subquery(
                Membership.objects.filter(
                    project=OuterRef("project"), user=user
                ).values("role")[:1]
            )
        )
        .first()
    )
    if found is None:
        return None, None
    return found, Role.ADMIN if getattr(
        user, "is_superuser", False
    ) else found.member_role


def projects_for_user(*, user: User) -> QuerySet[Project]:
    """The projects a user may see, with counts for the project list."""
    projects = Project.objects.all()
    if not getattr(user, "is_superuser", False):
        projects = projects.filter(memberships__user=user)
    return projects.annotate(
        n_dialogues=Count("dialogues", distinct=True),
        n_tasks=Count("tasks", distinct=True),
    ).order_by("name")


def project_overview(
    *, project: Project, user: User | None = None
) -> list[dict[str, Any]]:
    """Per task: utterances with an LLM label, with a human label, its labels, the queue's
    size, and (given a user) that user's progress."""
    n_utterances = Utterance.objects.filter(dialogue__project=project).count()
    rows = []
    for task in LabelTask.objects.filter(project=project).prefetch_related("labels"):
        human = Utterance.objects.filter(
            Exists(HumanLabel.objects.filter(utterance=OuterRef("pk"), task=task)),
            dialogue__project=project,
        ).count()
        sources = task.soft_labels.aggregate(
            llm=Count("pk", filter=Q(source="llm")),
            student=Count("pk", filter=Q(source="student")),
        )
        rows.append(
            {
                "task": task,
                "labels": list(task.labels.all()),
                "utterances": n_utterances,
                "llm_labelled": sources["llm"],
                "student_labelled": sources["student"],
                "human_labelled": human,
                "queue_left": _open_items(task),
                "progress": annotator_progress(task=task, user=user, total=True)
                if user
                else None,
            }
        )
    return rows


def project_schema(*, project: Project) -> Schema:
    schema: Schema = {}
    for task_name, value in (
        Label.objects.filter(task__project=project)
        .order_by("task__name", "order", "pk")
        .values_list("task__name", "value")
    ):
        schema.setdefault(task_name, []).append(value)
    return schema


def llm_sources(*, project: Project) -> dict[str, list[str]]:
    """Task name → the prompts that labelled it, sorted."""
    sources: dict[str, list[str]] = defaultdict(list)
    for task_name, prompt in (
        LlmLabel.objects.filter(task__project=project)
        .values_list("task__name", "prompt")
        .distinct()
        .order_by("task__name", "prompt")
    ):
        sources[task_name].append(prompt)
    return dict(sources)
