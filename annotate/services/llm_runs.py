"""LLM teacher runs: every (utterance, active prompt) pair still missing, asked concurrently."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from learner import ensemble_summary

from ..jobs import LLM_LABEL_RUN, enqueue_on_commit
from ..llm import Answer, ChatClient, LlmError, LlmSettings, MalformedAnswer
from ..models import (
    LabelTask,
    LlmFailure,
    LlmLabel,
    LlmRun,
    PromptTemplate,
    SoftLabel,
    Utterance,
)
from ..prompts import prompt_messages
from .budget import budget_student_label
from .queue import queue_sync

logger = logging.getLogger(__name__)


class LlmNotConfigured(Exception):
    """No LLM provider is configured (LLM_BASE_URL)."""


def llm_settings_or_none() -> LlmSettings | None:
    """The provider's settings, or None when no LLM is configured."""
    try:
        return llm_settings()
    except LlmNotConfigured:
        return None


def llm_settings() -> LlmSettings:
    if not settings.LLM_BASE_URL:
        raise LlmNotConfigured("set LLM_BASE_URL and LLM_MODEL to label with an LLM")
    return LlmSettings(
        base_url=settings.LLM_BASE_URL,
        model=settings.LLM_MODEL,
        api_key=settings.LLM_API_KEY,
        concurrency=settings.LLM_CONCURRENCY,
        requests_per_second=settings.LLM_REQUESTS_PER_SECOND,
        timeout=settings.LLM_TIMEOUT_S,
        max_retries=settings.LLM_MAX_RETRIES,
        logprobs=settings.LLM_LOGPROBS,
        samples=settings.LLM_SAMPLES,
    )


def llm_failures_retry(*, task: LabelTask, requested_by: User | None = None) -> LlmRun:
    """Ask again for the pairs whose answers were malformed: their failures are cleared (the
    run that recorded them keeps its count) and a run is requested."""
    model = llm_settings().model
    LlmFailure.objects.filter(task=task, model=model).delete()
    return llm_run_request(task=task, requested_by=requested_by)


def llm_run_request(*, task: LabelTask, requested_by: User | None = None) -> LlmRun:
    """Queue an LLM run for `task`, or return the one already queued or running."""
    model = llm_settings().model
    with transaction.atomic():
        active = (
            LlmRun.objects.select_for_update()
            .filter(task=task, status__in=[LlmRun.Status.QUEUED, LlmRun.Status.RUNNING])
            .first()
        )
        if active is None:
            active = LlmRun.objects.create(
                task=task, model=model, requested_by=requested_by
            )
        elif active.status == LlmRun.Status.QUEUED or (
            active.lease_until and active.lease_until > timezone.now()
        ):
            return active  # already on its way (or the sweeper's), or being worked on
        # new, or its worker died (lease expired): hand it to a worker
        LlmRun.objects.filter(pk=active.pk).update(nudged_at=timezone.now())
        enqueue_on_commit(LLM_LABEL_RUN, active.pk)
    return active


def llm_run_execute(
    *,
    run_id: int,
    client: ChatClient | None = None,
    batch_size: int = 64,
    lease_s: int | None = None,
) -> None:
    """Ask the LLM for every (utterance, active prompt) pair of the run's task still missing.

    Claims the run (queued, or running with an expired lease: a crashed worker's run resumes).
    Pairs are answered concurrently (LLM_CONCURRENCY) and written a batch at a time, each
    batch in its own transaction with the soft labels it changes, so a crash loses at most
    one batch of answers and never leaves a half-written one. A malformed answer is asked
    again once, then recorded as an LlmFailure. An endpoint that fails for good (after its
    retries) fails the run; asking again later resumes where it stopped. The lease
    (PARLEY_JOB_STALE_S by default) is renewed after every batch; once it runs out, the
    sweeper sends the run to a worker again.
    """
    lease_s = lease_s or settings.PARLEY_JOB_STALE_S
    now = timezone.now()
    claimed = (
        LlmRun.objects.filter(pk=run_id)
        .filter(
            Q(status=LlmRun.Status.QUEUED)
            | Q(status=LlmRun.Status.RUNNING, lease_until__lt=now)
        )
        .update(
            status=LlmRun.Status.RUNNING,
            lease_until=now + timedelta(seconds=lease_s),
            started_at=Coalesce("started_at", Value(now)),
            error="",
        )
    )
    if not claimed:
        return
    run = LlmRun.objects.select_related("task").get(pk=run_id)
    client = client or ChatClient(llm_settings())
    started = time.monotonic()
    task = run.task
    labels = list(task.ordered_labels().values_list("value", flat=True))
    prompts = list(task.prompts.filter(active=True).order_by("name"))
    if not prompts:
        _llm_run_finish(
            run,
            LlmRun.Status.FAILED,
            started,
            client,
            error="the task has no active prompt",
        )
        return
    student_labelled = budget_student_label(task=task)
    if student_labelled:
        LlmRun.objects.filter(pk=run.pk).update(
            student_labelled=F("student_labelled") + student_labelled
        )
    missing = _llm_missing_pairs(run, prompts)
    LlmRun.objects.filter(pk=run.pk).update(
        total=F("done") + F("failed") + len(missing)
    )
    try:
        with ThreadPoolExecutor(max_workers=client.settings.concurrency) as pool:
            for start in range(0, len(missing), batch_size):
                batch = missing[start : start + batch_size]
                answers = list(
                    pool.map(
                        lambda pair: _llm_ask(client, labels, *pair),
                        _with_context(batch),
                    )
                )
                _llm_store(run, task, labels, answers)
                LlmRun.objects.filter(pk=run.pk).update(
                    lease_until=timezone.now() + timedelta(seconds=lease_s)
                )
    except LlmError as exc:
        _llm_run_finish(run, LlmRun.Status.FAILED, started, client, error=str(exc))
        return
    except Exception as exc:
        logger.exception("LLM run %s failed", run.pk)
        _llm_run_finish(
            run, LlmRun.Status.FAILED, started, client, error=f"internal error: {exc}"
        )
        raise
    queue_sync(task=task)
    _llm_run_finish(run, LlmRun.Status.SUCCEEDED, started, client)


def _llm_missing_pairs(
    run: LlmRun, prompts: list[PromptTemplate]
) -> list[tuple[int, PromptTemplate]]:
    """(utterance id, prompt) pairs with neither an answer nor a failure for the run's model
    (in budget mode, nor a soft label from the student)."""
    task = run.task
    utterances = Utterance.objects.filter(dialogue__project_id=task.project_id)
    if task.budget_mode:
        utterances = utterances.exclude(
            Exists(
                SoftLabel.objects.filter(
                    task=task, utterance=OuterRef("pk"), source=SoftLabel.Source.STUDENT
                )
            )
        )
    missing: list[tuple[int, PromptTemplate]] = []
    for prompt in prompts:
        answered = LlmLabel.objects.filter(
            task=task, prompt=prompt.name, model=run.model, utterance=OuterRef("pk")
        )
        failed = LlmFailure.objects.filter(
            task=task, prompt=prompt.name, model=run.model, utterance=OuterRef("pk")
        )
        ids = (
            utterances.filter(~Exists(answered), ~Exists(failed))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        missing.extend((pk, prompt) for pk in ids)
    missing.sort(key=lambda pair: (pair[0], pair[1].name))
    return missing


def _with_context(
    batch: list[tuple[int, PromptTemplate]],
) -> list[tuple[PromptTemplate, Utterance, list[Utterance]]]:
    utterances = Utterance.objects.in_bulk([pk for pk, _ in batch])
    need = max((p.context_turns for _, p in batch), default=0)
    dialogues: dict[int, dict[int, Utterance]] = {}
    if need:
        wanted = {u.dialogue_id for u in utterances.values()}
        for u in Utterance.objects.filter(dialogue_id__in=wanted):
            dialogues.setdefault(u.dialogue_id, {})[u.position] = u
    out = []
    for pk, prompt in batch:
        u = utterances[pk]
        turns = dialogues.get(u.dialogue_id, {})
        context = [
            turns[p] for p in range(max(0, u.position - need), u.position) if p in turns
        ]
        out.append((prompt, u, context))
    return out


@dataclass
class _Asked:
    utterance: Utterance
    prompt: PromptTemplate
    answer: Answer | None = None
    error: str = ""
    raw: str = ""


def _llm_ask(
    client: ChatClient,
    labels: list[str],
    prompt: PromptTemplate,
    utterance: Utterance,
    context: list[Utterance],
) -> _Asked:
    """One pair, on a pool thread (no database access here)."""
    messages = prompt_messages(prompt, labels, utterance, context)
    try:
        return _Asked(utterance, prompt, client.ask(messages, labels))
    except MalformedAnswer:
        pass  # asked again once: a sampled or truncated answer may come out right
    try:
        return _Asked(utterance, prompt, client.ask(messages, labels))
    except MalformedAnswer as exc:
        return _Asked(utterance, prompt, error=str(exc), raw=exc.raw[:4000])


@transaction.atomic
def _llm_store(
    run: LlmRun, task: LabelTask, labels: list[str], asked: list[_Asked]
) -> None:
    label_ids = dict(task.labels.values_list("value", "pk"))
    LlmLabel.objects.bulk_create(
        [
            LlmLabel(
                utterance=a.utterance,
                task=task,
                prompt=a.prompt.name,
                model=run.model,
                label_id=label_ids[a.answer.label],
                confidence=a.answer.confidence,
                distribution=a.answer.distribution,
            )
            for a in asked
            if a.answer
        ],
        ignore_conflicts=True,  # a resumed run may race a slow earlier attempt: first answer wins
    )
    LlmFailure.objects.bulk_create(
        [
            LlmFailure(
                run=run,
                utterance=a.utterance,
                task=task,
                prompt=a.prompt.name,
                model=run.model,
                error=a.error,
                raw=a.raw,
            )
            for a in asked
            if not a.answer
        ],
        ignore_conflicts=True,
    )
    soft_labels_refresh(
        task=task, utterance_ids=[a.utterance.pk for a in asked if a.answer]
    )
    n_done = sum(1 for a in asked if a.answer)
    LlmRun.objects.filter(pk=run.pk).update(
        done=F("done") + n_done, failed=F("failed") + len(asked) - n_done
    )


def soft_labels_refresh(*, task: LabelTask, utterance_ids: Sequence[int]) -> None:
    """Recompute the ensemble soft label and prompt agreement of these utterances."""
    if not utterance_ids:
        return
    values = list(task.ordered_labels().values_list("value", "pk"))
    by_utterance: dict[int, list[dict[str, float]]] = {}
    for utterance_id, dist in LlmLabel.objects.filter(
        task=task, utterance_id__in=set(utterance_ids)
    ).values_list("utterance_id", "distribution"):
        by_utterance.setdefault(utterance_id, []).append(dist)
    rows = []
    for utterance_id, dists in by_utterance.items():
        vectors = [[float(d.get(value, 0.0)) for value, _ in values] for d in dists]
        summary = ensemble_summary(vectors)
        rows.append(
            SoftLabel(
                utterance_id=utterance_id,
                task=task,
                label_id=values[summary.label][1],
                confidence=summary.soft[summary.label],
                distribution={
                    value: p for (value, _), p in zip(values, summary.soft, strict=True)
                },
                agreement=summary.agreement,
                n_sources=len(vectors),
                source=SoftLabel.Source.LLM,
                model_version=None,
            )
        )
    SoftLabel.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["utterance", "task"],
        update_fields=[
            "distribution",
            "label",
            "confidence",
            "agreement",
            "n_sources",
            "source",
            "model_version",
            "updated_at",
        ],
    )


def _llm_run_finish(
    run: LlmRun, status: str, started: float, client: ChatClient, *, error: str = ""
) -> None:
    usage = client.usage
    LlmRun.objects.filter(pk=run.pk).update(
        status=status,
        error=error,
        finished_at=timezone.now(),
        lease_until=None,
        seconds=F("seconds") + (time.monotonic() - started),
        requests=F("requests") + usage.requests,
        retries=F("retries") + usage.retries,
        prompt_tokens=F("prompt_tokens") + usage.prompt_tokens,
        completion_tokens=F("completion_tokens") + usage.completion_tokens,
    )
    usage.requests = usage.retries = usage.prompt_tokens = usage.completion_tokens = 0
