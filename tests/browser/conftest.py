"""Browser tests: Playwright for Python driving Debian's headless Chromium against a live server."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from annotate import services

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
# between browser steps are still plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("PARLEY_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not shutil.which(CHROMIUM):
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("PARLEY_REQUIRE_BROWSER"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def signed_in(browser, live_server) -> Any:
    """A function: a new page signed in as `user` (its own browser context: its own cookies).

    At teardown each page first waits (up to 10 s) for its requests in flight — an answer
    the page sends in the background after it has moved on — so that the live server is not
    still in a query when the test database is flushed (a TRUNCATE against that query's lock
    deadlocks)."""
    contexts = []
    pages: list[tuple[Any, set[Any]]] = []

    def open_page(user: Any) -> Any:
        user.set_password(PASSWORD)
        user.save()
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        contexts.append(context)
        page = context.new_page()
        in_flight: set[Any] = set()
        page.on("request", lambda request: in_flight.add(request))
        page.on("requestfinished", lambda request: in_flight.discard(request))
        page.on("requestfailed", lambda request: in_flight.discard(request))
        pages.append((page, in_flight))
        page.set_default_timeout(10_000)
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", PASSWORD)
        page.press("#id_password", "Enter")
        page.wait_for_url(f"{live_server.url}/")
        return page

    yield open_page
    for page, in_flight in pages:
        for _ in range(200):
            if not in_flight or page.is_closed():
                break
            page.wait_for_timeout(50)
    for context in contexts:
        context.close()


def make_dialogues(project: Any, n_dialogues: int = 6, turns: int = 4) -> Any:
    """Dialogues whose questions end with "?" (gold: question) with LLM labels of varied trust."""
    lines = []
    for d in range(n_dialogues):
        rows = []
        for t in range(turns):
            question = t % 2 == 0
            text = (
                f"Where is parcel {d}-{t}?" if question else f"It is in depot {d}-{t}."
            )
            rows.append(
                {
                    "speaker": "AB"[t % 2],
                    "text": text,
                    "llm": {
                        "act": {
                            "label": "question" if question else "inform",
                            "confidence": round(
                                0.4 + 0.5 * ((d * turns + t) % 10) / 10, 2
                            ),
                        }
                    },
                }
            )
        lines.append({"id": f"call-{d}", "turns": rows})
    body = "".join(__import__("json").dumps(line) + "\n" for line in lines).encode()
    services.transcripts_import(
        project=project, stream=io.BytesIO(body), name="calls.jsonl"
    )
    task = project.tasks.get(name="act")
    task.guidelines = "question: asks for information.\ninform: gives information."
    task.save()
    services.queue_sync(task=task)
    return task


@pytest.fixture
def shots(tmp_path) -> Path:
    """Where screenshots go: docs/screenshots with `make screenshots`, else a temporary dir."""
    path = Path(os.environ.get("PARLEY_SCREENSHOTS") or tmp_path)
    path.mkdir(parents=True, exist_ok=True)
    return path
