"""Browser views: function views, one service or selector each."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from . import selectors
from .models import Project, Role
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
        "tasks": selectors.project_overview(project=project),
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
