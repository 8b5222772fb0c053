"""Distillation benchmark: train the student on LLM labels (+ a fraction of human labels).

    python -m bench.distill --train POOL.jsonl --llm-labels LLM.jsonl --eval EVAL.jsonl \\
        --task act --objective ce kd llmr pref --human-fraction 0 0.05 0.2 --seeds 3 \\
        --out results.json
    python -m bench.distill --merge a.json b.json ...   # one table from several --out files

Reads the DailyDialog benchmark format (bench/dailydialog.py), trains with `learner.train` on
the training file's utterances labelled by the LLM prompt bank, with a fraction F of its
utterances' gold labels revealed as human labels (whole dialogues, at random, per seed), and
evaluates on the eval file's gold labels. Prints one row per objective and fraction: accuracy,
macro-F1, ECE and training time as mean ± std over the seeds, and the LLM ensemble's own
accuracy on the training pool (majority over prompts) as the teacher reference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from bench import dailydialog as dd
from bench.common import write_report
from learner import loss
from learner.metrics import classification_metrics
from learner.model import StudentConfig
from learner.training import OBJECTIVES, TrainingConfig, evaluate, train


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--train", required=True, type=Path, help="dialogues to train on (the pool)"
    )
    p.add_argument(
        "--llm-labels",
        required=True,
        type=Path,
        help="LLM labels of the train dialogues",
    )
    p.add_argument(
        "--eval",
        required=True,
        type=Path,
        help="dialogues to evaluate on (gold labels)",
    )
    p.add_argument("--task", required=True, choices=dd.TASKS)
    p.add_argument(
        "--objective", nargs="+", default=list(OBJECTIVES), choices=OBJECTIVES
    )
    p.add_argument("--human-fraction", nargs="+", type=float, default=[0.0])
    p.add_argument("--seeds", type=int, default=3, help="how many seeds")
    p.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="seeds K..K+N-1 (to split one table over several processes; see --merge)",
    )
    p.add_argument("--out", type=Path, help="write every run and the summary as JSON")
    p.add_argument(
        "--tag",
        default="",
        help="names the setting in the table (e.g. 'λkd=0.3'): rows are objective [tag]",
    )
    p.add_argument(
        "--limit-dialogues",
        type=int,
        default=0,
        help="use only the first N train/eval dialogues (smoke runs)",
    )
    s = p.add_argument_group("student (defaults: learner.StudentConfig)")
    s.add_argument("--backbone", default=StudentConfig.backbone)
    s.add_argument("--context-turns", type=int, default=StudentConfig.context_turns)
    s.add_argument("--max-length", type=int, default=StudentConfig.max_length)
    d = TrainingConfig()
    t = p.add_argument_group("training (defaults: learner.TrainingConfig)")
    t.add_argument("--epochs", type=int, default=d.epochs)
    t.add_argument("--batch-size", type=int, default=d.batch_size)
    t.add_argument("--lr", type=float, default=d.lr)
    t.add_argument("--val-fraction", type=float, default=d.val_fraction)
    t.add_argument("--human-weight", type=float, default=d.human_weight, help="β")
    t.add_argument(
        "--kd-weight", type=float, default=d.kd_weight, help="λ_kd (pref only)"
    )
    t.add_argument(
        "--llmr-entropy", type=float, default=d.llmr_entropy, help="λ (llmr only)"
    )
    t.add_argument(
        "--gamma", type=float, default=d.pref.gamma, help="pref margin scale γ"
    )
    t.add_argument("--tau", type=float, default=d.pref.tau, help="pref threshold τ")
    t.add_argument(
        "--window",
        type=int,
        default=d.pref.window,
        help="pref pair window W (0: whole dialogue)",
    )
    t.add_argument(
        "--trim", type=float, default=d.pref.trim, help="pref small-loss trimming ρ"
    )
    t.add_argument(
        "--form",
        default=d.pref.form,
        choices=loss.FORMS,
        help="pref pair term: hinge (default), softplus or mse (margin-MSE)",
    )
    t.add_argument(
        "--ties",
        default=d.pref.ties,
        choices=loss.TIES,
        help="pref near-tie pairs (Δ ≤ τ): drop (default) or kd (margin-MSE)",
    )
    t.add_argument(
        "--logit-adjust",
        type=float,
        default=d.logit_adjust,
        help="τ of the logit-adjusted loss (0: off)",
    )
    t.add_argument(
        "--unweighted", action="store_true", help="pref without the a_i·a_j weights"
    )
    t.add_argument(
        "--cross-dialogue",
        action="store_true",
        help="pref pairs across dialogues (control)",
    )
    t.add_argument("--two-stage", action="store_true", default=d.two_stage)
    t.add_argument("--stage2-epochs", type=int, default=d.stage2_epochs)
    t.add_argument("--device", default=d.device)
    t.add_argument("--precision", default=d.precision, choices=("fp32", "bf16"))
    return p.parse_args(argv)


def training_config(
    args: argparse.Namespace, objective: str, seed: int
) -> TrainingConfig:
    return TrainingConfig(
        objective=objective,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=seed,
        device=args.device,
        val_fraction=args.val_fraction,
        human_weight=args.human_weight,
        kd_weight=args.kd_weight,
        llmr_entropy=args.llmr_entropy,
        pref=loss.PrefOptions(
            gamma=args.gamma,
            tau=args.tau,
            window=args.window,
            form=args.form,
            ties=args.ties,
            trim=args.trim,
            weighted=not args.unweighted,
            cross_dialogue=args.cross_dialogue,
        ),
        logit_adjust=args.logit_adjust,
        two_stage=args.two_stage,
        stage2_epochs=args.stage2_epochs,
        precision=args.precision,
    )


def teacher_reference(
    pool: list[list[dd.Turn]], llm: Any, task: str
) -> dict[str, float]:
    labels = dd.LABELS[task]
    predicted = torch.tensor(dd.teacher_majority(pool, llm, task))
    gold = torch.tensor(dd.gold_indices(pool, task))
    known = predicted >= 0
    one_hot = torch.nn.functional.one_hot(predicted[known], len(labels)).float()
    m = classification_metrics(one_hot, gold[known], labels)
    return {"accuracy": m.accuracy, "macro_f1": m.macro_f1, "n": m.n}


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def rows_by_setting(
    runs: list[dict[str, Any]],
) -> dict[tuple[float, str], list[dict[str, Any]]]:
    """The runs of each (human fraction, setting), in the order the runs came."""
    rows: dict[tuple[float, str], list[dict[str, Any]]] = {}
    for r in runs:
        rows.setdefault((r["human_fraction"], setting_of(r)), []).append(r)
    return rows


def summarise(task: str, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (human fraction, objective), in the order the runs came: mean and std over
    the seeds of accuracy, macro-F1, ECE and training seconds; printed as a markdown table."""
    print(
        "\n| task | objective | human F | accuracy | macro-F1 | ECE | train s | seeds |"
    )
    print("|---|---|---|---|---|---|---|---|")
    summary = []
    for (fraction, setting), rows in rows_by_setting(runs).items():
        row: dict[str, Any] = {
            "objective": rows[0]["objective"],
            "setting": setting,
            "human_fraction": fraction,
            "seeds": sorted(r["seed"] for r in rows),
        }
        values = {
            key: [r[key] for r in rows]
            for key in ("accuracy", "macro_f1", "ece", "train_seconds")
        }
        for key, column in values.items():
            row[key] = statistics.mean(column)
            row[f"{key}_std"] = statistics.stdev(column) if len(column) > 1 else 0.0
        summary.append(row)
        print(
            f"| {task} | {setting} | {fraction:g} | {mean_std(values['accuracy'])} | "
            f"{mean_std(values['macro_f1'])} | {mean_std(values['ece'])} | "
            f"{row['train_seconds']:.0f} | {len(rows)} |"
        )
    return summary


def class_counts(run: dict[str, Any]) -> dict[str, tuple[int | None, int, int]]:
    """Per class of a run: how often it was predicted, how often rightly, and its gold count.
    Runs saved before it was kept give the count back from precision, and one class never
    predicted rightly from the others (the predictions add up to the gold counts); where
    two classes were never predicted rightly, theirs are None."""
    counts: dict[str, tuple[int | None, int, int]] = {}
    for name, c in run["per_class"].items():
        correct = round(c["recall"] * c["support"])
        predicted = c.get("predicted")
        if predicted is None and c["precision"]:
            predicted = round(correct / c["precision"])
        counts[name] = (predicted, correct, c["support"])
    unknown = [name for name, c in counts.items() if c[0] is None]
    if len(unknown) == 1:
        (name,) = unknown
        n = sum(c[2] for c in counts.values())
        rest = sum(c[0] or 0 for c in counts.values())
        counts[name] = (n - rest, *counts[name][1:])
    return counts


def class_table(task: str, runs: list[dict[str, Any]]) -> None:
    """Print, per (human fraction, setting), each class's predicted / correct / gold counts
    (means over the seeds): on a skewed task, where macro-F1 comes from."""
    names = list(runs[0]["per_class"])
    print(f"\n{task}, per class: predicted / correct of gold (mean over seeds)\n")
    print("| setting | human F | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for (fraction, setting), rows in rows_by_setting(runs).items():
        counts = [class_counts(r) for r in rows]
        cells = []
        for name in names:
            predicted = [p for c in counts if (p := c[name][0]) is not None]
            shown = (
                f"{statistics.mean(predicted):.0f}"
                if len(predicted) == len(counts)
                else "?"
            )
            correct = statistics.mean(c[name][1] for c in counts)
            cells.append(f"{shown} / {correct:.0f} of {counts[0][name][2]}")
        print(f"| {setting} | {fraction:g} | " + " | ".join(cells) + " |")


def setting_of(run: dict[str, Any]) -> str:
    """The row a run belongs to: its objective, and its tag where it has one."""
    return str(run.get("setting") or run["objective"])


def merge(paths: list[Path]) -> dict[str, list[dict[str, Any]]]:
    """Summarise the runs of several `--out` files (one table per task), e.g. the seeds of one
    table run as separate processes with `--first-seed`. Runs of one (task, setting, F, seed)
    that appear twice are an error: they would count twice in the mean."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    seen: dict[tuple[Any, ...], Path] = {}
    for path in paths:
        report = json.loads(path.read_text())
        for run in report["runs"]:
            key = (report["task"], setting_of(run), run["human_fraction"], run["seed"])
            if key in seen:
                raise SystemExit(f"{path}: run {key} is also in {seen[key]}")
            seen[key] = path
            by_task.setdefault(report["task"], []).append(run)
    tables = {}
    for task, runs in by_task.items():
        runs.sort(
            key=lambda r: (
                r["human_fraction"],
                OBJECTIVES.index(r["objective"]),
                setting_of(r),
                r["seed"],
            )
        )
        tables[task] = summarise(task, runs)
        class_table(task, runs)
    return tables


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--merge"]:
        if len(argv) < 2:
            raise SystemExit("usage: python -m bench.distill --merge RESULTS.json...")
        return {"tables": merge([Path(a) for a in argv[1:]])}
    args = parse_args(argv)
    pool = dd.read_dialogues(args.train)
    evaluation = dd.read_dialogues(args.eval)
    if args.limit_dialogues:
        pool, evaluation = (
            pool[: args.limit_dialogues],
            evaluation[: args.limit_dialogues],
        )
    llm = dd.read_llm_labels(args.llm_labels, args.task)
    labels = dd.LABELS[args.task]
    teacher = teacher_reference(pool, llm, args.task)
    eval_examples = dd.examples(evaluation, args.task)
    eval_gold = dd.gold_indices(evaluation, args.task)
    student_config = StudentConfig(
        labels=labels,
        backbone=args.backbone,
        context_turns=args.context_turns,
        max_length=args.max_length,
    )
    print(
        f"# task {args.task}: train {sum(map(len, pool))} utterances ({len(pool)} dialogues), "
        f"eval {len(eval_gold)}; torch threads {torch.get_num_threads()}"
    )
    print(
        f"# teacher (LLM majority over prompts) on the training pool: accuracy {teacher['accuracy']:.4f}, "
        f"macro-F1 {teacher['macro_f1']:.4f}"
    )
    runs = []
    for fraction in args.human_fraction:
        for objective in args.objective:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                human = dd.reveal_human(pool, fraction, seed)
                train_examples = dd.examples(
                    pool, args.task, llm=llm, human_dialogues=human
                )
                config = training_config(args, objective, seed)
                result = train(train_examples, student_config, config)
                started = time.perf_counter()
                metrics = evaluate(result.student, eval_examples, eval_gold, labels)
                runs.append(
                    {
                        "objective": objective,
                        "setting": f"{objective} [{args.tag}]"
                        if args.tag
                        else objective,
                        "human_fraction": fraction,
                        "seed": seed,
                        "accuracy": metrics.accuracy,
                        "macro_f1": metrics.macro_f1,
                        "ece": metrics.ece,
                        "train_seconds": result.seconds,
                        "eval_seconds": time.perf_counter() - started,
                        "utterances_seen": result.utterances_seen,
                        "best_epoch": result.best_epoch,
                        "history": result.history,
                        "per_class": metrics.as_dict()["per_class"],
                        "confusion": metrics.confusion,
                    }
                )
                print(
                    f"  run {runs[-1]['setting']} F={fraction} seed={seed}: acc {metrics.accuracy:.4f} "
                    f"F1 {metrics.macro_f1:.4f} ECE {metrics.ece:.4f} "
                    f"({result.seconds:.0f} s, {result.utterances_seen / result.seconds:.1f} utterances/s "
                    f"over {result.utterances_seen} seen, best epoch {result.best_epoch})",
                    flush=True,
                )
    summary = summarise(args.task, runs)
    report = {
        "command": " ".join(["python -m bench.distill", *argv]),
        "task": args.task,
        "teacher": teacher,
        "student": asdict(student_config),
        "training": {k: str(v) for k, v in vars(args).items()},
        "summary": summary,
        "runs": runs,
    }
    write_report(args.out, report)
    return report


if __name__ == "__main__":
    main()
