"""Dashboard request times on a large project in PostgreSQL.

    python -m bench.dashboard [--utterances 500000] [--human 50000] [--repeats 15]

Builds a scratch database (dropped afterwards): N utterances imported with `transcripts_import`
(three LLM prompts for `act`), the queue filled, a trained model version with a prediction and
trust per utterance, and H human labels from 8 annotators with the trust and LLM label they
were shown (a tenth of them on items labelled twice, some adjudicated). The labels and
predictions are bulk-inserted: they are the data being read, not what is measured. Then each
dashboard request is timed through Django's full request stack (test client, in process):

    dashboard (cold)   the page with its figures computed from the database
    dashboard (snapshot) the page served from the snapshot (refreshed by a worker once a minute old)
    run status         the htmx fragment a running training polls every 2 s

and each selector alone. Prints p50 and p95 per request.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from bench.common import (
    ADMIN_URL,
    bench_project,
    django_ready,
    percentile,
    scratch_database,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from annotate.models import LabelTask


def build(args: argparse.Namespace, data_dir: str) -> tuple[LabelTask, User]:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from annotate import services
    from annotate.models import (
        HumanLabel,
        ModelVersion,
        Prediction,
        QueueItem,
        Role,
        SoftLabel,
        TrainingRun,
    )

    project = bench_project(
        name="Dashboard bench",
        slug="dbench",
        utterances=args.utterances,
        data_dir=data_dir,
    )
    task = project.tasks.get(name="act")

    rng = random.Random(0)
    users = get_user_model()
    annotators = [users.objects.create_user(f"a{i}") for i in range(8)]
    lead = users.objects.create_user("lead", password="bench-lead-1")
    services.membership_set(project=project, user=lead, role=Role.LEAD)
    label_ids = list(task.ordered_labels().values_list("pk", flat=True))
    now = timezone.now()
    run = TrainingRun.objects.create(
        task=task,
        status="succeeded",
        progress=1.0,
        started_at=now - timedelta(days=20),
        finished_at=now - timedelta(days=20),
    )
    version = ModelVersion.objects.create(
        task=task, run=run, version=1, artifact_path=data_dir, is_active=True
    )
    soft = dict(
        SoftLabel.objects.filter(task=task).values_list("utterance_id", "label_id")
    )
    items = list(
        QueueItem.objects.filter(task=task).values_list("pk", "utterance_id", "trust")
    )
    started = time.perf_counter()
    predictions = []
    for _, utterance_id, trust in items:
        predicted = soft[utterance_id] if rng.random() < 0.8 else rng.choice(label_ids)
        predictions.append(
            Prediction(
                utterance_id=utterance_id,
                task=task,
                model_version=version,
                trust=trust,
                probabilities=[0.25] * 4,
                label_id=predicted,
            )
        )
    Prediction.objects.bulk_create(predictions, batch_size=5000)
    labelled = rng.sample(items, args.human)
    humans = []
    for n, (_, utterance_id, trust) in enumerate(labelled):
        shown = soft[utterance_id]
        answer = shown if rng.random() < max(trust, 0.2) else rng.choice(label_ids)
        at = now - timedelta(days=19) + timedelta(seconds=n * 30)
        who = annotators[n % 8]
        humans.append(
            HumanLabel(
                utterance_id=utterance_id,
                task=task,
                label_id=answer,
                annotator=who,
                annotator_name=who.username,
                source="annotation",
                created_at=at,
                llm_label_id=shown,
                trust=trust,
                trust_version=version,
            )
        )
        if n % 10 == 0:  # a second opinion, and now and then a lead's decision
            other = annotators[(n + 3) % 8]
            humans.append(
                HumanLabel(
                    utterance_id=utterance_id,
                    task=task,
                    label_id=rng.choice([answer, *label_ids]),
                    annotator=other,
                    annotator_name=other.username,
                    source="annotation",
                    created_at=at + timedelta(minutes=5),
                    llm_label_id=shown,
                    trust=trust,
                )
            )
            if n % 30 == 0:
                humans.append(
                    HumanLabel(
                        utterance_id=utterance_id,
                        task=task,
                        label_id=answer,
                        annotator=lead,
                        annotator_name="lead",
                        source="adjudication",
                        created_at=at + timedelta(hours=1),
                    )
                )
    HumanLabel.objects.bulk_create(humans, batch_size=5000)
    answered = {u for _, u, _ in labelled}
    QueueItem.objects.filter(task=task, utterance_id__in=answered).update(
        answers=1, open=False
    )
    TrainingRun.objects.create(
        task=task, status="running", progress=0.4, started_at=now
    )
    print(
        f"# {len(predictions):,} predictions and {len(humans):,} human labels written in "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )
    return task, lead


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--utterances", type=int, default=500_000)
    parser.add_argument("--human", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--database-url",
        default=ADMIN_URL,
        help="a PostgreSQL server for the scratch database",
    )
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="parley-dbench-")
    with scratch_database(args.database_url, "parley_dbench") as url:
        django_ready(large_project_env(url, data_dir))
        measure(args, data_dir)


def large_project_env(database_url: str, data_dir: str) -> dict[str, str]:
    """The settings of a benchmark that builds a large project (`build`) and times
    requests through the Django test client."""
    return {
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "annotate.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "bench-only-secret",
        "DJANGO_HTTPS": "false",
        "PARLEY_DATA_DIR": data_dir,
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"),
        "DJANGO_LOG_LEVEL": "WARNING",
    }


def measure(args: argparse.Namespace, data_dir: str) -> None:
    task, lead = build(args, data_dir)
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client

    from annotate import dashboards
    from annotate.models import TrainingRun

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    client = Client()
    client.force_login(lead)
    base = "/projects/dbench/tasks/act/"
    running = TrainingRun.objects.filter(status="running").get()
    timings: dict[str, list[float]] = {}

    def timed(name: str, call: object) -> None:
        started = time.perf_counter()
        result = call()  # type: ignore[operator]
        timings.setdefault(name, []).append((time.perf_counter() - started) * 1000)
        status = getattr(result, "status_code", 200)
        if status != 200:
            raise SystemExit(f"{name}: HTTP {status}")

    for _ in range(args.repeats):
        cache.clear()
        timed("dashboard (cold)", lambda: client.get(f"{base}dashboard/"))
        timed("dashboard (snapshot)", lambda: client.get(f"{base}dashboard/"))
        timed(
            "run status (htmx poll)",
            lambda: client.get(f"{base}dashboard/runs/{running.pk}/"),
        )
        for name in (
            "llm_accuracy",
            "student_accuracy",
            "trust_calibration",
            "remaining_errors",
            "burndown",
            "annotator_stats",
            "agreement",
        ):
            timed(
                f"  selector {name}",
                lambda name=name: getattr(dashboards, name)(task=task),
            )
    print(f"# {args.repeats} repeats, PostgreSQL, Django test client in process")
    for name, values in timings.items():
        print(
            f"{name:32s} p50 {statistics.median(values):7.1f} ms   p95 {percentile(values, 0.95):7.1f} ms"
        )


if __name__ == "__main__":
    main()
