"""The student's inference paths on the CPU: speed and what they cost in accuracy.

    python -m bench.inference --train POOL.jsonl --llm-labels LLM.jsonl --eval EVAL.jsonl \\
        --task act [--checkpoint DIR] [--epochs 1 --precision bf16] [--out result.json]

Trains a student on the pool's LLM labels (or takes `--checkpoint`, a saved student), exports
it to ONNX (`learner.fast`), then for torch fp32, ONNX Runtime fp32 and ONNX Runtime int8:
- throughput over the pool's utterances (length-sorted batches of 64), median of `--repeats`;
- single-utterance latency, p50 and p95 over `--single` utterances one at a time;
- accuracy and macro-F1 on the eval file, and the largest and mean absolute difference of the
  probabilities from torch's;
- the trust the queue would compute (`heuristic_trust` on the pool's LLM signals and the
  student's probabilities): largest and mean absolute difference from torch's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench import dailydialog as dd
from bench.common import percentile, write_report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--train", required=True, type=Path, help="the pool (DailyDialog format)"
    )
    p.add_argument("--llm-labels", required=True, type=Path)
    p.add_argument("--eval", required=True, type=Path)
    p.add_argument("--task", default="act", choices=("act", "sentiment", "emotion"))
    p.add_argument(
        "--checkpoint", type=Path, help="a saved student (default: train one)"
    )
    p.add_argument("--save", type=Path, default=Path("bench/out/inference-student"))
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    p.add_argument("--backbone", default="minilm-l6")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--single", type=int, default=200)
    p.add_argument("--out", type=Path)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import numpy as np

    from learner import (
        StudentConfig,
        TrainingConfig,
        heuristic_trust,
        load_student,
        macro_f1,
        per_class_scores,
        save_student,
        train,
        trust_features,
    )
    from learner.crossfit import predict
    from learner.fast import OnnxStudent, export_onnx

    args = parse_args(argv)
    labels = dd.LABELS[args.task]
    pool = dd.read_dialogues(args.train)
    llm = dd.read_llm_labels(args.llm_labels, args.task)
    pool_examples = dd.examples(pool, args.task, llm=llm, context_turns=1)
    evaluation = dd.read_dialogues(args.eval)
    eval_examples = dd.examples(evaluation, args.task, context_turns=1)
    gold = np.array(dd.gold_indices(evaluation, args.task))

    directory = args.checkpoint
    if directory is None:
        started = time.perf_counter()
        result = train(
            [ex for ex in pool_examples if ex.llm],
            StudentConfig(labels=labels, backbone=args.backbone, context_turns=1),
            TrainingConfig(epochs=args.epochs, precision=args.precision),
        )
        directory = save_student(result.student, args.save, version=1)
        print(f"# trained in {time.perf_counter() - started:.0f} s: {directory}")
    started = time.perf_counter()
    export_onnx(directory)
    print(
        f"# exported to ONNX (fp32 and int8) in {time.perf_counter() - started:.1f} s"
    )

    backends = {
        "torch fp32": load_student(directory, device="cpu")[0],
        "onnx fp32": OnnxStudent(directory, quantized=False),
        "onnx int8": OnnxStudent(directory, quantized=True),
    }
    rows: dict[str, dict[str, Any]] = {}
    reference: dict[str, Any] = {}
    for name, student in backends.items():
        predict(student, pool_examples[:64])  # warm up
        speeds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            pool_probs, _ = predict(student, pool_examples)
            speeds.append(len(pool_examples) / (time.perf_counter() - started))
        single = []
        for ex in pool_examples[: args.single]:
            started = time.perf_counter()
            predict(student, [ex])
            single.append((time.perf_counter() - started) * 1000)
        eval_probs, _ = predict(student, eval_examples)
        predicted = eval_probs.argmax(axis=1)
        matrix = np.zeros((len(labels), len(labels)), dtype=int)
        np.add.at(matrix, (gold, predicted), 1)
        trust = heuristic_trust(trust_features(pool_examples, len(labels), pool_probs))
        if not reference:
            reference = {"eval": eval_probs, "trust": trust}
        rows[name] = {
            "utterances_per_s": statistics.median(speeds),
            "single_p50_ms": percentile(single, 0.5),
            "single_p95_ms": percentile(single, 0.95),
            "accuracy": float((predicted == gold).mean()),
            "macro_f1": macro_f1(per_class_scores(matrix.tolist())),
            "probability_diff_max": float(np.abs(eval_probs - reference["eval"]).max()),
            "probability_diff_mean": float(
                np.abs(eval_probs - reference["eval"]).mean()
            ),
            "trust_diff_max": float(np.abs(trust - reference["trust"]).max()),
            "trust_diff_mean": float(np.abs(trust - reference["trust"]).mean()),
        }
        r = rows[name]
        print(
            f"{name:10s} {r['utterances_per_s']:6.0f} utt/s (median of {args.repeats}), "
            f"single p50 {r['single_p50_ms']:.1f} ms p95 {r['single_p95_ms']:.1f} ms, "
            f"accuracy {r['accuracy']:.4f} macro-F1 {r['macro_f1']:.4f}, "
            f"probabilities vs torch max {r['probability_diff_max']:.4f} "
            f"mean {r['probability_diff_mean']:.5f}, trust max {r['trust_diff_max']:.4f} "
            f"mean {r['trust_diff_mean']:.5f}",
            flush=True,
        )
    report = {
        "command": " ".join(["python -m bench.inference", *sys.argv[1:]]),
        "task": args.task,
        "pool": len(pool_examples),
        "eval": len(eval_examples),
        "backends": rows,
        "settings": {k: str(v) for k, v in vars(args).items()},
    }
    write_report(args.out, report)
    return report


if __name__ == "__main__":
    main()
