"""Import throughput and memory: generate a JSONL of N utterances, import it into PostgreSQL.

    python -m bench.import_speed --utterances 200000 [--database-url postgres://…]

Runs the same service the `import_transcripts` command runs (`transcripts_import`), into a
fresh scratch database that it drops afterwards. Each utterance carries a realistic label
load: three per-prompt answers for `act` (label + confidence) and a four-class distribution
for `sentiment`, so one utterance writes one Utterance row, four LlmLabel rows and two
SoftLabel rows. Prints utterances per second and the peak RSS of the process.
"""

from __future__ import annotations

import argparse
import io
import resource
import sys
import tempfile
import time
from pathlib import Path

from bench.common import (
    ACTS,
    ADMIN_URL,
    SENTIMENTS,
    django_ready,
    generate,
    scratch_database,
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--utterances", type=int, default=200_000)
    parser.add_argument(
        "--then-one",
        action="store_true",
        help="then time importing one more one-utterance dialogue into the project "
        "(the cost of a small import into a large project)",
    )
    parser.add_argument(
        "--database-url",
        default=ADMIN_URL,
        help="A PostgreSQL server; a scratch database is created on it and dropped after.",
    )
    args = parser.parse_args()

    with scratch_database(args.database_url, "parley_bench") as url:
        django_ready(
            {
                "DATABASE_URL": url,
                "DJANGO_SETTINGS_MODULE": "annotate.settings",
                "DJANGO_DEBUG": "true",
                "PARLEY_DATA_DIR": tempfile.mkdtemp(prefix="parley-bench-"),
            }
        )
        measure(args)
    sys.stdout.flush()


def measure(args: argparse.Namespace) -> None:
    from annotate import services

    project = services.project_create(
        name="Bench", slug="bench", tasks={"act": ACTS, "sentiment": SENTIMENTS}
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jsonl"
        dialogues = generate(path, args.utterances)
        size_mb = path.stat().st_size / 2**20
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        with path.open("rb") as stream:
            result = services.transcripts_import(
                project=project, stream=stream, name=path.name
            )
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"file: {args.utterances:,} utterances in {dialogues:,} dialogues, {size_mb:.0f} MB JSONL"
    )
    print(
        f"imported: {result.utterances:,} utterances in {seconds:.1f} s "
        f"= {result.utterances / seconds:,.0f} utterances/s"
    )
    print(f"peak RSS: {peak:.0f} MB (before the import: {rss_before:.0f} MB)")
    if args.then_one:
        one = b'{"id": "one-more", "turns": [{"speaker": "A", "text": "one more"}]}\n'
        times = []
        for n in range(5):
            start = time.perf_counter()
            services.transcripts_import(
                project=project,
                stream=io.BytesIO(one.replace(b"more", b"more%d" % n)),
                name="one.jsonl",
            )
            times.append(time.perf_counter() - start)
        print(
            f"one more utterance into {result.utterances:,}: median {sorted(times)[2] * 1000:.0f} ms "
            f"over 5 imports (queue items included)"
        )


if __name__ == "__main__":
    main()
