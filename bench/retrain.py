"""One retrain and rescoring of a pool, timed: what an annotator's round waits for.

    python -m bench.retrain --pool POOL.jsonl --llm-labels LLM.jsonl --task act \\
        [--answers 380] [--epochs 3] [--precision fp32|bf16] [--inference torch|onnx|onnx-int8]

Imports the pool into a scratch SQLite database, answers `--answers` items with their gold
label through the queue (the audit share included), then times `training_run_execute` (the
student and its fold students) and `predictions_store` (predictions, the verifier's trust,
the diversity pass, the ONNX export) separately.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import django_ready


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--pool", required=True, type=Path)
    p.add_argument("--llm-labels", required=True, type=Path)
    p.add_argument("--task", default="act", choices=("act", "sentiment", "emotion"))
    p.add_argument("--answers", type=int, default=380)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    p.add_argument(
        "--inference", default="torch", choices=("torch", "onnx", "onnx-int8")
    )
    p.add_argument("--backbone", default="minilm-l6")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="parley-retrain-") as data_dir:
        django_ready(
            {
                "DJANGO_SETTINGS_MODULE": "annotate.settings",
                "DJANGO_DEBUG": "true",
                "PARLEY_DATA_DIR": data_dir,
                "DATABASE_URL": "",
                "REDIS_URL": "",
                "CELERY_BROKER_URL": "memory://",
                "LEARNER_BACKBONE": args.backbone,
                "LEARNER_EPOCHS": str(args.epochs),
                "LEARNER_PRECISION": args.precision,
                "LEARNER_INFERENCE": args.inference,
                "PARLEY_OVERLAP_FRACTION": "0",
                "PARLEY_RETRAIN_EVERY": str(10**9),
            }
        )
        return run(args)


def run(args: argparse.Namespace) -> dict[str, float]:
    from django.contrib.auth import get_user_model

    from annotate import services
    from annotate.models import TrainingRun
    from bench import dailydialog as dd
    from bench.active_loop import answer_with_gold, pool_import

    task, of = pool_import(dd.read_dialogues(args.pool), args.llm_labels, args.task)
    annotator = get_user_model().objects.create(username="sim")
    answer_with_gold(task, [annotator], of, args.answers, key="k")
    run = services.training_run_request(task=task)
    started = time.perf_counter()
    services.training_run_execute(run_id=run.pk)
    trained = time.perf_counter() - started
    run.refresh_from_db()
    if run.status != TrainingRun.Status.SUCCEEDED:
        raise SystemExit(f"training failed: {run.error}")
    started = time.perf_counter()
    services.predictions_store(run_id=run.pk)
    scored = time.perf_counter() - started
    figures = {"train_s": trained, "score_s": scored, "total_s": trained + scored}
    print(
        f"# {len(of)} utterances, {args.answers} answers, {args.epochs} epochs {args.precision}, "
        f"scoring on {args.inference}: training {trained:.0f} s (student + folds), scoring "
        f"{scored:.0f} s ({len(of) / scored:.0f} utterances/s), total {trained + scored:.0f} s",
        flush=True,
    )
    return figures


if __name__ == "__main__":
    main()
