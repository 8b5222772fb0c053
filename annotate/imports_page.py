"""The project's imports page (project admins): upload a transcript file by drag-and-drop or
the file picker, follow its import live, read the result or the exact error (file, line,
field), and the history of the project's imports. Exports sit beside it. The import itself is
the worker's (`services.import_job_create`), as through the API."""

from __future__ import annotations

from typing import Any, cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseStopPolling

from . import services
from .access import ADMINS, get_project_for_user
from .forms import ApiImportForm
from .models import ImportJob
from .transcripts import TranscriptError

PAGE_SIZE = 25


@login_required
@require_http_methods(["GET", "POST"])
def imports(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug, roles=ADMINS)
    form = ApiImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = services.import_job_create(
                project=project,
                upload=form.cleaned_data["file"],
                user=cast(User, request.user),
                fmt=form.cleaned_data["format"] or None,
                update=form.cleaned_data["update"],
            )
        except TranscriptError as exc:
            form.add_error("file", exc.message)
        else:
            messages.success(request, f"“{job.original_name}” is being imported.")
            url = reverse("annotate:imports", kwargs={"slug": slug})
            return redirect(f"{url}#import-{job.pk}")
    jobs = Paginator(
        ImportJob.objects.filter(project=project).order_by("-pk"), PAGE_SIZE
    ).get_page(request.GET.get("page"))
    context: dict[str, Any] = {
        "project": project,
        "form": form,
        "jobs": [_row(job) for job in jobs],
        "page": jobs,
    }
    return render(
        request, "annotate/imports.html", context, status=400 if form.errors else 200
    )


@login_required
@require_GET
def import_status(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """One import's row; polled while it runs (286 tells htmx to stop once it is over)."""
    project, _ = get_project_for_user(request.user, slug, roles=ADMINS)
    job = get_object_or_404(ImportJob, pk=pk, project=project)
    response = render(
        request, "annotate/_import_row.html", {"project": project, "row": _row(job)}
    )
    return HttpResponseStopPolling(response.content) if job.is_finished else response


def _row(job: ImportJob) -> dict[str, Any]:
    return {"job": job, "percent": round(100 * services.import_job_progress(job))}
