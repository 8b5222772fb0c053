"""The corpus browser on a large project in PostgreSQL: a filtered page, every filter.

    python -m bench.corpus_http [--utterances 500000] [--human 50000] [--repeats 10]

Builds the same scratch project as `bench.dashboard` (N utterances imported with three LLM
prompts for `act`, a model version with a prediction per utterance, H human labels from eight
annotators, a tenth answered twice, some adjudicated) plus 200 open flags, then times each
corpus request through Django's full request stack (test client, in process): the first
page, a page deep in the corpus (keyset), each filter alone, and a dialogue's view. Prints p50
and p95 per request, and the p95 over every filtered page. The issue's target: p95 ≤ 300 ms
for a filtered page at 500,000 utterances.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time

from bench.common import ADMIN_URL, django_ready, percentile, scratch_database
from bench.dashboard import build, large_project_env


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--utterances", type=int, default=500_000)
    parser.add_argument("--human", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--database-url",
        default=ADMIN_URL,
        help="a PostgreSQL server for the scratch database",
    )
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="parley-cbench-")
    with scratch_database(args.database_url, "parley_cbench") as url:
        django_ready(large_project_env(url, data_dir))
        measure(args, data_dir)


def measure(args: argparse.Namespace, data_dir: str) -> None:
    from django.db import connection
    from django.test import Client

    from annotate.models import Flag, QueueItem, Utterance

    task, lead = build(args, data_dir)
    rng = random.Random(1)
    ids = list(
        QueueItem.objects.filter(task=task).values_list("utterance_id", flat=True)
    )
    Flag.objects.bulk_create(
        Flag(utterance_id=u, task=task, annotator=lead, comment="bench")
        for u in rng.sample(ids, 200)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    middle = sorted(ids)[len(ids) // 2]
    word = Utterance.objects.values_list("text", flat=True)[0].split()[0]
    dialogue = Utterance.objects.get(pk=middle).dialogue_id
    base = "/projects/dbench/tasks/act/corpus/"
    requests = {
        "first page": "",
        "a page deep in the corpus": f"?after={middle}",
        "LLM label": "?llm=commissive",
        "human label": "?human=inform",
        "student label": "?student=directive",
        "LLM ≠ human": "?disagree=llm-human",
        "LLM ≠ student": "?disagree=llm-student",
        "annotators differ": "?disagree=annotators",
        "trust 0.4–0.6": "?trust_min=0.4&trust_max=0.6",
        "flagged": "?flagged=1",
        "source student": "?source=student",
        f"text '{word}'": f"?q={word}",
        "text matching nothing": "?q=zzqx",
        "dialogue id prefix": "?dialogue=bench-12",
        "LLM label + human label, deep": f"?llm=inform&human=question&after={middle}",
    }
    client = Client()
    client.force_login(lead)
    timings: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for name, query in requests.items():
            started = time.perf_counter()
            response = client.get(base + query)
            timings.setdefault(name, []).append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{name}: HTTP {response.status_code}")
        started = time.perf_counter()
        response = client.get(f"/projects/dbench/dialogues/{dialogue}/")
        timings.setdefault("dialogue view", []).append(
            (time.perf_counter() - started) * 1000
        )
    print(
        f"# {args.repeats} repeats, {len(ids):,} utterances, PostgreSQL, Django test "
        "client in process"
    )
    for name, values in timings.items():
        print(
            f"{name:34s} p50 {statistics.median(values):7.1f} ms   "
            f"p95 {percentile(values, 0.95):7.1f} ms"
        )
    filtered = [
        v
        for name, values in timings.items()
        if name not in ("first page", "dialogue view")
        for v in values
    ]
    print(f"every filtered page: p95 {percentile(filtered, 0.95):.1f} ms")


if __name__ == "__main__":
    main()
