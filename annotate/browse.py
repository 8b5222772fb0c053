"""The corpus browser's pages (leads and admins): a task's utterances filtered and paged, a
dialogue with every label side by side, and sending an utterance back to the queue."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from . import services
from .access import LEADS, get_project_for_user, get_task_for_user
from .models import Dialogue, QueueItem
from .selectors import browse


@login_required
@require_GET
def corpus(request: HttpRequest, slug: str, task: str) -> HttpResponse:
    project, _, label_task = get_task_for_user(request.user, slug, task, roles=LEADS)
    filters = browse.Filters.from_query(request.GET)
    page = browse.corpus_page(task=label_task, filters=filters)
    kept = {k: v for k, v in request.GET.items() if k != "after" and v}
    context = {
        "project": project,
        "task": label_task,
        "filters": filters,
        "labels": browse.label_choices(label_task),
        "disagreements": browse.DISAGREEMENTS,
        "page": page,
        "next_query": urlencode({**kept, "after": page["next_after"]})
        if page["next_after"]
        else "",
        "first_query": urlencode(kept),
    }
    return render(request, "annotate/corpus.html", context)


@login_required
@require_GET
def dialogue(request: HttpRequest, slug: str, dialogue: int) -> HttpResponse:
    project, _ = get_project_for_user(request.user, slug, roles=LEADS)
    found = get_object_or_404(Dialogue, pk=dialogue, project=project)
    tasks = list(project.tasks.order_by("name"))
    context = {
        "project": project,
        "dialogue": found,
        "tasks": browse.dialogue_labels(dialogue_id=found.pk, tasks=tasks),
    }
    return render(request, "annotate/corpus_dialogue.html", context)


@login_required
@require_POST
def requeue(request: HttpRequest, slug: str, task: str, utterance: int) -> HttpResponse:
    _, _, label_task = get_task_for_user(request.user, slug, task, roles=LEADS)
    item = get_object_or_404(QueueItem, task=label_task, utterance_id=utterance)
    services.queue_requeue(task=label_task, utterance_id=item.utterance_id)
    messages.success(
        request,
        f"Turn {item.utterance.position + 1} is back in the {label_task.name} queue, at the "
        "front, for an annotator who has not answered it.",
    )
    url = reverse(
        "annotate:corpus-dialogue",
        kwargs={"slug": slug, "dialogue": item.utterance.dialogue_id},
    )
    return redirect(f"{url}#u{item.utterance_id}")
