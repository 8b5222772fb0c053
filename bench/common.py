"""What the benchmarks share: a scratch PostgreSQL database, Django set up on it, a generated
transcript file and the project it is imported into, percentiles, and report files."""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ADMIN_URL = os.environ.get("DATABASE_URL", "postgres://root@127.0.0.1:5432/postgres")
"""A PostgreSQL server to create the scratch database on (any database of it)."""


@contextmanager
def scratch_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A new database on the server of `admin_url`, dropped on exit; yields its URL."""
    import psycopg

    name = f"{prefix}_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        if "DJANGO_SETTINGS_MODULE" in os.environ:
            from django.db import connections

            connections.close_all()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def django_ready(env: dict[str, str]) -> None:
    """Set Parley up in this process with these settings, and migrate its database."""
    os.environ |= env
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def write_report(path: Path | None, report: dict[str, Any]) -> None:
    """Write a benchmark's report as JSON (when an --out path was given)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")


ACTS = ["inform", "question", "directive", "commissive"]
SENTIMENTS = ["positive", "negative", "neutral"]
WORDS = [
    "the",
    "order",
    "parcel",
    "refund",
    "arrived",
    "today",
    "please",
    "could",
    "you",
    "help",
    "me",
    "with",
    "my",
    "account",
    "thanks",
    "a",
    "lot",
    "sorry",
    "to",
    "hear",
    "that",
    "when",
    "will",
    "it",
    "be",
    "delivered",
    "tomorrow",
    "morning",
]


def generate(path: Path, utterances: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    written = 0
    n = 0
    with path.open("w", encoding="utf-8") as out:
        while written < utterances:
            turns: list[dict[str, Any]] = []
            for _ in range(min(rng.randint(4, 16), utterances - written)):
                probs = [rng.random() for _ in SENTIMENTS]
                total = sum(probs)
                turns.append(
                    {
                        "speaker": "AB"[len(turns) % 2],
                        "text": " ".join(rng.choices(WORDS, k=rng.randint(4, 24))),
                        "llm": {
                            "act": [
                                {
                                    "prompt": p,
                                    "label": rng.choice(ACTS),
                                    "confidence": round(rng.uniform(0.4, 1), 2),
                                }
                                for p in ("P1", "P2", "P3")
                            ],
                            "sentiment": {
                                "prompt": "P1",
                                "distribution": {
                                    s: p / total
                                    for s, p in zip(SENTIMENTS, probs, strict=True)
                                },
                            },
                        },
                    }
                )
            out.write(
                json.dumps(
                    {
                        "id": f"bench-{n}",
                        "metadata": {"source": "bench"},
                        "turns": turns,
                    }
                )
                + "\n"
            )
            written += len(turns)
            n += 1
    return n


def bench_project(*, name: str, slug: str, utterances: int, data_dir: str) -> Any:
    """A project with act and sentiment tasks and `generate`d utterances imported (their
    queue items included); prints how long the import took."""
    from annotate import services

    project = services.project_create(
        name=name, slug=slug, tasks={"act": ACTS, "sentiment": SENTIMENTS}
    )
    path = Path(data_dir) / "pool.jsonl"
    generate(path, utterances)
    started = time.perf_counter()
    with path.open("rb") as stream:
        services.transcripts_import(project=project, stream=stream, name=path.name)
    print(
        f"# {utterances:,} utterances imported and queued in "
        f"{time.perf_counter() - started:.0f} s"
    )
    return project


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_gunicorn(env: dict[str, str], workers: int) -> tuple[Any, str]:
    """Parley under gunicorn with these settings on a free local port, once it accepts
    connections: (the process, its base URL)."""
    import socket
    import subprocess
    import sys

    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "annotate.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        env={**os.environ, **env},
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return process, f"http://127.0.0.1:{port}"
