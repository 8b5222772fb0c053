"""Active-loop simulation: does the queue put the wrong LLM labels first?

    python -m bench.active_loop --pool POOL.jsonl --llm-labels LLM.jsonl --eval EVAL.jsonl \\
        --task act --budget 0.1 --rounds 5 --strategy trust [--epochs 1] [--out result.json]

Runs Parley's own code on a scratch database (SQLite in a temporary directory, or
--database-url): the pool and its LLM labels are imported with `transcripts_import`, the
queue filled with `queue_sync`, and every round simulated annotators take `budget / rounds`
of the pool from `queue_claim` and answer with the gold label through `label_submit`; then
the student is retrained (`training_run_execute`) and the pool rescored
(`predictions_store`). Strategies only change the priority the queue orders by:

    trust            the trust score (the product's queue: the verifier)
    trust_v1         the previous calibrated trust (PARLEY_TRUST_VERIFIER=signals)
    random           a random priority
    llm_confidence   the LLM ensemble's probability of its own label (max ȳ)
    student_entropy  the current student's entropy (highest first)

Per round it prints: queue precision (share of answered items whose LLM label was wrong), its
lift over the pool's LLM error rate, the corrected pool's label accuracy (human label where
given, else the LLM label), the student's accuracy and macro-F1 on the eval file, and the ECE of
the trust scores the answered items had when they were answered.

`random` and `llm_confidence` never read the student, so their runs skip the retraining (the
student's columns are then NaN) unless --train-student: the items they serve are the same.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import django_ready, write_report

STRATEGIES = ("trust", "trust_v1", "random", "llm_confidence", "student_entropy")
# Strategies whose priority is a probability that the LLM label is right (calibration applies).
CALIBRATED = ("trust", "trust_v1", "llm_confidence")
# Strategies whose queue never reads the student: retraining it changes none of their
# served items, so it is skipped unless --train-student asks for the student's figures.
STUDENT_FREE = ("random", "llm_confidence")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--pool", required=True, type=Path)
    p.add_argument("--llm-labels", required=True, type=Path)
    p.add_argument("--eval", required=True, type=Path)
    p.add_argument("--task", default="act", choices=("act", "sentiment", "emotion"))
    p.add_argument(
        "--budget",
        type=float,
        default=0.1,
        help="share of the pool answered over all rounds",
    )
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--strategy", default="trust", choices=STRATEGIES)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--objective", default="pref")
    p.add_argument("--backbone", default="minilm-l6")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--trust-min-human", type=int, default=50)
    p.add_argument(
        "--audit-fraction",
        type=float,
        default=0.05,
        help="share of the items served drawn uniformly (the product's default)",
    )
    p.add_argument(
        "--diversity-cap",
        type=int,
        default=3,
        help="items of one dialogue or cluster before the rest go back (0: off)",
    )
    p.add_argument(
        "--train-student",
        action="store_true",
        help="retrain and evaluate the student every round for random and "
        "llm_confidence too (their queue does not read it; off: a run takes seconds)",
    )
    p.add_argument(
        "--limit-dialogues",
        type=int,
        default=0,
        help="first N pool/eval dialogues (smoke runs)",
    )
    p.add_argument(
        "--database-url", default="", help="default: SQLite in a temporary directory"
    )
    p.add_argument("--out", type=Path)
    return p.parse_args(argv)


def import_lines(
    pool: list[list[Any]],
    llm: dict[tuple[str, int], dict[str, list[float]]],
    labels: list[str],
    task: str,
    human: set[tuple[str, int]] = frozenset(),  # type: ignore[assignment]
) -> bytes:
    """The pool in Parley's JSONL import format, with each prompt's distribution (and the
    gold label as an imported human label for the turns in `human`)."""
    out = io.StringIO()
    for dialogue in pool:
        turns = []
        for turn in dialogue:
            key = (turn.dialogue_id, turn.position)
            prompts = llm.get(key, {})
            answers = [
                {"prompt": p, "distribution": dict(zip(labels, dist, strict=True))}
                for p, dist in sorted(prompts.items())
            ]
            turns.append(
                {
                    "speaker": turn.speaker,
                    "text": turn.text,
                    **({"llm": {task: answers}} if answers else {}),
                    **({"human": {task: turn.gold[task]}} if key in human else {}),
                }
            )
        out.write(json.dumps({"id": dialogue[0].dialogue_id, "turns": turns}) + "\n")
    return out.getvalue().encode()


def pool_import(
    pool: list[list[Any]], llm_labels: Path, task_name: str
) -> tuple[Any, dict[int, str]]:
    """A project of the pool with its LLM labels, imported as Parley imports files; returns
    the task and each utterance's gold label by utterance id."""
    from annotate import services
    from annotate.models import Utterance
    from bench import dailydialog as dd

    labels = dd.LABELS[task_name]
    llm = dd.read_llm_labels(llm_labels, task_name)
    project = services.project_create(
        name="Loop", slug="loop", tasks={task_name: labels}
    )
    services.transcripts_import(
        project=project,
        stream=io.BytesIO(import_lines(pool, llm, labels, task_name)),
        name="pool.jsonl",
    )
    task = project.tasks.get(name=task_name)
    services.queue_sync(task=task)
    gold = {(t.dialogue_id, t.position): t.gold[task_name] for d in pool for t in d}
    return task, {
        pk: gold[(ext, pos)]
        for pk, ext, pos in Utterance.objects.values_list(
            "pk", "dialogue__external_id", "position"
        )
    }


def answer_with_gold(
    task: Any, annotators: list[Any], gold: dict[int, str], count: int, key: str
) -> list[Any]:
    """`count` items claimed from the queue in turn by the annotators and answered with their
    gold label, as annotators would; the items answered (fewer when the queue runs dry)."""
    from annotate import services

    items = []
    for n in range(count):
        annotator = annotators[n % len(annotators)]
        item = services.queue_claim(task=task, annotator=annotator)
        if item is None:
            break
        services.label_submit(
            item_id=item.pk,
            annotator=annotator,
            label=gold[item.utterance_id],
            submission_key=f"{key}-{item.pk}",
        )
        items.append(item)
    return items


def setup_django(args: argparse.Namespace, data_dir: str) -> None:
    django_ready(
        {
            "DJANGO_SETTINGS_MODULE": "annotate.settings",
            "DJANGO_DEBUG": "true",
            "PARLEY_DATA_DIR": data_dir,
            "DATABASE_URL": args.database_url,
            "LEARNER_BACKBONE": args.backbone,
            "LEARNER_EPOCHS": str(args.epochs),
            "LEARNER_OBJECTIVE": args.objective,
            "LEARNER_PRECISION": args.precision,
            "PARLEY_TRUST_FOLDS": str(args.folds),
            # trust_v1: the calibrated trust before the verifier (signals only).
            "PARLEY_TRUST_VERIFIER": "signals"
            if args.strategy == "trust_v1"
            else "verifier",
            "PARLEY_AUDIT_FRACTION": str(args.audit_fraction),
            "PARLEY_DIVERSITY_CAP": str(args.diversity_cap),
            "PARLEY_TRUST_MIN_HUMAN": str(args.trust_min_human),
            "PARLEY_OVERLAP_FRACTION": "0",
            "PARLEY_RETRAIN_EVERY": str(10**9),
            "REDIS_URL": "",
            "CELERY_BROKER_URL": "memory://",
        }
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="parley-loop-") as data_dir:
        setup_django(args, data_dir)
        return simulate(args)


def simulate(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch
    from django.db.models import F

    from annotate import services, trust_figures
    from annotate.models import (
        HumanLabel,
        ModelVersion,
        Prediction,
        QueueItem,
        SoftLabel,
        TrainingRun,
    )
    from bench import dailydialog as dd
    from learner import checkpoint
    from learner.metrics import expected_calibration_error
    from learner.training import evaluate

    rng = random.Random(args.seed)
    random.seed(args.seed)  # the queue items' audit keys (`random_key`)
    services.queue.audit_rng.seed(args.seed)
    pool = dd.read_dialogues(args.pool)
    evaluation = dd.read_dialogues(args.eval)
    if args.limit_dialogues:
        pool, evaluation = (
            pool[: args.limit_dialogues],
            evaluation[: args.limit_dialogues],
        )
    labels = dd.LABELS[args.task]
    task, utterance_gold = pool_import(pool, args.llm_labels, args.task)
    llm_label = dict(
        SoftLabel.objects.filter(task=task).values_list("utterance_id", "label__value")
    )
    wrong = {pk for pk, g in utterance_gold.items() if llm_label.get(pk) != g}
    error_rate = len(wrong) / len(utterance_gold)
    per_round = max(1, round(args.budget * len(utterance_gold) / args.rounds))
    eval_examples, eval_gold = (
        dd.examples(evaluation, args.task),
        dd.gold_indices(evaluation, args.task),
    )
    from django.contrib.auth import get_user_model

    annotators = [get_user_model().objects.create(username=f"sim{i}") for i in range(4)]
    print(
        f"# {args.strategy}: pool {len(utterance_gold)} utterances, LLM error rate {error_rate:.4f}, "
        f"{per_round} answers per round, {args.rounds} rounds, eval {len(eval_gold)}",
        flush=True,
    )

    def retrain() -> ModelVersion:
        run = services.training_run_request(task=task)
        services.training_run_execute(run_id=run.pk)
        run.refresh_from_db()
        if run.status != TrainingRun.Status.SUCCEEDED:
            raise RuntimeError(f"training failed: {run.error}")
        services.predictions_store(run_id=run.pk)
        return ModelVersion.objects.get(run=run)

    def prioritise(version: ModelVersion | None) -> None:
        """Write the strategy's priority where the queue reads it (lowest first)."""
        if args.strategy in ("trust", "trust_v1"):
            return
        items = list(QueueItem.objects.filter(task=task, open=True))
        if args.strategy == "random":
            values = {i.pk: rng.random() for i in items}
        elif args.strategy == "llm_confidence":
            confidence = dict(
                SoftLabel.objects.filter(task=task).values_list(
                    "utterance_id", "confidence"
                )
            )
            values = {i.pk: confidence.get(i.utterance_id, 0.0) for i in items}
        else:
            probs = dict(
                Prediction.objects.filter(model_version=version).values_list(
                    "utterance_id", "probabilities"
                )
            )
            values = {}
            for i in items:
                p = np.clip(np.array(probs[i.utterance_id]), 1e-12, 1)
                values[i.pk] = 1.0 - float(-(p * np.log(p)).sum() / np.log(len(p)))
        for i in items:
            i.trust = i.priority = min(max(values[i.pk], 0.0), 1.0)
        QueueItem.objects.bulk_update(items, ["trust", "priority"], batch_size=2000)
        # the same diversity rule as the product's queue (dialogues only: no embeddings here)
        services.queue_diversify(task=task)

    def pool_calibration() -> tuple[float, float]:
        """ECE and Brier score of the queue's priority over the unanswered pool against gold
        (the simulation knows every answer), for strategies whose priority is P(LLM right)."""
        if args.strategy not in CALIBRATED:
            return float("nan"), float("nan")
        rows = list(
            QueueItem.objects.filter(task=task, open=True).values_list(
                "utterance_id", "trust"
            )
        )
        trusts = torch.tensor([t for _, t in rows], dtype=torch.float64)
        right = torch.tensor([pk not in wrong for pk, _ in rows])
        brier = float(((trusts - right.double()) ** 2).mean()) if rows else float("nan")
        return expected_calibration_error(trusts, right, bins=10), brier

    trains = args.strategy not in STUDENT_FREE or args.train_student
    rounds = []
    version = retrain() if trains else None
    for number in range(1, args.rounds + 1):
        started = time.perf_counter()
        prioritise(version)
        pool_ece, pool_brier = pool_calibration()
        audit = trust_figures.audit_figures(task=task)
        open_ids = set(
            QueueItem.objects.filter(task=task, open=True, answers=0).values_list(
                "utterance_id", flat=True
            )
        )
        true_wrong_left = len(open_ids & wrong)
        served = answer_with_gold(
            task, annotators, utterance_gold, per_round, key=str(number)
        )
        answered = [item.utterance_id for item in served]
        audits = sum(int(item.audit) for item in served)
        shown = (
            HumanLabel.objects.filter(task=task, utterance_id__in=answered)
            .annotate(shown=F("llm_label__value"))
            .values_list("utterance_id", "trust", "shown")
        )
        trust_at = {pk: t for pk, t, _ in shown}
        found = sum(1 for pk in answered if pk in wrong)
        precision = found / len(answered) if answered else 0.0
        humans = set(
            HumanLabel.objects.filter(task=task).values_list("utterance_id", flat=True)
        )
        corrected = sum(
            1
            for pk, g in utterance_gold.items()
            if (g if pk in humans else llm_label.get(pk)) == g
        )
        trusts = torch.tensor([trust_at[pk] for pk in answered], dtype=torch.float64)
        right = torch.tensor([pk not in wrong for pk in answered])
        ece = (
            expected_calibration_error(trusts, right, bins=10)
            if args.strategy in ("trust", "trust_v1")
            else float("nan")
        )
        accuracy = macro_f1 = float("nan")
        if trains:
            version = retrain()
            student, _ = checkpoint.load(
                Path(version.artifact_path) / "full", device="auto"
            )
            metrics = evaluate(student, eval_examples, eval_gold, labels)
            accuracy, macro_f1 = metrics.accuracy, metrics.macro_f1
        row = {
            "round": number,
            "answered": len(answered),
            "wrong_found": found,
            "queue_precision": precision,
            "lift": precision / error_rate if error_rate else float("nan"),
            "pool_accuracy": corrected / len(utterance_gold),
            "student_accuracy": accuracy,
            "student_macro_f1": macro_f1,
            "trust_ece": ece,
            "pool_ece": pool_ece,
            "pool_brier": pool_brier,
            "audits_served": audits,
            "true_wrong_left": true_wrong_left,
            "audit_estimate": audit,
            "seconds": time.perf_counter() - started,
        }
        rounds.append(row)
        print(
            f"round {number}: answered {len(answered)}, LLM wrong {found} → precision {precision:.3f} "
            f"(lift {row['lift']:.2f}), pool accuracy {row['pool_accuracy']:.4f}, student accuracy "
            f"{accuracy:.4f} (macro-F1 {macro_f1:.4f}), trust ECE {ece:.3f}, "
            f"pool ECE {pool_ece:.3f} (Brier {pool_brier:.3f}), {audits} audits, "
            f"wrong left {true_wrong_left} (audit: {_interval(audit, 'wrong_left')}, "
            f"audit ECE {_interval(audit, 'ece')}), {row['seconds']:.0f} s",
            flush=True,
        )
    report = {
        "command": " ".join(["python -m bench.active_loop", *(sys.argv[1:])]),
        "strategy": args.strategy,
        "task": args.task,
        "llm_error_rate": error_rate,
        "pool": len(utterance_gold),
        "rounds": rounds,
        "settings": {k: str(v) for k, v in vars(args).items()},
    }
    write_report(args.out, report)
    return report


def _interval(audit: dict[str, Any], key: str) -> str:
    if key not in audit:
        return f"{audit['answers']} of {audit['needed']} answers"
    value = audit[key]
    return f"{value['value']:.3g} [{value['low']:.3g}, {value['high']:.3g}]"


if __name__ == "__main__":
    main()
