"""LLM budget mode on DailyDialog: how many LLM calls the student saves, at what accuracy.

    python -m bench.budget --pool POOL.jsonl --llm-labels LLM.jsonl --task act \\
        [--human 0.05] [--tolerance 1.0] [--epochs 1 --precision bf16] [--out result.json]

Runs Parley's own code on a scratch database. The pool's dialogues are split in two halves
(seeded). Half A is imported with its LLM labels and, for a uniform `--human` share of its
utterances, the gold label as an imported human label; the student is trained on it
(`training_run_execute`, `predictions_store`: the budget threshold is chosen from those human
answers). Half B is imported as text only, budget mode is turned on, and an LLM run labels it
(`llm_run_execute`) with a client that replays the recorded prompt-bank answers of
`--llm-labels` (the same distributions an import would store) and counts the calls.

Prints the LLM calls asked against asking for everything, the accuracy of half B's resulting
labels against gold against the LLM's labels for all of it, the accuracy of each source on its
share, and, for reference, the whole trade-off curve of the student's confidence on half B
(hindsight: which threshold would have been best).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import random
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from bench.active_loop import import_lines, setup_django
from bench.common import write_report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--pool", required=True, type=Path)
    p.add_argument("--llm-labels", required=True, type=Path)
    p.add_argument("--task", default="act", choices=("act", "sentiment", "emotion"))
    p.add_argument(
        "--human",
        type=float,
        default=0.05,
        help="share of half A's utterances with an imported human (gold) label",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=1.0,
        help="accuracy points the student may lose (the task's budget_tolerance)",
    )
    p.add_argument("--min-answers", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--objective", default="pref")
    p.add_argument("--backbone", default="minilm-l6")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--limit-dialogues", type=int, default=0, help="smoke runs")
    p.add_argument(
        "--database-url", default="", help="default: SQLite in a temporary directory"
    )
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    # what bench.active_loop's setup reads
    args.strategy, args.audit_fraction, args.diversity_cap = "trust", 0.0, 0
    args.trust_min_human = 50
    return args


class ReplayClient:
    """Stands in for `annotate.llm.ChatClient`: answers each prompt's message with the answer
    recorded for that utterance, and counts the calls."""

    def __init__(self, answers: dict[str, Any]) -> None:
        from annotate.llm import LlmSettings, Usage

        self.settings = LlmSettings(base_url="replay", model="replay", concurrency=4)
        self.usage = Usage()
        self.answers = answers
        self.lock = threading.Lock()

    def ask(self, messages: list[dict[str, str]], labels: list[str]) -> Any:
        self.usage.add(requests=1)
        return self.answers[messages[-1]["content"]]

    def close(self) -> None:
        pass


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="parley-budget-") as data_dir:
        setup_django(args, data_dir)
        return simulate(args)


def simulate(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from annotate import selectors, services
    from annotate.llm import Answer
    from annotate.models import (
        LlmLabel,
        LlmRun,
        ModelVersion,
        PromptTemplate,
        SoftLabel,
        Utterance,
    )
    from annotate.prompts import prompt_messages
    from annotate.services.budget import budget_threshold
    from bench import dailydialog as dd
    from learner import CrossFitted, predict, scores

    pool = dd.read_dialogues(args.pool)
    if args.limit_dialogues:
        pool = pool[: args.limit_dialogues]
    labels = dd.LABELS[args.task]
    llm = dd.read_llm_labels(args.llm_labels, args.task)

    def half(dialogue: list[Any]) -> str:
        digest = hashlib.sha256(f"{args.seed}:{dialogue[0].dialogue_id}".encode())
        return "A" if digest.digest()[0] % 2 == 0 else "B"

    train = [d for d in pool if half(d) == "A"]
    new = [d for d in pool if half(d) == "B"]
    rng = random.Random(args.seed)
    keys = [(t.dialogue_id, t.position) for d in train for t in d]
    human = set(rng.sample(keys, round(args.human * len(keys))))
    project = services.project_create(
        name="Budget", slug="budget", tasks={args.task: labels}
    )
    task = project.tasks.get(name=args.task)
    prompts = sorted({p for answers in llm.values() for p in answers})
    for name in prompts:
        PromptTemplate.objects.create(
            task=task,
            name=name,
            template=f"[{name}] {{context}}\n{{utterance}}",
            context_turns=3,
        )
    services.transcripts_import(
        project=project,
        stream=io.BytesIO(import_lines(train, llm, labels, args.task, human)),
        name="half-a.jsonl",
    )
    services.queue_sync(task=task)
    # the imported answers are the replayed model's: a run asks only for what is missing
    LlmLabel.objects.filter(task=task).update(model="replay")
    print(
        f"# {args.task}: half A {sum(map(len, train))} utterances ({len(human)} with a human "
        f"label), half B {sum(map(len, new))}; {len(prompts)} prompts",
        flush=True,
    )
    run = services.training_run_request(task=task)
    services.training_run_execute(run_id=run.pk)
    services.predictions_store(run_id=run.pk)
    version = ModelVersion.objects.get(task=task, is_active=True)
    task.budget_mode, task.budget_tolerance = True, args.tolerance
    task.save()

    services.transcripts_import(
        project=project,
        stream=io.BytesIO(import_lines(new, {}, labels, args.task)),
        name="half-b.jsonl",
    )
    # The recorded answer of each prompt for each utterance of half B, keyed by the
    # message the product sends for it.
    gold: dict[int, str] = {}
    answers: dict[str, Any] = {}
    collisions = 0
    by_key = {(t.dialogue_id, t.position): t for d in new for t in d}
    rows = Utterance.objects.filter(
        dialogue__external_id__in={d[0].dialogue_id for d in new}
    )
    dialogues: dict[int, dict[int, Any]] = {}
    for u in rows.select_related("dialogue"):
        dialogues.setdefault(u.dialogue_id, {})[u.position] = u
    for turns in dialogues.values():
        for position, u in turns.items():
            key = (u.dialogue.external_id, position)
            gold[u.pk] = by_key[key].gold[args.task]
            context = [turns[p] for p in range(max(0, position - 3), position)]
            for prompt in PromptTemplate.objects.filter(task=task):
                dist = llm[key][prompt.name]
                content = prompt_messages(prompt, labels, u, context)[-1]["content"]
                collisions += content in answers
                best = int(np.argmax(dist))
                answers[content] = Answer(
                    labels[best],
                    float(dist[best]),
                    dict(zip(labels, dist, strict=True)),
                    "replay",
                    "",
                )
    client = ReplayClient(answers)  # (the run moves its usage figures onto the LlmRun)
    llm_run = LlmRun.objects.create(task=task, model="replay")
    services.llm_run_execute(run_id=llm_run.pk, client=client)  # type: ignore[arg-type]
    llm_run.refresh_from_db()
    if llm_run.status != LlmRun.Status.SUCCEEDED:
        raise RuntimeError(f"LLM run failed: {llm_run.error}")

    soft = {
        pk: (label, source)
        for pk, label, source in SoftLabel.objects.filter(
            task=task, utterance_id__in=gold
        ).values_list("utterance_id", "label__value", "source")
    }
    ensemble = {
        pk: labels[int(np.argmax(np.mean(list(llm[key].values()), axis=0)))]
        for pk, key in (
            (u.pk, (u.dialogue.external_id, u.position))
            for turns in dialogues.values()
            for u in turns.values()
        )
    }
    n = len(gold)
    threshold = budget_threshold(task, version)
    by_student = [pk for pk, (_, source) in soft.items() if source == "student"]
    asked = [pk for pk, (_, source) in soft.items() if source == "llm"]

    def accuracy(ids: list[int], source: dict[int, str]) -> float:
        return (
            sum(source[pk] == gold[pk] for pk in ids) / len(ids)
            if ids
            else float("nan")
        )

    def macro_f1(source: dict[int, str]) -> float:
        index = {label: i for i, label in enumerate(labels)}
        matrix = np.zeros((len(labels), len(labels)), dtype=int)
        for pk in gold:
            matrix[index[gold[pk]], index[source[pk]]] += 1
        return float(scores.macro_f1(scores.per_class_scores(matrix.tolist())) or 0.0)

    resulting = {pk: label for pk, (label, _) in soft.items()}
    all_calls = n * len(prompts)
    report_row: dict[str, Any] = {
        "utterances": n,
        "threshold": threshold.as_dict(),
        "student_labelled": len(by_student),
        "llm_calls": llm_run.requests,
        "llm_calls_all": all_calls,
        "calls_saved": 1 - llm_run.requests / all_calls,
        "accuracy_budget": accuracy(list(gold), resulting),
        "accuracy_all_llm": accuracy(list(gold), ensemble),
        "macro_f1_budget": macro_f1(resulting),
        "macro_f1_all_llm": macro_f1(ensemble),
        "student_share_accuracy": accuracy(by_student, resulting),
        "llm_on_student_share_accuracy": accuracy(by_student, ensemble),
        "asked_share_accuracy": accuracy(asked, resulting),
        "message_collisions": collisions,
    }
    # Hindsight: the student's trade-off on half B at every threshold.
    students = CrossFitted.load(version.artifact_path, 0, device="cpu")
    ordered = list(
        Utterance.objects.filter(pk__in=gold)
        .order_by("dialogue_id", "position")
        .values_list("pk", flat=True)
    )
    examples = selectors.training_examples(
        task=task, utterance_ids=ordered, context_turns=students.context_turns
    )
    probabilities, _ = predict(students.full, examples)
    confidence = probabilities.max(axis=1)
    predicted = [labels[int(i)] for i in probabilities.argmax(axis=1)]
    curve = []
    for t in (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98):
        take = confidence >= t
        mixed = [
            predicted[i] if take[i] else ensemble[pk] for i, pk in enumerate(ordered)
        ]
        curve.append(
            {
                "threshold": t,
                "share": float(take.mean()),
                "accuracy": float(
                    np.mean(
                        [m == gold[pk] for m, pk in zip(mixed, ordered, strict=True)]
                    )
                ),
            }
        )
    report_row["curve"] = curve
    print(
        f"threshold {threshold.threshold} (chosen on {threshold.covered} of "
        f"{threshold.answers} human answers, tolerance {args.tolerance} points)\n"
        f"LLM calls {llm_run.requests} of {all_calls} "
        f"({100 * report_row['calls_saved']:.1f} % saved); student labelled "
        f"{len(by_student)} of {n} utterances\n"
        f"accuracy of half B's labels: budget mode {report_row['accuracy_budget']:.4f}, "
        f"all LLM {report_row['accuracy_all_llm']:.4f} "
        f"({100 * (report_row['accuracy_budget'] - report_row['accuracy_all_llm']):+.2f} points); "
        f"macro-F1 {report_row['macro_f1_budget']:.4f} against "
        f"{report_row['macro_f1_all_llm']:.4f}\n"
        f"on the student's share: student {report_row['student_share_accuracy']:.4f}, "
        f"LLM {report_row['llm_on_student_share_accuracy']:.4f}; the LLM's share "
        f"{report_row['asked_share_accuracy']:.4f}; {collisions} repeated messages",
        flush=True,
    )
    for row in curve:
        print(
            f"  hindsight: threshold {row['threshold']:.2f}: student share "
            f"{100 * row['share']:5.1f} %, accuracy {row['accuracy']:.4f}",
            flush=True,
        )
    report = {
        "command": " ".join(["python -m bench.budget", *(sys.argv[1:])]),
        "task": args.task,
        **report_row,
        "settings": {k: str(v) for k, v in vars(args).items()},
    }
    write_report(args.out, report)
    return report


if __name__ == "__main__":
    main()
