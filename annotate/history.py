"""The annotator's history page: their last answers on a task, each of which they may change
(a new label row; the old one is kept, retracted, and the lead sees the change)."""

from __future__ import annotations

from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from . import selectors, services
from .access import get_task_for_user
from .models import HumanLabel

HISTORY_LENGTH = 50


@login_required
@require_GET
def history(request: HttpRequest, slug: str, task: str) -> HttpResponse:
    project, _, label_task = get_task_for_user(request.user, slug, task)
    context = {
        "project": project,
        "task": label_task,
        "labels": list(label_task.ordered_labels()),
        "answers": selectors.annotator_history(
            task=label_task, user=cast(User, request.user), limit=HISTORY_LENGTH
        ),
        "length": HISTORY_LENGTH,
    }
    return render(request, "annotate/history.html", context)


@login_required
@require_POST
def history_change(
    request: HttpRequest, slug: str, task: str, label: int
) -> HttpResponse:
    """Change one answer; back to the history page with what happened."""
    _, _, label_task = get_task_for_user(request.user, slug, task)
    # the answer is looked up through the URL's task: another task's id is a 404
    get_object_or_404(HumanLabel, pk=label, task=label_task)
    chosen = request.POST.get("label", "")
    try:
        changed = services.label_change(
            label_id=label, annotator=cast(User, request.user), label=chosen
        )
    except services.SubmitError as exc:
        messages.error(request, f"Not changed: {exc}.")
    else:
        if changed.pk == label:
            messages.info(request, f"Unchanged: it was already “{chosen}”.")
        else:
            messages.success(request, f"Changed to “{chosen}”.")
    return redirect(reverse("annotate:history", kwargs={"slug": slug, "task": task}))
