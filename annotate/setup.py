"""Running a project in the app (project admins): members and roles; per label task its
settings, prompt bank (with a live preview on a real utterance) and LLM runs (start, live
progress, failures with the raw answer, asking the failed ones again)."""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from . import services
from .access import ADMINS, get_project_for_user, get_task_for_user
from .models import (
    LlmFailure,
    LlmRun,
    Membership,
    PromptTemplate,
    Role,
    Utterance,
)
from .prompts import prompt_messages
from .templatetags.parley import COLOURS

CREATE_PROJECT = "annotate.add_project"
"""The permission that lets a user create projects (superusers have it)."""


@login_required
@require_http_methods(["GET", "POST"])
def project_new(request: HttpRequest) -> HttpResponse:
    """A new project; its creator becomes its admin."""
    if not request.user.has_perm(CREATE_PROJECT):
        raise PermissionDenied("Creating projects needs the “add project” permission.")
    values = {
        k: request.POST.get(k, "").strip() for k in ("name", "slug", "description")
    }
    if request.method == "POST":
        try:
            project = services.project_create_by(
                user=cast(User, request.user),
                name=values["name"],
                slug=values["slug"],
                description=values["description"],
            )
        except ValueError as exc:
            messages.error(request, f"Not created: {exc}.")
        else:
            messages.success(
                request, f"Project “{project.name}” created: add a label task."
            )
            return redirect(
                reverse("annotate:setup-task-new", kwargs={"slug": project.slug})
            )
    return render(request, "annotate/project_new.html", {"values": values})


@login_required
@require_http_methods(["GET", "POST"])
def task_new(request: HttpRequest, slug: str) -> HttpResponse:
    """A new label task: its name, title, labels (one a line, "value: description"), guidelines."""
    project, _ = get_project_for_user(request.user, slug, roles=ADMINS)
    values = {
        k: request.POST.get(k, "") for k in ("name", "title", "labels", "guidelines")
    }
    if request.method == "POST":
        labels = [
            (value.strip(), description.strip())
            for line in values["labels"].splitlines()
            if line.strip()
            for value, _, description in [line.partition(":")]
        ]
        try:
            task = services.label_task_add(
                project=project,
                name=values["name"].strip(),
                title=values["title"].strip(),
                labels=labels,
                guidelines=values["guidelines"],
            )
        except ValueError as exc:
            messages.error(request, f"Not created: {exc}.")
        else:
            messages.success(request, f"Task “{task.name}” created.")
            return redirect(_task_url(slug, task.name))
    return render(
        request, "annotate/task_new.html", {"project": project, "values": values}
    )


def _members_url(slug: str) -> str:
    return reverse("annotate:setup-members", kwargs={"slug": slug})


def _task_url(slug: str, task: str) -> str:
    return reverse("annotate:setup-task", kwargs={"slug": slug, "task": task})


@login_required
@require_GET
def members(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug, roles=ADMINS)
    context = {
        "project": project,
        "members": Membership.objects.filter(project=project)
        .select_related("user")
        .order_by("user__username"),
        "roles": Role.choices,
        "tasks": project.tasks.order_by("name"),
    }
    return render(request, "annotate/setup_members.html", context)


@login_required
@require_POST
def member_set(request: HttpRequest, slug: str) -> HttpResponse:
    """Invite an existing user (by user name) or change a member's role."""
    project, _ = get_project_for_user(request.user, slug, roles=ADMINS)
    username = request.POST.get("username", "").strip()
    role = request.POST.get("role", "")
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if role not in Role.values:
        messages.error(request, f"Unknown role {role!r}.")
    elif user is None:
        messages.error(
            request, f"No active user named “{username}”: create the account first."
        )
    else:
        try:
            services.membership_set(project=project, user=user, role=role)
        except ValueError as exc:
            messages.error(request, f"Not changed: {exc}.")
        else:
            messages.success(request, f"{username} is now {Role(role).label.lower()}.")
    return redirect(_members_url(slug))


@login_required
@require_POST
def project_update(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug, roles=ADMINS)
    try:
        services.project_update(
            project=project,
            name=request.POST.get("name", ""),
            description=request.POST.get("description", ""),
        )
    except ValueError as exc:
        messages.error(request, f"Not saved: {exc}.")
    else:
        messages.success(request, "Project saved.")
    return redirect(_members_url(slug))


@login_required
@require_POST
def labels_update(request: HttpRequest, slug: str, task: str) -> HttpResponse:
    """The labels' order, keys, descriptions and colours (one row per label)."""
    _, _, label_task = get_task_for_user(request.user, slug, task, roles=ADMINS)
    rows = [
        {
            "pk": pk,
            "order": request.POST.get(f"order-{pk}", "0") or "0",
            "key": request.POST.get(f"key-{pk}", ""),
            "description": request.POST.get(f"description-{pk}", ""),
            "colour": request.POST.get(f"colour-{pk}", ""),
        }
        for pk in label_task.labels.values_list("pk", flat=True)
    ]
    try:
        if not all(str(r["order"]).isdigit() for r in rows):
            raise ValueError("a label's place is a whole number")
        services.labels_update(task=label_task, rows=rows)
    except ValueError as exc:
        messages.error(request, f"Labels not saved: {exc}.")
    else:
        messages.success(request, "Labels saved.")
    return redirect(_task_url(slug, task))


@login_required
@require_POST
def member_remove(request: HttpRequest, slug: str, user: int) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug, roles=ADMINS)
    membership = get_object_or_404(Membership, project=project, user_id=user)
    try:
        services.membership_remove(project=project, user=membership.user)
    except ValueError as exc:
        messages.error(request, f"Not removed: {exc}.")
    else:
        messages.success(
            request,
            f"{membership.user.get_username()} left the project (their labels stay).",
        )
    return redirect(_members_url(slug))


@login_required
@require_GET
def task(request: HttpRequest, slug: str, task: str) -> HttpResponse:
    project, _, label_task = get_task_for_user(request.user, slug, task, roles=ADMINS)
    runs = list(LlmRun.objects.filter(task=label_task).order_by("-pk")[:10])
    context: dict[str, Any] = {
        "project": project,
        "task": label_task,
        "prompts": label_task.prompts.order_by("name"),
        "labels": list(label_task.ordered_labels()),
        "default_overlap": settings.PARLEY_OVERLAP_FRACTION,
        "colours": list(enumerate(COLOURS)),
        "runs": runs,
        "failures": LlmFailure.objects.filter(task=label_task)
        .select_related("utterance")
        .order_by("-pk")[:50],
        "failures_total": LlmFailure.objects.filter(task=label_task).count(),
        "llm_ready": bool(services.llm_settings_or_none()),
    }
    return render(request, "annotate/setup_task.html", context)


@login_required
@require_POST
def task_update(request: HttpRequest, slug: str, task: str) -> HttpResponse:
    _, _, label_task = get_task_for_user(request.user, slug, task, roles=ADMINS)
    try:
        tolerance = float(request.POST.get("budget_tolerance", "1") or 1)
        overlap = request.POST.get("overlap_fraction", "").strip()
        services.label_task_update(
            task=label_task,
            title=request.POST.get("title", "").strip()[:200],
            guidelines=request.POST.get("guidelines", ""),
            hide_suggestion=request.POST.get("hide_suggestion") == "on",
            budget_mode=request.POST.get("budget_mode") == "on",
            budget_tolerance=tolerance,
            overlap_fraction=float(overlap) if overlap else None,
        )
    except ValueError as exc:
        messages.error(request, f"Not saved: {exc}.")
    else:
        messages.success(request, "Task settings saved.")
    return redirect(_task_url(slug, task))


@login_required
@require_POST
def prompt_save(request: HttpRequest, slug: str, task: str) -> HttpResponse:
    _, _, label_task = get_task_for_user(request.user, slug, task, roles=ADMINS)
    name = request.POST.get("name", "").strip()
    try:
        if not name or len(name) > 50:
            raise ValueError("a prompt needs a name of at most 50 characters")
        turns = int(request.POST.get("context_turns", "3") or 3)
        if not 0 <= turns <= 20:
            raise ValueError("context turns are 0 to 20")
        services.prompt_save(
            task=label_task,
            name=name,
            template=request.POST.get("template", ""),
            context_turns=turns,
            active=request.POST.get("active") == "on",
        )
    except ValueError as exc:
        messages.error(request, f"Prompt not saved: {exc}.")
    else:
        messages.success(request, f"Prompt “{name}” saved.")
    return redirect(_task_url(slug, task) + "#prompts")


@login_required
@require_POST
def prompt_preview(request: HttpRequest, slug: str, task: str) -> HttpResponse:
    """The messages a template sends for a real utterance of the project (htmx, as typed)."""
    _, _, label_task = get_task_for_user(request.user, slug, task, roles=ADMINS)
    turns = request.POST.get("context_turns", "3")
    prompt = PromptTemplate(
        task=label_task,
        name="preview",
        template=request.POST.get("template", ""),
        context_turns=int(turns) if turns.isdigit() else 3,
    )
    utterance = (
        Utterance.objects.filter(
            dialogue__project_id=label_task.project_id, position__gte=2
        )
        .order_by("pk")
        .first()
        or Utterance.objects.filter(dialogue__project_id=label_task.project_id).first()
    )
    sent = None
    if utterance is not None:
        context = list(
            Utterance.objects.filter(
                dialogue_id=utterance.dialogue_id, position__lt=utterance.position
            ).order_by("position")
        )
        labels = list(label_task.ordered_labels().values_list("value", flat=True))
        sent = prompt_messages(prompt, labels, utterance, context)
    return render(request, "annotate/_prompt_preview.html", {"messages_sent": sent})


@login_required
@require_POST
def llm_run(request: HttpRequest, slug: str, task: str) -> HttpResponse:
    """Start an LLM run (every missing pair), or ask again for the failed ones."""
    _, _, label_task = get_task_for_user(request.user, slug, task, roles=ADMINS)
    user = cast(User, request.user)
    try:
        if request.POST.get("retry") == "1":
            run = services.llm_failures_retry(task=label_task, requested_by=user)
        else:
            run = services.llm_run_request(task=label_task, requested_by=user)
    except services.LlmNotConfigured as exc:
        messages.error(request, f"No LLM run: {exc}.")
    else:
        messages.success(
            request, f"LLM run {run.pk} is {run.get_status_display().lower()}."
        )
    return redirect(_task_url(slug, task) + "#runs")


@login_required
@require_GET
def llm_run_status(
    request: HttpRequest, slug: str, task: str, run: int
) -> HttpResponse:
    project, _, label_task = get_task_for_user(request.user, slug, task, roles=ADMINS)
    found = get_object_or_404(LlmRun, pk=run, task=label_task)
    response = render(
        request,
        "annotate/_llm_run.html",
        {"project": project, "task": label_task, "run": found},
    )
    finished = found.status in (LlmRun.Status.SUCCEEDED, LlmRun.Status.FAILED)
    return HttpResponseStopPolling(response.content) if finished else response
