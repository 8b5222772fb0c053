"""The annotator queue over the real HTTP stack: "submit + next item" under 16 annotators.

    python -m bench.queue_http [--utterances 100000] [--clients 16] [--submits 150] [--workers 2]

Builds a scratch PostgreSQL database (dropped afterwards) with a project of N utterances
(imported with `transcripts_import`, queue filled with `queue_sync`), starts gunicorn on it, and
runs C annotator clients (threads with their own sessions) that sign in, open the queue page
and then submit item after item the way the workspace script does: one POST per submit, whose
answer is the next item to fetch ahead. Prints p50/p95/p99 of the server time of those POSTs
(the `Server-Timing` header: Django's time, without the client or the socket queue) and of
the time the clients saw, and the submits per second. The first submits of each client are
warm-up and not counted.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import tempfile
import threading
import time

from bench.common import (
    ADMIN_URL,
    bench_project,
    django_ready,
    percentile,
    scratch_database,
    start_gunicorn,
)

ITEM = re.compile(r'data-item="(\d+)" data-key="([^"]+)"')
TIMING = re.compile(r"app;dur=([\d.]+)")
PASSWORD = "bench-password-1"


def prepare(args: argparse.Namespace, data_dir: str) -> None:
    from django.contrib.auth import get_user_model

    from annotate import services
    from annotate.models import Role

    project = bench_project(
        name="Queue bench", slug="qbench", utterances=args.utterances, data_dir=data_dir
    )
    user_model = get_user_model()
    for i in range(args.clients):
        user = user_model.objects.create_user(f"annotator{i}", password=PASSWORD)
        services.membership_set(project=project, user=user, role=Role.ANNOTATOR)


def client(
    base: str,
    n: int,
    submits: int,
    warmup: int,
    server: list[float],
    seen: list[float],
    errors: list[str],
) -> None:
    import httpx

    rng = random.Random(n)
    with httpx.Client(base_url=base, timeout=30) as http:
        http.get("/accounts/login/")
        http.post(
            "/accounts/login/",
            data={
                "username": f"annotator{n}",
                "password": PASSWORD,
                "csrfmiddlewaretoken": http.cookies["csrftoken"],
            },
        )
        page = http.get("/projects/qbench/tasks/act/queue/")
        items = ITEM.findall(page.text)
        if len(items) < 2:
            errors.append(
                f"client {n}: queue page without two items ({page.status_code})"
            )
            return
        (current, key), ahead = items[0], items[1]
        headers = {"X-CSRFToken": http.cookies["csrftoken"], "X-Parley-Fragment": "1"}
        for i in range(submits):
            label = rng.choice(["inform", "question", "directive", "commissive"])
            started = time.perf_counter()
            response = http.post(
                f"/projects/qbench/tasks/act/queue/{current}/submit",
                headers=headers,
                data={"label": label, "submission_key": key, "showing": ahead[0]},
            )
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                errors.append(
                    f"client {n}: HTTP {response.status_code} {response.text[:200]}"
                )
                return
            if i >= warmup:
                timing = TIMING.search(response.headers.get("server-timing", ""))
                if timing is None:
                    errors.append(f"client {n}: no Server-Timing app;dur in the answer")
                    return
                server.append(float(timing.group(1)))
                seen.append(elapsed)
            following = ITEM.findall(response.text)
            if not following:
                errors.append(f"client {n}: the queue ran dry")
                return
            (current, key), ahead = ahead, following[0]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--utterances", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--submits", type=int, default=150, help="per client")
    parser.add_argument(
        "--warmup",
        type=int,
        default=10,
        help="first submits of each client not counted",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="gunicorn worker processes (the requests are CPU-bound: one per core)",
    )
    parser.add_argument(
        "--database-url",
        default=ADMIN_URL,
        help="a PostgreSQL server for the scratch database",
    )
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="parley-qbench-")
    with scratch_database(args.database_url, "parley_qbench") as url:
        env = {
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": "annotate.settings",
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": "bench-only-secret",
            "PARLEY_SERVER_TIMING": "true",
            "DJANGO_HTTPS": "false",
            "PARLEY_DATA_DIR": data_dir,
            "REDIS_URL": "",
            "PARLEY_RETRAIN_EVERY": str(10**9),
            "DJANGO_LOG_LEVEL": "WARNING",
        }
        django_ready(env)
        run(args, env, data_dir)


def run(args: argparse.Namespace, env: dict[str, str], data_dir: str) -> None:
    server_process = None
    try:
        prepare(args, data_dir)
        server_process, base = start_gunicorn(env, args.workers)
        server: list[float] = []
        seen: list[float] = []
        errors: list[str] = []
        started = time.perf_counter()
        threads = [
            threading.Thread(
                target=client,
                args=(base, n, args.submits, args.warmup, server, seen, errors),
            )
            for n in range(args.clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - started
        for error in errors[:5]:
            print("error:", error)
        if not server:
            raise SystemExit("no submit was measured")
        print(
            f"# {args.clients} clients × {args.submits} submits ({args.warmup} warm-up each), gunicorn "
            f"{args.workers} workers, PostgreSQL; {len(server)} measured submits, "
            f"{args.clients * args.submits / seconds:.0f} submits/s overall"
        )
        for name, values in (
            ("server time (Server-Timing)", server),
            ("client-observed", seen),
        ):
            print(
                f"{name}: p50 {statistics.median(values):.1f} ms, p95 {percentile(values, 0.95):.1f} ms, "
                f"p99 {percentile(values, 0.99):.1f} ms"
            )
    finally:
        if server_process:
            server_process.terminate()
            server_process.wait(timeout=30)


if __name__ == "__main__":
    main()
