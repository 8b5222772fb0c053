"""The HTTP API: JSON endpoints authenticated by API token (`Authorization: Bearer prl_…`).

A token carries its user's rights: the same project roles as the browser. Kept apart from
views.py because the authentication and the error format differ.
"""

from __future__ import annotations

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

from . import ratelimit, selectors, services
from .access import ADMINS, LEADS, get_project_for_user
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
