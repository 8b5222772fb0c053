"""Browser views: function views, one service or selector each."""

from __future__ import annotations

import tempfile
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, connection
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from . import charts, dashboards, selectors, services
from .models import (
    LabelTask,
    ModelVersion,
    Project,
    QueueItem,
    Role,
    TrainingRun,
    Utterance,
)
from .transcripts import csv_writer_line, dialogue_to_csv_rows, dialogue_to_json

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


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """For load balancers and container health checks: 200 when the database answers.

    Redis is reported but does not fail the check: Parley serves without it (degraded).
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return JsonResponse({"database": "down"}, status=503)
    cache_state = (
        "ok" if cache.add("healthz", 1, timeout=1) or cache.get("healthz") else "down"
    )
    return JsonResponse({"database": "ok", "cache": cache_state})


@login_required
@require_GET
def projects(request: HttpRequest) -> HttpResponse:
    items = selectors.projects_for_user(user=request.user)  # type: ignore[arg-type]
    return render(request, "annotate/projects.html", {"projects": items})


@login_required
@require_GET
def project_detail(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = get_project_for_user(request.user, slug)
    context = {
        "project": project,
        "role": role,
        "can_export": role in LEADS,
        "tasks": selectors.project_overview(project=project, user=_user(request)),
    }
    return render(request, "annotate/project.html", context)


@login_required
@require_GET
def project_export(request: HttpRequest, slug: str, fmt: str) -> HttpResponseBase:
    project, _ = get_project_for_user(request.user, slug, roles=LEADS)
    return export_response(project, fmt)


def export_response(project: Project, fmt: str) -> StreamingHttpResponse:
    """The project's corpus as a streamed JSONL or CSV download."""
    if fmt == "jsonl":
        body: Iterator[str] = (
            dialogue_to_json(record, predictions) + "\n"
            for record, predictions in selectors.transcript_records(project=project)
        )
        content_type = "application/x-ndjson; charset=utf-8"
    elif fmt == "csv":
        body = _csv_lines(project)
        content_type = "text/csv; charset=utf-8"
    else:
        raise Http404("Unknown export format.")
    response = StreamingHttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{project.slug}.{fmt}"'
    return response


def _csv_lines(project: Project) -> Iterator[str]:
    header = selectors.export_csv_header(project=project)
    yield csv_writer_line(header)
    for record, _ in selectors.transcript_records(project=project):
        for row in dialogue_to_csv_rows(record, header):
            yield csv_writer_line(row)


# --- The annotator workspace (queue) and the leads' review ---------------------------------


def _user(request: HttpRequest) -> User:
    """The signed-in user (every view here is behind login_required)."""
    return cast(User, request.user)


def _get_task_for_user(
    request: HttpRequest, slug: str, task_name: str, *, roles: frozenset[str] = EVERYONE
) -> tuple[Project, str, LabelTask]:
    project, role = get_project_for_user(request.user, slug, roles=roles)
    return project, role, get_object_or_404(LabelTask, project=project, name=task_name)


def _get_item_for_task(task: LabelTask, item_id: int) -> QueueItem:
    """A queue item of this task: an id from another task or project is a 404, never a write."""
    return get_object_or_404(QueueItem, pk=item_id, task=task)


def _item_ids_of_task(request: HttpRequest, task: LabelTask) -> list[int]:
    """The posted item ids that belong to this task (the rest are ignored)."""
    wanted = [int(v) for v in request.POST.getlist("item") if v.isdigit()]
    return list(
        QueueItem.objects.filter(task=task, pk__in=wanted).values_list("pk", flat=True)
    )


def _item_context(item: QueueItem | None) -> dict[str, Any] | None:
    if item is None:
        return None
    context = selectors.queue_item_context(item=item)
    context["submission_key"] = (
        f"{item.pk}-{uuid.uuid4().hex}"  # one per item and attempt
    )
    return context


@login_required
@require_GET
def queue(request: HttpRequest, slug: str, task: str) -> HttpResponse:
    """The workspace: the current item, and the next one already claimed and rendered."""
    project, _, label_task = _get_task_for_user(request, slug, task)
    user: Any = request.user
    current = None
    wanted = request.GET.get("item", "")
    if wanted.isdigit():  # after an undo: the item taken back comes first
        current = QueueItem.objects.filter(
            pk=int(wanted), task=label_task, claimed_by=user, open=True
        ).first()
    current = current or services.queue_claim(task=label_task, annotator=user)
    ahead = (
        services.queue_claim(task=label_task, annotator=user, exclude=[current.pk])
        if current
        else None
    )
    shown = [i.pk for i in (current, ahead) if i is not None]
    for extra in QueueItem.objects.filter(task=label_task, claimed_by=user).exclude(
        pk__in=shown
    ):
        services.queue_release(item_id=extra.pk, annotator=user)
    context = {
        "project": project, "task": label_task, "current": _item_context(current),
        "ahead": _item_context(ahead), "progress": selectors.annotator_progress(task=label_task, user=user),
        "undo_grace_s": settings.PARLEY_UNDO_GRACE_S, "renew_every_s": max(settings.PARLEY_CLAIM_LEASE_S // 3, 5),
    }  # fmt: skip
    return render(request, "annotate/queue.html", context)


def _next_ahead(
    request: HttpRequest, task: LabelTask, project: Project
) -> HttpResponse:
    """After a submit/skip/flag: the item to fetch ahead (the page already shows `showing`)."""
    showing = [int(v) for v in request.POST.getlist("showing") if v.isdigit()]
    user: Any = request.user
    ahead = services.queue_claim(task=task, annotator=user, exclude=showing)
    response = render(request, "annotate/_queue_item.html",
                      {"project": project, "task": task, "entry": _item_context(ahead)})  # fmt: skip
    progress = selectors.annotator_progress(task=task, user=user)
    response["X-Parley-Done-Today"] = str(progress["done_today"])
    response["X-Parley-Left"] = str(progress["left"])
    return response


@login_required
@require_POST
def queue_submit(request: HttpRequest, slug: str, task: str, item: int) -> HttpResponse:
    """Store the answer (idempotent by its submission key). With JavaScript the response is
    the next item to fetch ahead; without, a redirect back to the queue."""
    project, _, label_task = _get_task_for_user(request, slug, task)
    _get_item_for_task(label_task, item)
    key = request.POST.get("submission_key", "")
    label = request.POST.get("label", "")
    if not key or not label:
        return HttpResponseBadRequest("label and submission_key are required")
    try:
        saved = services.label_submit(item_id=item, annotator=_user(request), label=label,
                                      submission_key=key)  # fmt: skip
    except services.SubmitError as exc:
        if _wants_fragment(request):
            return HttpResponse(str(exc), status=409)
        messages.error(request, str(exc))
        return redirect("annotate:queue", slug=slug, task=task)
    if _wants_fragment(request):
        response = _next_ahead(request, label_task, project)
        response["X-Parley-Saved"] = f"{saved.pk}"
        return response
    messages.success(request, f"Saved “{saved.label.value}”. Press U to undo.")
    return redirect("annotate:queue", slug=slug, task=task)


@login_required
@require_POST
def queue_skip(request: HttpRequest, slug: str, task: str, item: int) -> HttpResponse:
    project, _, label_task = _get_task_for_user(request, slug, task)
    _get_item_for_task(label_task, item)
    services.queue_skip(item_id=item, annotator=_user(request))
    if _wants_fragment(request):
        return _next_ahead(request, label_task, project)
    return redirect("annotate:queue", slug=slug, task=task)


@login_required
@require_POST
def queue_flag(request: HttpRequest, slug: str, task: str, item: int) -> HttpResponse:
    project, _, label_task = _get_task_for_user(request, slug, task)
    _get_item_for_task(label_task, item)
    services.flag_create(
        item_id=item, annotator=_user(request), comment=request.POST.get("comment", "")
    )
    if _wants_fragment(request):
        return _next_ahead(request, label_task, project)
    messages.success(request, "Flagged for review.")
    return redirect("annotate:queue", slug=slug, task=task)


@login_required
@require_GET
def queue_dialogue(
    request: HttpRequest, slug: str, task: str, item: int
) -> HttpResponse:
    """Every turn of the item's dialogue: a fragment for the workspace, else a page."""
    project, _, label_task = _get_task_for_user(request, slug, task)
    queue_item = _get_item_for_task(label_task, item)
    context = {
        "project": project,
        "task": label_task,
        "entry": selectors.queue_item_context(item=queue_item, whole=True),
    }
    if _wants_fragment(request):
        return render(request, "annotate/_dialogue_turns.html", context)
    return render(request, "annotate/queue_dialogue.html", context)


@login_required
@require_POST
def queue_renew(request: HttpRequest, slug: str, task: str) -> HttpResponse:
    """Keep the items on the page claimed (called while the page is visible)."""
    _, _, label_task = _get_task_for_user(request, slug, task)
    wanted = [v for v in request.POST.getlist("item") if v.isdigit()]
    ids = _item_ids_of_task(request, label_task)
    held = [services.queue_renew(item_id=pk, annotator=_user(request)) for pk in ids]
    return HttpResponse(status=204 if all(held) and len(ids) == len(wanted) else 409)


@login_required
@require_POST
def queue_release(request: HttpRequest, slug: str, task: str) -> HttpResponse:
    """The page was left (navigator.sendBeacon): its claims run out in 15 s unless it comes
    back (a reload), which keeps them."""
    _, _, label_task = _get_task_for_user(request, slug, task)
    for pk in _item_ids_of_task(request, label_task):
        services.queue_release(item_id=pk, annotator=_user(request), after_s=15)
    return HttpResponse(status=204)


@login_required
@require_POST
def queue_undo(request: HttpRequest, slug: str, task: str) -> HttpResponse:
    _, _, label_task = _get_task_for_user(request, slug, task)
    item = services.label_undo(task=label_task, annotator=_user(request))
    url = reverse("annotate:queue", kwargs={"slug": slug, "task": task})
    if item is None:
        if _wants_fragment(request):
            return HttpResponse("Nothing to undo.", status=409)
        messages.info(request, "Nothing to undo.")
        return redirect(url)
    if _wants_fragment(request):
        return JsonResponse({"location": f"{url}?item={item.pk}"})
    return redirect(f"{url}?item={item.pk}")


def _wants_fragment(request: HttpRequest) -> bool:
    return request.headers.get("X-Parley-Fragment") == "1" or bool(
        request.headers.get("HX-Request")
    )


@login_required
@require_GET
def review(request: HttpRequest, slug: str, task: str) -> HttpResponse:
    """Leads: flagged items and disagreements between annotators, to adjudicate."""
    project, _, label_task = _get_task_for_user(request, slug, task, roles=LEADS)
    context = {"project": project, "task": label_task, "rows": selectors.review_rows(task=label_task),
               "labels": list(label_task.labels.order_by("order", "pk"))}  # fmt: skip
    return render(request, "annotate/review.html", context)


@login_required
@require_POST
def review_adjudicate(
    request: HttpRequest, slug: str, task: str, utterance: int
) -> HttpResponse:
    _, _, label_task = _get_task_for_user(request, slug, task, roles=LEADS)
    get_object_or_404(Utterance, pk=utterance, dialogue__project=label_task.project)
    label = request.POST.get("label", "")
    if not label_task.labels.filter(value=label).exists():
        return HttpResponseBadRequest("unknown label")
    services.label_adjudicate(
        task=label_task, utterance_id=utterance, lead=_user(request), label=label
    )
    messages.success(request, f"Decided “{label}”.")
    return redirect("annotate:review", slug=slug, task=task)


# --- Lead dashboards ----------------------------------------------------------------------


@login_required
@require_GET
def dashboard(request: HttpRequest, slug: str, task: str) -> HttpResponse:
    """Leads: student, LLM, trust, people and queue, for one label task; every chart has its table."""
    project, _, label_task = _get_task_for_user(request, slug, task, roles=LEADS)
    data = dashboards.dashboard_data(task=label_task)
    students = data["student"]
    context = {
        "project": project, "task": label_task, **data,
        "runs": TrainingRun.objects.filter(task=label_task).order_by("-created_at")[:10],
        "student_chart": charts.line_chart(
            "Student accuracy and macro-F1 by model version (human labels it did not train on)",
            [f"v{row['version'].version}" for row in students],
            {"accuracy": [row["scores"].accuracy for row in students],
             "macro-F1": [row["scores"].macro_f1 for row in students]}),
        "reliability_chart": charts.reliability_diagram(
            "Trust reliability: share of LLM labels found right per trust bin", data["trust"]["bins"]),
        "burndown_chart": charts.line_chart(
            "Items left in the queue, by day", [r["day"].isoformat() for r in data["burndown"]],
            {"left": [r["left"] for r in data["burndown"]]},
            y_max=max([r["left"] for r in data["burndown"]] + [1]), y_format=".0f"),
        "active_model": ModelVersion.objects.filter(task=label_task, is_active=True).first(),
    }  # fmt: skip
    return render(request, "annotate/dashboard.html", context)


@login_required
@require_GET
def run_status(request: HttpRequest, slug: str, task: str, run: int) -> HttpResponse:
    """One training run's row; polled by htmx every 2 s until the run ends."""
    project, _, label_task = _get_task_for_user(request, slug, task, roles=LEADS)
    training_run = get_object_or_404(TrainingRun, pk=run, task=label_task)
    response = render(request, "annotate/_run_status.html",
                      {"project": project, "task": label_task, "run": training_run})  # fmt: skip
    if training_run.status not in TrainingRun.ACTIVE_STATUSES:
        return HttpResponseStopPolling(response.content)
    return response


@login_required
@require_POST
def retrain(request: HttpRequest, slug: str, task: str) -> HttpResponse:
    _, _, label_task = _get_task_for_user(request, slug, task, roles=LEADS)
    run = services.training_run_request(task=label_task, requested_by=_user(request))
    messages.success(request, f"Training run {run.pk} is {run.status}.")
    return redirect("annotate:dashboard", slug=slug, task=task)


@login_required
@require_GET
def student_export(request: HttpRequest, slug: str, task: str) -> HttpResponseBase:
    """The active student as a zip of a Hugging Face model directory."""
    _, _, label_task = _get_task_for_user(request, slug, task, roles=LEADS)
    version = ModelVersion.objects.filter(task=label_task, is_active=True).first()
    if version is None or not (Path(version.artifact_path) / "full").is_dir():
        raise Http404("No trained student for this task yet.")
    directory = Path(version.artifact_path) / "full"
    name = f"{slug}-{task}-student-v{version.version}"
    # Spooled to a temporary file, which the response closes (and so deletes) when sent.
    archive = tempfile.TemporaryFile()  # noqa: SIM115
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                zf.write(path, f"{name}/{path.relative_to(directory)}")
    archive.seek(0)
    return FileResponse(archive, as_attachment=True, filename=f"{name}.zip")
