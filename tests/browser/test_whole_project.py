"""From an empty install to a labelled, exported corpus, without opening /admin/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotate import services
from annotate.models import HumanLabel, ImportJob

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TRANSCRIPT = "".join(
    json.dumps(
        {
            "id": f"call-{d}",
            "metadata": {"channel": "phone"},
            "turns": [
                {"speaker": "A", "text": f"Where is my parcel {d}?"},
                {"speaker": "B", "text": f"It is in depot {d}."},
            ],
        }
    )
    + "\n"
    for d in range(4)
)


def test_a_lead_runs_a_project_from_an_empty_install_to_an_export(
    signed_in, live_server, django_user_model, tmp_path, shots
):
    lead = django_user_model.objects.create_superuser("lead", "lead@example.org")
    django_user_model.objects.create_user("ann")
    page = signed_in(lead)
    # a project and its task
    page.goto(live_server.url + "/")
    page.get_by_role("link", name="New project").click()
    page.fill("#p-name", "Support calls")
    page.fill("#p-slug", "calls")
    page.get_by_role("button", name="Create the project").click()
    page.fill("#t-name", "act")
    page.fill("#t-labels", "question: asks\ninform: tells")
    page.get_by_role("button", name="Create the task").click()
    page.get_by_text("Task “act” created.").wait_for()
    # an annotator
    page.get_by_role("link", name="members").click()
    page.fill("#invite-username", "ann")
    page.get_by_role("button", name="Invite").click()
    page.get_by_text("ann is now annotator.").wait_for()
    # a transcript file
    page.goto(live_server.url + "/projects/calls/")
    page.get_by_role("link", name="Imports and exports").click()
    upload = tmp_path / "calls.jsonl"
    upload.write_text(TRANSCRIPT)
    page.set_input_files("#id_file", str(upload))
    page.get_by_role("button", name="Import").click()
    job = ImportJob.objects.get()
    services.import_job_execute(job_id=job.pk)  # the worker's part
    page.locator(f"#import-{job.pk} .import-result").wait_for()
    # the annotator labels three items with the keyboard
    annotator = signed_in(django_user_model.objects.get(username="ann"))
    annotator.goto(live_server.url + "/projects/calls/tasks/act/queue/")
    for key in ("1", "2", "1"):
        before = annotator.locator("#current article.item").get_attribute("data-item")
        annotator.keyboard.press(key)
        annotator.wait_for_function(
            "b => { const a = document.querySelector('#current article.item');"
            " return a && a.dataset.item !== b; }",
            arg=before,
        )
    for _ in range(100):
        if HumanLabel.objects.count() == 3:
            break
        annotator.wait_for_timeout(100)
    assert HumanLabel.objects.count() == 3
    # the lead browses what was labelled and exports it
    page.goto(live_server.url + "/projects/calls/")
    page.screenshot(path=str(shots / "project.png"), full_page=True)
    page.get_by_role("link", name="Corpus").click()
    page.select_option("#f-human", "question")
    page.get_by_role("button", name="Filter").click()
    assert page.locator("table.corpus tbody tr").count() == 2
    page.goto(live_server.url + "/projects/calls/imports/")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download JSONL").click()
    text = Path(download.value.path()).read_text()
    lines = [json.loads(x) for x in text.splitlines()]
    humans = [
        t["human"]["act"][0]["label"] for d in lines for t in d["turns"] if "human" in t
    ]
    assert sorted(humans) == ["inform", "question", "question"]
    assert "/admin/" not in page.url
