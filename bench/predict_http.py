"""Live predictions over the real HTTP stack: one utterance at a time, and batches.

    python -m bench.predict_http --checkpoint bench/out/inference-student \\
        [--texts POOL.jsonl] [--single 300] [--batch 64] [--batches 40] [--workers 2]

Starts gunicorn (one worker per core by default) on a scratch database — SQLite and the
file cache (the embedded default), or with `--postgres` a scratch PostgreSQL database and
Redis (`--redis-url`), as a deployment runs — holding a project whose task's active model
version is the saved student `--checkpoint` (exported to ONNX first if it is not yet;
`python -m bench.inference … --save DIR` leaves one). Then:
- `--single` requests of one utterance, one after another: p50/p95 of the server time
  (`Server-Timing`: Django's time, loading of the ONNX session on the first request excluded
  by `--warmup`) and of the time the client saw;
- `--batches` requests of `--batch` utterances from as many clients as workers: utterances
  per second overall.
Texts come from `--texts` (DailyDialog format) or generated sentences.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench.common import (
    ADMIN_URL,
    WORDS,
    django_ready,
    percentile,
    scratch_database,
    start_gunicorn,
)
from bench.queue_http import TIMING


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", required=True, type=Path, help="a saved student")
    p.add_argument("--texts", type=Path)
    p.add_argument("--single", type=int, default=300)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--batches", type=int, default=40)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--int8", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument(
        "--postgres",
        action="store_true",
        help="a scratch database on the PostgreSQL server of $DATABASE_URL (default: "
        "the local one) and Redis, instead of SQLite and the file cache",
    )
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    return p.parse_args(argv)


def texts_from(args: argparse.Namespace) -> list[str]:
    if args.texts:
        from bench import dailydialog as dd

        return [t.text for d in dd.read_dialogues(args.texts) for t in d]
    rng = random.Random(0)
    return [" ".join(rng.choices(WORDS, k=rng.randint(4, 24))) for _ in range(2000)]


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    if not args.postgres:
        return run(args, "", "")
    with scratch_database(ADMIN_URL, "parley_pbench") as url:
        return run(args, url, args.redis_url)


def run(
    args: argparse.Namespace, database_url: str, redis_url: str
) -> dict[str, float]:
    data_dir = Path(tempfile.mkdtemp(prefix="parley-pbench-"))
    env = {
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "annotate.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "bench-only-secret",
        "PARLEY_SERVER_TIMING": "true",
        "DJANGO_HTTPS": "false",
        "PARLEY_DATA_DIR": str(data_dir),
        "REDIS_URL": redis_url,
        "DJANGO_LOG_LEVEL": "WARNING",
        "LEARNER_INFERENCE": "onnx-int8" if args.int8 else "onnx",
        "PARLEY_API_REQUESTS_PER_MIN": str(10**6),
    }
    django_ready(env)
    from annotate import services
    from annotate.models import ModelVersion
    from learner import ensure_onnx

    record = json.loads((args.checkpoint / "parley.json").read_text())
    model = data_dir / "model"
    model.mkdir()
    (model / "full").symlink_to(args.checkpoint.resolve())
    if ensure_onnx(model / "full") is None:
        raise SystemExit(f"{args.checkpoint}: the ONNX export failed (see the log)")
    project = services.project_create(
        name="Predict bench", slug="pbench", tasks={"task": record["labels"]}
    )
    task = project.tasks.get(name="task")
    ModelVersion.objects.create(
        task=task, version=1, artifact_path=str(model), is_active=True
    )
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("bench")
    services.membership_set(project=project, user=user, role="admin")
    _, key = services.api_token_create(user=user, name="bench")
    texts = texts_from(args)
    server, base = start_gunicorn(env, args.workers)
    try:
        return measure(args, base, key, texts)
    finally:
        server.terminate()
        server.wait(timeout=30)


def measure(
    args: argparse.Namespace, base: str, key: str, texts: list[str]
) -> dict[str, float]:
    import httpx

    url = "/api/projects/pbench/tasks/task/predict"
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, timeout=60, headers=headers) as http:
        for _ in range(100):
            try:
                http.get("/healthz")
                break
            except httpx.TransportError:
                time.sleep(0.2)
        server_ms, client_ms = [], []
        for i in range(args.warmup + args.single):
            started = time.perf_counter()
            response = http.post(url, json={"text": texts[i % len(texts)]})
            elapsed = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            if i >= args.warmup:
                match = TIMING.search(response.headers["server-timing"])
                assert match is not None
                server_ms.append(float(match.group(1)))
                client_ms.append(elapsed)
    # every worker loads its session on its first request: warm each before timing batches
    done: list[int] = []
    errors: list[str] = []

    def client(n: int, count: int) -> None:
        with httpx.Client(base_url=base, timeout=120, headers=headers) as http:
            for j in range(count):
                start = (n * count + j) * args.batch
                batch = [
                    {"text": texts[(start + k) % len(texts)]} for k in range(args.batch)
                ]
                response = http.post(url, json={"utterances": batch})
                if response.status_code != 200:
                    errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
                    return
                done.append(len(batch))

    warm = [threading.Thread(target=client, args=(n, 2)) for n in range(args.workers)]
    for t in warm:
        t.start()
    for t in warm:
        t.join()
    done.clear()
    per_client = max(1, args.batches // args.workers)
    threads = [
        threading.Thread(target=client, args=(n, per_client))
        for n in range(args.workers)
    ]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    if errors:
        raise SystemExit(errors[0])
    figures = {
        "single_server_p50_ms": statistics.median(server_ms),
        "single_server_p95_ms": percentile(server_ms, 0.95),
        "single_client_p50_ms": statistics.median(client_ms),
        "single_client_p95_ms": percentile(client_ms, 0.95),
        "batch_utterances_per_s": sum(done) / seconds,
    }
    print(
        f"# gunicorn {args.workers} workers, ONNX {'int8' if args.int8 else 'fp32'}; "
        f"{args.single} single requests after {args.warmup} warm-up"
    )
    print(
        f"single utterance: server p50 {figures['single_server_p50_ms']:.1f} ms, "
        f"p95 {figures['single_server_p95_ms']:.1f} ms; client p50 "
        f"{figures['single_client_p50_ms']:.1f} ms, p95 {figures['single_client_p95_ms']:.1f} ms"
    )
    print(
        f"batches of {args.batch} from {args.workers} clients: "
        f"{figures['batch_utterances_per_s']:.0f} utterances/s ({sum(done)} utterances)"
    )
    return figures


if __name__ == "__main__":
    main()
