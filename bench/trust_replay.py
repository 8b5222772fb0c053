"""Trust replay: the queue's ranking and calibration, many variants and seeds, in seconds.

    python -m bench.trust_replay --pool POOL.jsonl --llm-labels LLM.jsonl --task act \\
        --cache bench/out/replay-act.npz [--seeds 0 1 2] [--variants trust llm_confidence ...]

`bench.active_loop` runs the whole product (import, queue, training, scoring) and takes about
half an hour per strategy and seed here. This replay keeps the students fixed: it trains the
cross-fitted students once on the LLM labels (the product's training, `--folds` dialogue folds,
1 epoch bf16 by default) and caches every utterance's out-of-fold probabilities and
embeddings (`--cache`); then it replays the queue for each variant — rounds of
`budget / rounds` answers with gold labels, the verifier refitted on the answers after each
round, the audit share drawn uniformly, the diversity rule — with the learner's own functions
(`Verifier`, `knn_agreement`, `diversify`, `audit_estimate`). What it cannot show is the
student improving with the human labels between rounds; the active loop does.

Per variant it prints the wrong LLM labels found (all served items, audits included), the
lift over the pool's error rate, the trust ECE and Brier over the unanswered pool against
gold from round 2 on, and the audit's estimate of that ECE and of the wrong labels left
beside the truth.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import dailydialog as dd
from bench import replay_trust
from bench.common import write_report
from bench.replay_trust import VARIANTS, ceiling


@dataclass
class Pool:
    soft: np.ndarray
    agreement: np.ndarray
    votes: np.ndarray
    student: np.ndarray
    embeddings: np.ndarray
    gold: np.ndarray
    dialogue: np.ndarray
    labels: np.ndarray = field(init=False)
    previous: np.ndarray = field(init=False)
    """The previous turn's LLM label (`NO_PREVIOUS` at a dialogue's start): the cache keeps
    the pool's order, each dialogue's turns in a row."""

    def __post_init__(self) -> None:
        from learner import NO_PREVIOUS

        self.labels = self.soft.argmax(axis=1)
        self.previous = np.full(len(self.labels), NO_PREVIOUS, dtype=np.int64)
        same = self.dialogue[1:] == self.dialogue[:-1]
        self.previous[1:][same] = self.labels[:-1][same]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from learner import TrainingConfig

    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--pool", required=True, type=Path)
    p.add_argument("--llm-labels", required=True, type=Path)
    p.add_argument("--task", default="act", choices=("act", "sentiment", "emotion"))
    p.add_argument("--cache", required=True, type=Path)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--budget", type=float, default=0.1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--audit-fraction", type=float, default=0.1)
    p.add_argument("--min-human", type=int, default=50)
    p.add_argument(
        "--audit-min-answers",
        type=int,
        default=30,
        help="audit answers before an estimate (PARLEY_AUDIT_MIN_ANSWERS)",
    )
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--backbone", default="minilm-l6")
    p.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    p.add_argument(
        "--kd-weight",
        type=float,
        default=TrainingConfig.kd_weight,
        help="the students' λ_kd (default: the product's; the figures in "
        "docs/active-loop.md were measured at 1, its default then)",
    )
    p.add_argument(
        "--student-seed",
        type=int,
        default=0,
        help="the students' training seed (--seeds only draws the replay's audits)",
    )
    p.add_argument("--out", type=Path)
    return p.parse_args(argv)


STUDENT_SETTINGS = ("task", "epochs", "folds", "backbone", "precision", "kd_weight")
"""What the cached students depend on: a cache built with other values is refused."""


def student_settings(args: argparse.Namespace) -> str:
    """The cached students' settings, as the cache records them. Their training seed is
    written only where it is not 0, so caches from before `--student-seed` stay valid."""
    settings = {k: getattr(args, k) for k in STUDENT_SETTINGS}
    if args.student_seed:
        settings["student_seed"] = args.student_seed
    return json.dumps(settings, sort_keys=True)


def build_cache(args: argparse.Namespace) -> None:
    """Train the cross-fitted students on the LLM labels; save out-of-fold probabilities
    and embeddings of every utterance."""
    from learner import (
        StudentConfig,
        TrainingConfig,
        fold_of,
        predict_with_embeddings,
        prompt_votes,
        train,
    )

    pool = dd.read_dialogues(args.pool)
    labels = dd.LABELS[args.task]
    llm = dd.read_llm_labels(args.llm_labels, args.task)
    examples = dd.examples(pool, args.task, llm=llm, context_turns=1)
    examples = [ex for ex in examples if ex.llm]
    n_prompts = max(len(ex.llm) for ex in examples)
    student = np.zeros((len(examples), len(labels)))
    embeddings: np.ndarray | None = None
    folds = np.array([fold_of(ex.dialogue_id, args.folds) for ex in examples])
    for k in range(args.folds):
        started = time.perf_counter()
        result = train(
            [ex for ex, f in zip(examples, folds, strict=True) if f != k],
            StudentConfig(labels=labels, backbone=args.backbone, context_turns=1),
            TrainingConfig(
                epochs=args.epochs,
                precision=args.precision,
                kd_weight=args.kd_weight,
                seed=args.student_seed,
            ),
        )
        index = np.flatnonzero(folds == k)
        probs, emb = predict_with_embeddings(
            result.student, [examples[i] for i in index]
        )
        student[index] = probs.numpy()
        if embeddings is None:
            embeddings = np.zeros((len(examples), emb.shape[1]), dtype=np.float32)
        embeddings[index] = emb.numpy()
        print(f"# fold {k}: {time.perf_counter() - started:.0f} s", flush=True)
    assert embeddings is not None  # set by the first fold
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.cache,
        settings=np.array(student_settings(args)),
        soft=np.array([ex.soft for ex in examples]),
        agreement=np.array([ex.agreement for ex in examples]),
        votes=prompt_votes([ex.llm for ex in examples], n_prompts),
        student=student,
        embeddings=embeddings,
        gold=np.array(
            [
                labels.index(t.gold[args.task])
                for d in pool
                for t in d
                if (t.dialogue_id, t.position) in llm
            ]
        ),
        dialogue=np.array(
            [
                int(hashlib.sha256(ex.dialogue_id.encode()).hexdigest()[:8], 16)
                for ex in examples
            ]
        ),
    )


def load(path: Path, settings: str | None = None) -> Pool:
    """The cached pool; where `settings` is given, refused unless its students were
    trained with them (a cache from before they were kept is refused too)."""
    data = np.load(path)
    if settings is not None:
        built = str(data["settings"]) if "settings" in data else "not recorded"
        if built != settings:
            raise SystemExit(
                f"{path}: its students were built with {built}, not {settings}; "
                "give another --cache (or delete this one) to train them again"
            )
    return Pool(
        **{
            k: data[k]
            for k in Pool.__dataclass_fields__
            if k not in ("labels", "previous")
        }
    )


def replay(
    pool: Pool, variant: str, seed: int, args: argparse.Namespace
) -> dict[str, Any]:
    from learner import (
        audit_estimate,
        clusters,
        diversify,
        knn_agreement,
        signals,
        student_margin,
        weighted_ece,
    )

    options = {"audit": args.audit_fraction, "diversity": True, **VARIANTS[variant]}
    rng = np.random.default_rng(seed)
    n, c = pool.soft.shape
    features = signals(pool.soft, pool.agreement, pool.student)
    wrong = pool.labels != pool.gold
    per_round = max(1, round(args.budget * n / args.rounds))
    answered: list[int] = []
    audit: list[bool] = []
    probability: list[float] = []
    trust_at: list[float] = []
    open_ = np.ones(n, dtype=bool)
    rows: list[dict[str, Any]] = []
    history: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def extra_columns(truth_known: np.ndarray) -> np.ndarray:
        columns = []
        if options.get("knn"):
            reference = pool.soft.copy()
            reference[truth_known] = np.eye(c)[pool.gold[truth_known]]
            columns.append(
                knn_agreement(
                    pool.embeddings,
                    pool.labels,
                    pool.dialogue,
                    pool.embeddings,
                    reference,
                    pool.dialogue,
                )
            )
        if options.get("errknn") and truth_known.any():
            columns.append(
                replay_trust.error_knn(
                    pool, truth_known, same_label=options["errknn"] == "same"
                )
            )
        elif options.get("errknn"):
            columns.append(np.zeros(n))
        if options.get("margin"):
            columns.append(student_margin(pool.student, pool.labels))
        if options.get("logits"):
            rows_ = np.arange(n)
            for p in (pool.soft[rows_, pool.labels], pool.student[rows_, pool.labels]):
                p = np.clip(p, 1e-4, 1 - 1e-4)
                columns.append(np.log(p / (1 - p)) / 4)
        return np.stack(columns, axis=1) if columns else np.zeros((n, 0))

    for number in range(1, args.rounds + 1):
        index = np.array(answered, dtype=np.int64)
        truth_known = np.zeros(n, dtype=bool)
        truth_known[index] = True
        trust = replay_trust.priority(
            variant,
            pool,
            features,
            index,
            audit,
            probability,
            options,
            extra_columns(truth_known),
            args.min_human,
        )
        open_index = np.flatnonzero(open_)
        pool_ece = weighted_ece(trust[open_index], ~wrong[open_index])
        pool_brier = float(((trust[open_index] - ~wrong[open_index]) ** 2).mean())
        estimate = None
        served_ece = (
            weighted_ece(
                np.concatenate([t for t, _, _ in history]),
                np.concatenate([r for _, r, _ in history]),
                np.concatenate([w for _, _, w in history]),
            )
            if history
            else float("nan")
        )
        audited = [i for i, a in zip(answered, audit, strict=True) if a]
        if len(audited) >= args.audit_min_answers:
            at = np.array([t for t, a in zip(trust_at, audit, strict=True) if a])
            pr = np.array([p for p, a in zip(probability, audit, strict=True) if a])
            estimate = audit_estimate(
                at,
                ~wrong[np.array(audited)],
                pr,
                trust[open_index],
                trust[np.array(audited)],
                seed=seed,
            ).as_dict()
        priority = trust.copy()
        if options["diversity"]:
            order = open_index[np.argsort(trust[open_index], kind="stable")]
            front = order[: 20 * per_round]
            cluster = np.full(n, -1)
            cluster[front] = clusters(pool.embeddings[front])
            priority = diversify(trust, [pool.dialogue % 2**31, cluster])
        ranked = [
            int(i) for i in open_index[np.argsort(priority[open_index], kind="stable")]
        ]
        served = 0
        cursor = 0
        found = 0
        while served < per_round and open_.any():
            if rng.random() < options["audit"]:
                choice = int(rng.choice(np.flatnonzero(open_)))
                audit.append(True)
                probability.append(1.0 / open_.sum())
            else:
                while not open_[ranked[cursor]]:
                    cursor += 1
                choice = ranked[cursor]
                audit.append(False)
                probability.append(1.0)
            open_[choice] = False
            answered.append(choice)
            trust_at.append(float(trust[choice]))
            found += int(wrong[choice])
            served += 1
        # What the audits of this round sampled: the pool as it was, with the trust it had
        # (weights: audits drawn / pool size), for the truth the audit's ECE estimates.
        drawn = sum(audit[-served:])
        if drawn:
            history.append(
                (
                    trust[open_index],
                    ~wrong[open_index],
                    np.full(len(open_index), drawn / len(open_index)),
                )
            )
        rows.append(
            {
                "round": number,
                "wrong_found": found,
                "answered": served,
                "pool_ece": pool_ece,
                "served_trust_ece": served_ece,
                "pool_brier": pool_brier,
                "pool_mean_trust": float(trust[open_index].mean()),
                "pool_right": float((~wrong[open_index]).mean()),
                "true_wrong_left": int(wrong[open_index].sum()),
                "audit": estimate,
            }
        )
    total = sum(r["wrong_found"] for r in rows)
    answers = sum(r["answered"] for r in rows)
    return {
        "variant": variant,
        "seed": seed,
        "wrong_found": total,
        "answered": answers,
        "precision": total / answers,
        "lift": total / answers / wrong.mean() if wrong.any() else float("nan"),
        "rounds": rows,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if not args.cache.exists():
        build_cache(args)
    pool = load(args.cache, student_settings(args))
    error = float((pool.labels != pool.gold).mean())
    print(
        f"# {args.task}: {len(pool.gold)} utterances, LLM error {error:.4f}", flush=True
    )
    budget = round(args.budget * len(pool.gold))
    bound = ceiling(pool, budget)
    print(
        f"# with every answer (5-fold by dialogue, one pass), wrong among the {budget} least "
        "trusted: " + ", ".join(f"{k} {v}" for k, v in bound.items()),
        flush=True,
    )
    results = []
    for variant in args.variants:
        runs = [replay(pool, variant, seed, args) for seed in args.seeds]
        results += runs
        found = [r["wrong_found"] for r in runs]
        late = [r2["pool_ece"] for r in runs for r2 in r["rounds"][1:]]
        print(
            f"{variant:28s} found {np.mean(found):6.1f} ({', '.join(map(str, found))}) "
            f"lift {np.mean([r['lift'] for r in runs]):.2f}x  pool ECE r2+ "
            f"{np.mean(late):.3f} (max {np.max(late):.3f})",
            flush=True,
        )
    report = {
        "command": " ".join(["python -m bench.trust_replay", *sys.argv[1:]]),
        "task": args.task,
        "llm_error_rate": error,
        "ceiling": bound,
        "results": results,
        "settings": {k: str(v) for k, v in vars(args).items()},
    }
    write_report(args.out, report)
    return report


if __name__ == "__main__":
    main()
