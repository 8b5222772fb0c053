"""The lead dashboard in a real browser; its screenshot goes to docs/screenshots (make screenshots)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from annotate import dashboards, services
from annotate.models import HumanLabel, ModelVersion, Prediction, QueueItem, TrainingRun
from tests.browser.conftest import make_dialogues

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_dashboard_shows_every_panel_and_polls_a_running_training(
    signed_in,
    live_server,
    project,
    settings,
    annotator_ann,
    annotator_bob,
    lead_lena,
    tmp_path,
):
    settings.PARLEY_OVERLAP_FRACTION = 0.0
    task = make_dialogues(project)
    done = TrainingRun.objects.create(
        task=task,
        status="succeeded",
        progress=1.0,
        started_at=timezone.now() - timedelta(hours=1),
        finished_at=timezone.now(),
    )
    version = ModelVersion.objects.create(
        task=task, run=done, version=1, artifact_path=str(tmp_path), is_active=True
    )
    items = list(
        QueueItem.objects.filter(task=task).select_related("utterance").order_by("pk")
    )
    for n, item in enumerate(items):
        question = item.utterance.text.endswith("?")
        truth = "question" if question else "inform"
        Prediction.objects.create(
            utterance=item.utterance,
            task=task,
            model_version=version,
            trust=item.trust,
            probabilities=[0.1, 0.7, 0.1, 0.1],
            label_id=task.labels.get(value=truth).pk,
        )
        if n < 16:
            who = annotator_ann if n % 2 else annotator_bob
            answer = truth if n % 5 else "directive"
            services.label_submit(
                item_id=item.pk, annotator=who, label=answer, submission_key=f"s{n}"
            )
    running = TrainingRun.objects.create(
        task=task, status="running", progress=0.3, started_at=timezone.now()
    )
    assert HumanLabel.objects.count() == 16

    page = signed_in(lead_lena)
    page.goto(f"{live_server.url}/projects/support/tasks/act/dashboard/")
    for heading in ("Student", "LLM", "Trust", "People and queue", "Exports"):
        assert page.get_by_role("heading", name=heading, exact=True).is_visible()
    assert page.locator("svg.chart").count() == 3
    # The confusion matrix: each count sits under its own column's header (right edges).
    gaps = page.evaluate(
        """() => {
        const table = document.querySelector('table.confusion');
        const heads = [...table.querySelectorAll('thead th')].slice(1);
        const cells = [...table.querySelector('tbody tr').querySelectorAll('td')];
        const right = el => { const r = document.createRange(); r.selectNodeContents(el);
                              return r.getBoundingClientRect().right; };
        return heads.map((h, i) => Math.abs(right(h) - right(cells[i])));
        }"""
    )
    assert len(gaps) == 4 and max(gaps) < 2, gaps
    TrainingRun.objects.filter(pk=running.pk).update(progress=0.8)
    page.wait_for_function(
        f"() => document.querySelector('#run-{running.pk}').textContent.includes('80 %')"
    )
    TrainingRun.objects.filter(pk=running.pk).update(
        status="failed", error="CUDA out of memory"
    )
    page.wait_for_selector(f"#run-{running.pk} >> text=CUDA out of memory")
    shots = Path(os.environ.get("PARLEY_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "dashboard.png"), full_page=True)


def test_the_dashboard_shows_the_audit_based_estimates(
    signed_in, live_server, project, settings, annotator_ann, lead_lena
):
    settings.PARLEY_OVERLAP_FRACTION = 0.0
    settings.PARLEY_AUDIT_MIN_ANSWERS = 10
    task = make_dialogues(project)
    page = signed_in(lead_lena)
    url = f"{live_server.url}/projects/support/tasks/act/dashboard/"
    page.goto(url)
    assert (
        page.locator("#audit")
        .inner_text()
        .startswith("The audit has 0 of the 10 answers")
    )
    # Twelve items drawn uniformly from the pool and answered; the LLM was wrong on three.
    settings.PARLEY_AUDIT_FRACTION = 1.0
    for n in range(12):
        item = services.queue_claim(task=task, annotator=annotator_ann)
        gold = "question" if item.utterance.text.endswith("?") else "inform"
        services.label_submit(
            item_id=item.pk,
            annotator=annotator_ann,
            label="directive" if n % 4 == 0 else gold,
            submission_key=f"a{n}",
        )
    figures = dashboards.dashboard_compute(task=task)["audit"]
    page.goto(url)
    text = page.locator("#audit").inner_text()
    assert "12 answers to items drawn uniformly from the unanswered pool" in text
    left = figures["wrong_left"]
    assert (
        f"wrong LLM labels left: {left['value']:.0f} "
        f"(95 % interval {left['low']:.0f}–{left['high']:.0f})"
    ) in text
    ece = figures["ece"]
    assert (
        f"ECE {ece['value']:.3f} (95 % interval {ece['low']:.3f}–{ece['high']:.3f})"
        in text
    )
