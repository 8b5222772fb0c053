"""Disk used by model checkpoints over automatic retrains, with and without the retention policy.

    python -m bench.retention --pool POOL.jsonl --llm-labels LLM.jsonl [--retrains 20] \\
        [--dialogues 15] [--keep-all]

Runs Parley's own retrain path (`training_run_request` → `training_run_execute` →
`predictions_store`, which applies the policy after scoring, as the worker does) on a scratch
embedded project of the first `--dialogues` dialogues of the pool, with the bundled MiniLM-L6
and one epoch (the size of a checkpoint does not depend on the data or the epochs).
`--keep-all` keeps every version and its fold models: what Parley did before the policy.
Prints the bytes under PARLEY_DATA_DIR/models after each retrain.
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

from bench.common import django_ready


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--pool", required=True, type=Path)
    p.add_argument("--llm-labels", required=True, type=Path)
    p.add_argument("--task", default="act")
    p.add_argument("--retrains", type=int, default=20)
    p.add_argument("--dialogues", type=int, default=15)
    p.add_argument("--keep-all", action="store_true")
    return p.parse_args()


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="parley-retention-") as data_dir:
        env = {
            "DJANGO_SETTINGS_MODULE": "annotate.settings",
            "DJANGO_DEBUG": "true",
            "PARLEY_DATA_DIR": data_dir,
            "DATABASE_URL": "",
            "REDIS_URL": "",
            "CELERY_BROKER_URL": "memory://",
            "LEARNER_EPOCHS": "1",
            "PARLEY_RETRAIN_EVERY": str(10**9),
            "DJANGO_LOG_LEVEL": "WARNING",
        }
        if args.keep_all:
            env |= {
                "PARLEY_KEEP_MODEL_VERSIONS": "1000",
                "PARLEY_KEEP_FOLD_MODELS": "true",
            }
        django_ready(env)
        run(args, Path(data_dir))


def run(args: argparse.Namespace, data_dir: Path) -> None:
    from annotate import services
    from bench import dailydialog as dd
    from bench.active_loop import import_lines

    pool = dd.read_dialogues(args.pool)[: args.dialogues]
    labels = dd.LABELS[args.task]
    llm = dd.read_llm_labels(args.llm_labels, args.task)
    project = services.project_create(name="R", slug="r", tasks={args.task: labels})
    services.transcripts_import(
        project=project,
        name="pool.jsonl",
        stream=io.BytesIO(import_lines(pool, llm, labels, args.task)),
    )
    task = project.tasks.get(name=args.task)
    mode = "keep everything" if args.keep_all else "retention policy (defaults)"
    print(f"# {mode}: {args.retrains} retrains, {sum(map(len, pool))} utterances")
    print("retrain | models on disk (MB)")
    for n in range(1, args.retrains + 1):
        training = services.training_run_request(task=task)
        services.training_run_execute(run_id=training.pk)
        services.predictions_store(run_id=training.pk)
        print(f"{n:7d} | {disk_bytes(data_dir / 'models') / 1e6:.0f}", flush=True)


if __name__ == "__main__":
    main()
