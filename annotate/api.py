"""The HTTP API: JSON endpoints authenticated by API token (`Authorization: Bearer prl_…`).

A token carries its user's rights: the same project roles as the browser. Kept apart from
views.py because the authentication and the error format differ.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from . import openapi, predictor, ratelimit, selectors, services
from .access import ADMINS, EVERYONE, LEADS, get_project_for_user
from .exports import export_response
from .forms import ApiImportForm
from .models import ImportJob
from .transcripts import TranscriptError

View = Callable[..., HttpResponseBase]


def _too_many(retry_after: int, what: str) -> JsonResponse:
    response = JsonResponse(
        {"error": f"too many {what}; try again in {retry_after} s"}, status=429
    )
    response["Retry-After"] = str(retry_after)
    return response


def token_required(view: View) -> View:
    """Authenticate by bearer token, within the request budgets (annotate/ratelimit.py);
    map 404/403 to JSON errors."""

    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        failures = f"api-auth-failures:{ratelimit.client_ip(request)}"
        limit = settings.PARLEY_API_AUTH_FAILURES_PER_MIN
        wait = ratelimit.over_limit(failures, limit)
        if (
            wait is not None
        ):  # guessing tokens: not even looked at until the window ends
            return _too_many(wait, "failed authentications")
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        user = None
        if scheme.lower() in ("bearer", "token") and key:
            user = services.api_token_authenticate(key=key.strip())
        if user is None:
            ratelimit.spend(failures, limit)
            response = JsonResponse(
                {"error": "a valid API token is required"}, status=401
            )
            response["WWW-Authenticate"] = 'Bearer realm="parley"'
            return response
        wait = ratelimit.spend(f"api:{user.pk}", settings.PARLEY_API_REQUESTS_PER_MIN)
        if wait is not None:
            return _too_many(wait, "requests")
        request.user = user
        try:
            return view(request, *args, **kwargs)
        except Http404 as exc:
            return JsonResponse({"error": str(exc) or "not found"}, status=404)
        except PermissionDenied as exc:
            return JsonResponse({"error": str(exc) or "forbidden"}, status=403)

    return wrapper


@token_required
@require_GET
def projects(request: HttpRequest) -> HttpResponse:
    data = [
        {
            "slug": p.slug,
            "name": p.name,
            "role": selectors.project_role(user=request.user, project=p),
            "dialogues": p.n_dialogues,  # type: ignore[attr-defined]
        }
        for p in selectors.projects_for_user(user=request.user)  # type: ignore[arg-type]
    ]
    return JsonResponse({"projects": data})


@token_required
@require_POST
def import_create(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug, roles=ADMINS)
    form = ApiImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return JsonResponse(
            {"error": "invalid request", "fields": form.errors}, status=400
        )
    try:
        job = services.import_job_create(
            project=project,
            upload=form.cleaned_data["file"],
            user=request.user,  # type: ignore[arg-type]
            fmt=form.cleaned_data["format"] or None,
            update=form.cleaned_data["update"],
        )
    except TranscriptError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    response = JsonResponse(_job_json(job), status=202)
    response["Location"] = reverse("api:import-detail", args=[job.pk])
    return response


@token_required
@require_GET
def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(ImportJob.objects.select_related("project"), pk=pk)
    get_project_for_user(request.user, job.project.slug, roles=ADMINS)
    return JsonResponse(_job_json(job))


@token_required
@require_GET
def export(request: HttpRequest, slug: str, fmt: str) -> HttpResponseBase:
    project, _ = get_project_for_user(request.user, slug, roles=LEADS)
    return export_response(project, fmt)


@token_required
@require_POST
def predict(request: HttpRequest, slug: str, task: str) -> HttpResponse:
    """The task's active student on one utterance or a batch (docs/api.md).

    Body: {"text", "speaker"?, "context"?: [{"speaker"?, "text"}, …] oldest first}, or
    {"utterances": [that, …]}. Answer: the model version, the label set and, per utterance,
    the label and its probabilities. 400 for bad input, 409 before any model exists."""
    # One query for the task and the user's role on the hot path; otherwise the access
    # rules of get_project_for_user (404 for non-members) and a list of the tasks.
    label_task, role = selectors.task_and_role(user=request.user, slug=slug, task=task)
    if label_task is None or role is None:
        project, _ = get_project_for_user(request.user, slug, roles=EVERYONE)
        names = ", ".join(project.tasks.order_by("name").values_list("name", flat=True))
        return _bad(f"unknown task {task!r}; this project's tasks: {names}")
    try:
        body = json.loads(request.body or b"null")
    except ValueError:
        return _bad("the body must be JSON")
    batch = isinstance(body, dict) and "utterances" in body
    utterances = body.get("utterances") if batch else [body]
    problem = _utterances_problem(utterances)
    if problem:
        return _bad(problem)
    try:
        result = predictor.predict(label_task, utterances)
    except predictor.NoModel as exc:
        return JsonResponse({"error": str(exc)}, status=409)
    except predictor.NotExported as exc:
        return JsonResponse({"error": str(exc)}, status=503)
    if not batch:
        only = result.pop("predictions")[0]
        result.update(only)
    return JsonResponse(result)


@require_GET
def schema(request: HttpRequest) -> HttpResponse:
    """The OpenAPI 3.1 description of this API (no token needed)."""
    return JsonResponse(openapi.schema())


def _bad(message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=400)


def _utterances_problem(utterances: Any) -> str | None:
    """What is wrong with the utterances of a predict request, or None."""
    if not isinstance(utterances, list) or not utterances:
        return 'give {"text": …} or {"utterances": [{"text": …}, …]}'
    if len(utterances) > settings.PARLEY_PREDICT_MAX_BATCH:
        return (
            f"{len(utterances)} utterances in one request; at most "
            f"{settings.PARLEY_PREDICT_MAX_BATCH}"
        )
    limit = settings.PARLEY_IMPORT_MAX_UTTERANCE_CHARS
    for i, u in enumerate(utterances):
        where = f"utterances[{i}]" if len(utterances) > 1 else "the utterance"
        if not isinstance(u, dict):
            return f"{where} must be an object with a text"
        turns = u.get("context") or []
        if not isinstance(turns, list):
            return f"{where}: context must be a list of turns"
        for j, turn in enumerate([u, *turns]):
            name = where if j == 0 else f"{where}.context[{j - 1}]"
            text = turn.get("text") if isinstance(turn, dict) else None
            if not isinstance(text, str) or not text.strip():
                return f"{name}: text is missing or empty"
            if len(text) > limit:
                return f"{name}: text is {len(text)} characters long; at most {limit}"
            speaker = turn.get("speaker")
            if speaker is not None and not isinstance(speaker, str):
                return f"{name}: speaker must be a string"
    return None


def _job_json(job: ImportJob) -> dict[str, Any]:
    return {
        "id": job.pk,
        "project": job.project.slug,
        "file": job.original_name,
        "status": job.status,
        "progress": services.import_job_progress(job),
        "created": job.created,
        "updated": job.updated,
        "skipped": job.skipped,
        "utterances": job.utterances,
        "error": job.error,
        "url": reverse("api:import-detail", args=[job.pk]),
    }
