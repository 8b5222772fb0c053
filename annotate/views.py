"""Browser views: function views that read input through a form, call one service or selector,
and render. Objects are looked up through `access` (the project and task of the URL)."""

from __future__ import annotations

import uuid
from typing import Any, cast
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponsePermanentRedirect,
    JsonResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from . import charts, dashboards, exports, selectors, services
from .access import (
    LEADS,
    get_item_for_task,
    get_project_for_user,
    get_task_for_user,
    item_ids_of_task,
)
from .forms import AdjudicateForm, ItemsForm, ShowingForm, SubmitForm
from .models import (
    LabelRetraction,
    LabelTask,
    ModelVersion,
    Project,
    QueueItem,
    TrainingRun,
    Utterance,
)

FRAGMENT_HEADER = "X-Parley-Fragment"
"""The queue page's one fragment protocol: queue.js sends `X-Parley-Fragment: 1` and gets the
next item's HTML (or an error text) instead of a redirect. htmx is used only for polling."""


def _user(request: HttpRequest) -> User:
    """The signed-in user (every view here but healthz is behind login_required)."""
    return cast(User, request.user)


def _wants_fragment(request: HttpRequest) -> bool:
    return request.headers.get(FRAGMENT_HEADER) == "1"


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers and crawlers ask for /favicon.ico whatever the page links: send them to it."""
    return HttpResponsePermanentRedirect(static("annotate/favicon.svg"))


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
    reachable = cache.add("healthz", 1, timeout=1) or cache.get("healthz")
    return JsonResponse({"database": "ok", "cache": "ok" if reachable else "down"})


@login_required
@require_GET
def projects(request: HttpRequest) -> HttpResponse:
    items = selectors.projects_for_user(user=_user(request))
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
    return exports.export_response(project, fmt)


# --- The annotator workspace (queue) and the leads' review ---------------------------------


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
    project, _, label_task = get_task_for_user(request.user, slug, task)
    wanted = request.GET.get(
        "item", ""
    )  # after an undo: the item taken back comes first
    current, ahead = services.queue_workspace(
        task=label_task,
        annotator=_user(request),
        wanted=int(wanted) if wanted.isdigit() else None,
    )
    entry = _item_context(current)
    undone = request.GET.get("undone", "")
    if entry is not None and any(label.value == undone for label in entry["labels"]):
        entry["undone"] = undone  # the answer just taken back: shown, and highlighted
    context = {
        "project": project,
        "task": label_task,
        "current": entry,
        "ahead": _item_context(ahead),
        "progress": selectors.annotator_progress(task=label_task, user=_user(request)),
        "undo_grace_s": settings.PARLEY_UNDO_GRACE_S,
        "renew_every_s": max(settings.PARLEY_CLAIM_LEASE_S // 3, 5),
    }
    return render(request, "annotate/queue.html", context)


def _next_ahead(
    request: HttpRequest, task: LabelTask, project: Project, showing: list[int]
) -> HttpResponse:
    """After a submit/skip/flag: the item to fetch ahead (the page already shows `showing`)."""
    ahead = services.queue_claim(task=task, annotator=_user(request), exclude=showing)
    context = {"project": project, "task": task, "entry": _item_context(ahead)}
    response = render(request, "annotate/_queue_item.html", context)
    progress = selectors.annotator_progress(task=task, user=_user(request))
    response["X-Parley-Done-Today"] = str(progress["done_today"])
    response["X-Parley-Left"] = str(progress["left"])
    return response


@login_required
@require_POST
def queue_submit(request: HttpRequest, slug: str, task: str, item: int) -> HttpResponse:
    """Store the answer (idempotent by its submission key). With JavaScript the response is
    the next item to fetch ahead; without, a redirect back to the queue."""
    project, _, label_task = get_task_for_user(request.user, slug, task)
    get_item_for_task(label_task, item)
    form = SubmitForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("label and submission_key are required")
    try:
        saved = services.label_submit(
            item_id=item,
            annotator=_user(request),
            label=form.cleaned_data["label"],
            submission_key=form.cleaned_data["submission_key"],
        )
    except services.SubmitError as exc:
        if _wants_fragment(request):
            return HttpResponse(str(exc), status=409)
        messages.error(request, str(exc))
        return redirect("annotate:queue", slug=slug, task=task)
    if _wants_fragment(request):
        response = _next_ahead(
            request, label_task, project, form.cleaned_data["showing"]
        )
        response["X-Parley-Saved"] = f"{saved.pk}"
        return response
    messages.success(request, f"Saved “{saved.label.value}”. Press U to undo.")
    return redirect("annotate:queue", slug=slug, task=task)


@login_required
@require_POST
def queue_skip(request: HttpRequest, slug: str, task: str, item: int) -> HttpResponse:
    project, _, label_task = get_task_for_user(request.user, slug, task)
    get_item_for_task(label_task, item)
    form = ShowingForm(request.POST)
    form.is_valid()  # every field is optional and cleans to a safe value
    services.queue_skip(item_id=item, annotator=_user(request))
    if _wants_fragment(request):
        return _next_ahead(request, label_task, project, form.cleaned_data["showing"])
    return redirect("annotate:queue", slug=slug, task=task)


@login_required
@require_POST
def queue_flag(request: HttpRequest, slug: str, task: str, item: int) -> HttpResponse:
    project, _, label_task = get_task_for_user(request.user, slug, task)
    get_item_for_task(label_task, item)
    form = ShowingForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("the comment is longer than 2,000 characters")
    services.flag_create(
        item_id=item, annotator=_user(request), comment=form.cleaned_data["comment"]
    )
    if _wants_fragment(request):
        return _next_ahead(request, label_task, project, form.cleaned_data["showing"])
    messages.success(request, "Flagged for review.")
    return redirect("annotate:queue", slug=slug, task=task)


@login_required
@require_GET
def queue_dialogue(
    request: HttpRequest, slug: str, task: str, item: int
) -> HttpResponse:
    """Every turn of the item's dialogue: a fragment for the workspace, else a page."""
    project, _, label_task = get_task_for_user(request.user, slug, task)
    queue_item = get_item_for_task(label_task, item)
    context = {
        "project": project,
        "task": label_task,
        "entry": selectors.queue_item_context(item=queue_item, whole=True),
    }
    if _wants_fragment(request):
        return render(request, "annotate/_dialogue_turns.html", context)
    return render(request, "annotate/queue_dialogue.html", context)


@login_required
@require_GET
def queue_why(request: HttpRequest, slug: str, task: str, item: int) -> HttpResponse:
    """Why the item is in front: its trust and the signals behind it, in words."""
    project, _, label_task = get_task_for_user(request.user, slug, task)
    queue_item = get_item_for_task(label_task, item)
    context = {
        "project": project,
        "task": label_task,
        "item": queue_item,
        "why": selectors.item_reasons(item=queue_item),
    }
    fragment = _wants_fragment(request)
    return render(
        request, f"annotate/{'_why' if fragment else 'queue_why'}.html", context
    )


@login_required
@require_POST
def queue_renew(request: HttpRequest, slug: str, task: str) -> HttpResponse:
    """Keep the items on the page claimed (called while the page is visible)."""
    _, _, label_task = get_task_for_user(request.user, slug, task)
    form = ItemsForm(request.POST)
    form.is_valid()
    wanted = form.cleaned_data["item"]
    ids = item_ids_of_task(label_task, wanted)
    held = [services.queue_renew(item_id=pk, annotator=_user(request)) for pk in ids]
    return HttpResponse(status=204 if all(held) and len(ids) == len(wanted) else 409)


@login_required
@require_POST
def queue_release(request: HttpRequest, slug: str, task: str) -> HttpResponse:
    """The page was left (navigator.sendBeacon): its claims run out in 15 s unless it comes
    back (a reload), which keeps them."""
    _, _, label_task = get_task_for_user(request.user, slug, task)
    form = ItemsForm(request.POST)
    form.is_valid()
    for pk in item_ids_of_task(label_task, form.cleaned_data["item"]):
        services.queue_release(item_id=pk, annotator=_user(request), after_s=15)
    return HttpResponse(status=204)


@login_required
@require_POST
def queue_undo(request: HttpRequest, slug: str, task: str) -> HttpResponse:
    _, _, label_task = get_task_for_user(request.user, slug, task)
    item = services.label_undo(task=label_task, annotator=_user(request))
    url = reverse("annotate:queue", kwargs={"slug": slug, "task": task})
    if item is None:
        if _wants_fragment(request):
            return HttpResponse("Nothing to undo.", status=409)
        messages.info(request, "Nothing to undo.")
        return redirect(url)
    taken_back = (
        LabelRetraction.objects.filter(
            label__annotator=_user(request), label__utterance_id=item.utterance_id
        )
        .order_by("-pk")
        .values_list("label__label__value", flat=True)
        .first()
    )
    location = f"{url}?{urlencode({'item': item.pk, 'undone': taken_back or ''})}"
    if _wants_fragment(request):
        return JsonResponse({"location": location})
    return redirect(location)


@login_required
@require_GET
def review(request: HttpRequest, slug: str, task: str) -> HttpResponse:
    """Leads: flagged items and disagreements between annotators, to adjudicate."""
    project, _, label_task = get_task_for_user(request.user, slug, task, roles=LEADS)
    context = {
        "project": project,
        "task": label_task,
        "rows": selectors.review_rows(task=label_task),
        "labels": list(label_task.ordered_labels()),
    }
    return render(request, "annotate/review.html", context)


@login_required
@require_POST
def review_adjudicate(
    request: HttpRequest, slug: str, task: str, utterance: int
) -> HttpResponse:
    _, _, label_task = get_task_for_user(request.user, slug, task, roles=LEADS)
    get_object_or_404(Utterance, pk=utterance, dialogue__project=label_task.project)
    form = AdjudicateForm(request.POST)
    if (
        not form.is_valid()
        or not label_task.labels.filter(value=form.cleaned_data["label"]).exists()
    ):
        return HttpResponseBadRequest("unknown label")
    label = form.cleaned_data["label"]
    services.label_adjudicate(
        task=label_task, utterance_id=utterance, lead=_user(request), label=label
    )
    messages.success(request, f"Decided “{label}”.")
    return redirect("annotate:review", slug=slug, task=task)


# --- Lead dashboards ----------------------------------------------------------------------


@login_required
@require_GET
def dashboard(request: HttpRequest, slug: str, task: str) -> HttpResponse:
    """Leads: student, LLM, trust, people and queue, for one label task; every chart has its
    table."""
    project, _, label_task = get_task_for_user(request.user, slug, task, roles=LEADS)
    data = dashboards.dashboard_data(task=label_task)
    students, burndown = data["student"], data["burndown"]
    active = ModelVersion.objects.filter(task=label_task, is_active=True).first()
    context = {
        "project": project,
        "task": label_task,
        **data,
        "runs": TrainingRun.objects.filter(task=label_task).order_by("-created_at")[
            :10
        ],
        "student_chart": charts.line_chart(
            "Student accuracy and macro-F1 by model version (human labels it did not "
            "train on)",
            [f"v{row['version'].version}" for row in students],
            {
                "accuracy": [row["scores"].accuracy for row in students],
                "macro-F1": [row["scores"].macro_f1 for row in students],
            },
            empty="No model yet: the first retrain draws this chart."
            if active is None
            else "No human label the models did not train on yet.",
        ),
        "reliability_chart": charts.reliability_diagram(
            "Trust reliability: share of LLM labels found right per trust bin",
            data["trust"]["bins"],
        ),
        "burndown_chart": charts.line_chart(
            "Items left in the queue, by day",
            [r["day"].isoformat() for r in burndown],
            {"left": [r["left"] for r in burndown]},
            y_max=max([r["left"] for r in burndown] + [1]),
            y_format=".0f",
        ),
        "active_model": active,
        "active_model_onnx": active is not None and exports.onnx_exported(active),
    }
    return render(request, "annotate/dashboard.html", context)


@login_required
@require_GET
def run_status(request: HttpRequest, slug: str, task: str, run: int) -> HttpResponse:
    """One training run's row; polled by htmx every 2 s until the run ends."""
    project, _, label_task = get_task_for_user(request.user, slug, task, roles=LEADS)
    training_run = get_object_or_404(TrainingRun, pk=run, task=label_task)
    context = {"project": project, "task": label_task, "run": training_run}
    response = render(request, "annotate/_run_status.html", context)
    if training_run.status not in TrainingRun.ACTIVE_STATUSES:
        return HttpResponseStopPolling(response.content)
    return response


@login_required
@require_POST
def retrain(request: HttpRequest, slug: str, task: str) -> HttpResponse:
    _, _, label_task = get_task_for_user(request.user, slug, task, roles=LEADS)
    run = services.training_run_request(task=label_task, requested_by=_user(request))
    messages.success(
        request,
        f"Training run {run.pk} requested: its status and progress are live under "
        "Training runs.",
    )
    return redirect("annotate:dashboard", slug=slug, task=task)


@login_required
@require_GET
def student_export(request: HttpRequest, slug: str, task: str) -> HttpResponseBase:
    """The active student as a zip: the Hugging Face model directory, or with `?format=onnx`
    / `onnx-int8` the ONNX model with its tokenizer."""
    _, _, label_task = get_task_for_user(request.user, slug, task, roles=LEADS)
    version = exports.active_student(label_task)
    if version is None:
        raise Http404("No trained student for this task yet.")
    kind = request.GET.get("format", "hf")
    if kind not in ("hf", "onnx", "onnx-int8"):
        return HttpResponseBadRequest("format: hf, onnx or onnx-int8")
    if kind != "hf" and not exports.onnx_exported(version):
        raise Http404("This student has no ONNX export.")
    suffix = "" if kind == "hf" else f"-{kind}"
    name = f"{slug}-{task}-student-v{version.version}{suffix}"
    archive = exports.student_archive(version, name, kind=kind)
    return FileResponse(archive, as_attachment=True, filename=f"{name}.zip")
