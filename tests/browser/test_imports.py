"""The imports page in a real browser: a dropped file, followed live."""

from __future__ import annotations

import pytest

from annotate import services
from annotate.models import ImportJob

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_file_dropped_on_the_imports_page_is_imported_and_followed_live(
    signed_in, live_server, project, admin_alice, shots
):
    page = signed_in(admin_alice)
    page.goto(live_server.url + "/projects/support/")
    page.get_by_role("link", name="Imports and exports").click()
    page.wait_for_url("**/imports/")
    body = '{"id": "c1", "turns": [{"speaker": "A", "text": "hello?"}]}\n'
    page.evaluate(
        """body => {
          const transfer = new DataTransfer();
          transfer.items.add(new File([body], "dropped.jsonl", {type: "application/jsonl"}));
          const zone = document.querySelector(".drop-zone");
          zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
        }""",
        body,
    )
    page.wait_for_url("**/imports/#import-*")
    job = ImportJob.objects.get()
    assert job.original_name == "dropped.jsonl"
    row = page.locator(f"#import-{job.pk}")
    assert "Queued" in row.inner_text()
    services.import_job_execute(job_id=job.pk)  # the worker's part
    row.locator(".import-result").wait_for()  # the row polls itself until it is over
    assert "1 dialogue created" in row.inner_text()
    page.screenshot(path=str(shots / "imports.png"), full_page=True)
