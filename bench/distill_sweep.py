"""Issue 17's sweep of the preference loss on dev: every setting, resumable over sessions.

    python -m bench.distill_sweep --data ../shared/data/dailydialog --out-dir bench/out/sweep \\
        [--task act sentiment] [--seeds 2] [--jobs 2] [--only q1 q2 ...] [--fraction 0 ...]
        [--setting pref kd ...] [--precision bf16|fp32] [--list]
    python -m bench.distill_sweep --out-dir bench/out/sweep --table

Each (task, setting, human fraction F, seed) is one `bench.distill` process (one thread,
`--jobs` at a time) writing `OUT_DIR/<task>-<setting>-F<F>-s<seed>.json`; a run whose file
exists is not run again, so a sweep split over sessions goes on where it stopped (a run cut
off leaves no file). `--table` merges every file into one table per task (`--merge`).

Every run trains on the pool's LLM labels (+ F of its gold labels as human labels) and is
scored on `dev.jsonl`: the product's student (MiniLM-L6, one previous turn, 3 epochs) with
bf16 autocast (docs/distillation.md: the same accuracy as fp32 on a CPU with bf16 units, twice
as fast), no early-stopping split. On a CPU without them bf16 is emulated and about ten times
slower than fp32: `--precision fp32` runs there, into files and table rows of their own
(`<task>-<setting>-fp32-F<F>-s<seed>.json`, "[… fp32]"), never mixed with the bf16 ones.
`--eval-split test` scores on `test.jsonl` instead, for the issue's test table of a setting
that won on dev: again files and rows of their own (`…-test-F<F>-…`, "[… test]").

The settings are the issue's questions (`settings`); q1b's γ, q5's knobs and one q2 row are
taken at the λ_kd that won q1a on both tasks' mean (`--q1-kd 0.1`, the product's default
since), and that λ_kd's row runs at F = 0.05 and 0.2 beside the baselines, and at F = 0.1 beside
two-stage `pref` (where the product switches from one stage to two).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

SWEEP_KD = "1"
"""λ_kd of every `pref` setting that does not sweep it (the base `pref` row included)."""


@dataclass(frozen=True)
class Setting:
    name: str
    question: str
    objective: str
    args: tuple[str, ...] = ()
    fractions: tuple[float, ...] = (0.0,)

    def flags(self) -> tuple[str, ...]:
        """The setting's flags for `bench.distill`. A `pref` setting that names no λ_kd runs
        at the sweep's own `SWEEP_KD`, not at the product's default: every committed run was
        made at λ_kd = 1, and the product's default (0.1 since this sweep) must not silently
        change what a setting of the sweep means."""
        if self.objective != "pref" or "--kd-weight" in self.args:
            return self.args
        return ("--kd-weight", SWEEP_KD, *self.args)


def settings(q1_kd: str) -> list[Setting]:
    """The settings of issue 17, by question."""
    kd = ("--kd-weight", q1_kd)

    def winner_fractions(w: str) -> tuple[float, ...]:
        # the q1 winner (the product's default since) runs beside the baselines at every F,
        # and at F = 0.1 beside two-stage `pref`: the product's two trainings either side of
        # LEARNER_FINETUNE_MIN_HUMAN, where the switch should be
        return (0.0, 0.05, 0.1, 0.2) if w == q1_kd else (0.0,)

    return [
        # baselines (the sentiment LLM labels changed with the emotion→sentiment fix)
        Setting("ce", "base", "ce", fractions=(0.0, 0.05, 0.2)),
        Setting("kd", "base", "kd", fractions=(0.0, 0.05, 0.2)),
        Setting("llmr", "base", "llmr"),
        Setting("pref", "base", "pref", fractions=(0.0, 0.05, 0.2)),
        # q1: does KD drown the ranking? λ_kd at γ = 1, then γ at the best λ_kd
        *(
            Setting(f"kd{w}", "q1", "pref", ("--kd-weight", w), winner_fractions(w))
            for w in ("0", "0.1", "0.3")
        ),
        *(
            Setting(f"kd{q1_kd}-g{g}", "q1b", "pref", (*kd, "--gamma", g))
            for g in ("0.5", "2")
        ),
        # q2: near-ties routed to a pairwise distillation; the margin-MSE pair term
        Setting("ties-kd", "q2", "pref", ("--ties", "kd")),
        Setting("mse", "q2", "pref", ("--form", "mse")),
        Setting(f"kd{q1_kd}-ties-kd", "q2", "pref", (*kd, "--ties", "kd")),
        # q3: class priors (the logit-adjusted loss)
        Setting("la0.5", "q3", "pref", ("--logit-adjust", "0.5")),
        Setting("la1", "q3", "pref", ("--logit-adjust", "1")),
        Setting("kd-la0.5", "q3", "kd", ("--logit-adjust", "0.5")),
        # q4: the paper's regime, pre-training on LLM labels then fine-tuning on human ones
        Setting("pref-2stage", "q4", "pref", ("--two-stage",), (0.05, 0.1, 0.2)),
        Setting("kd-2stage", "q4", "kd", ("--two-stage",), (0.05, 0.2)),
        # … and with the q1 winner's λ_kd in the first stage (the product's, since q1)
        Setting(f"kd{q1_kd}-2stage", "q4", "pref", (*kd, "--two-stage"), (0.05, 0.2)),
        # q5: the remaining knobs, at the q1 winner like q1b (its noise reduction shows only
        # where KD does not force the student to copy the noise)
        *(
            Setting(f"kd{q1_kd}-w{w}", "q5", "pref", (*kd, "--window", w))
            for w in ("2", "4")
        ),
        *(
            Setting(f"kd{q1_kd}-trim{t}", "q5", "pref", (*kd, "--trim", t))
            for t in ("0.1", "0.2")
        ),
        Setting(f"kd{q1_kd}-cross", "q5", "pref", (*kd, "--cross-dialogue")),
    ]


def variant(precision: str = "bf16", split: str = "dev") -> list[str]:
    """What sets a run apart from the sweep's own (bf16, scored on dev): its precision and
    its eval split where they differ, so that such runs never share a file or a table row."""
    return [w for w, default in ((precision, "bf16"), (split, "dev")) if w != default]


def run_file(
    out_dir: Path,
    task: str,
    s: Setting,
    fraction: float,
    seed: int,
    precision: str = "bf16",
    split: str = "dev",
) -> Path:
    name = "-".join([s.name, *variant(precision, split)])
    return out_dir / f"{task}-{name}-F{fraction:g}-s{seed}.json"


def run_tag(s: Setting, precision: str, split: str = "dev") -> str:
    """The run's tag in the table: the setting's name where it is not a bare objective, then
    the precision where it is not bf16 and the split where it is not dev."""
    words = [s.name] if s.name != s.objective else []
    return " ".join([*words, *variant(precision, split)])


def bf16_is_emulated() -> bool:
    """True on a CPU without bf16 units (where `auto` picks fp32)."""
    import torch

    from learner.model import resolve_precision

    return resolve_precision("auto", torch.device("cpu")) != "bf16"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, default=Path("../shared/data/dailydialog"))
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--task", nargs="+", default=["act", "sentiment"])
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--only", nargs="+", help="questions to run (base q1 q1b q2 …)")
    p.add_argument(
        "--fraction",
        nargs="+",
        type=float,
        help="human fractions to run (default: all)",
    )
    p.add_argument(
        "--setting", nargs="+", help="settings to run, in this order (default: all)"
    )
    p.add_argument("--q1-kd", default="1", help="λ_kd for q1b/q2 (the q1 winner)")
    p.add_argument("--epochs", default="3")
    p.add_argument(
        "--precision",
        default="bf16",
        choices=("bf16", "fp32"),
        help="bf16 (the sweep's runs so far) or fp32 (files and rows of their own)",
    )
    p.add_argument(
        "--eval-split",
        default="dev",
        choices=("dev", "test"),
        help="score on DATA/dev.jsonl (the sweep) or test.jsonl (files and rows of their own)",
    )
    p.add_argument("--list", action="store_true", help="print the runs left and stop")
    p.add_argument("--table", action="store_true", help="merge every run into tables")
    args = p.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.table:
        from bench import distill

        distill.main(["--merge", *map(str, sorted(args.out_dir.glob("*.json")))])
        return
    chosen = settings(args.q1_kd)
    if args.setting:
        chosen = sorted(
            (s for s in chosen if s.name in args.setting),
            key=lambda s: args.setting.index(s.name),
        )
    todo = [
        (task, s, fraction, seed)
        for s in chosen
        if not args.only or s.question in args.only
        for task in args.task
        for fraction in s.fractions
        if args.fraction is None or fraction in args.fraction
        for seed in range(args.seeds)
        if not run_file(
            args.out_dir, task, s, fraction, seed, args.precision, args.eval_split
        ).exists()
    ]
    print(f"# {len(todo)} runs left", flush=True)
    if args.list:
        for task, s, fraction, seed in todo:
            print(f"{task} {s.name} F={fraction:g} seed {seed}")
        return
    if todo and args.precision == "bf16" and bf16_is_emulated():
        print(
            "# warning: this CPU has no bf16 units; bf16 is emulated here, about ten times"
            " slower than fp32 (--precision fp32 runs into rows of their own)",
            flush=True,
        )
    with ThreadPoolExecutor(args.jobs) as pool:
        for line in pool.map(lambda r: one_run(args, *r), todo):
            print(line, flush=True)


def one_run(
    args: argparse.Namespace, task: str, s: Setting, fraction: float, seed: int
) -> str:
    out = run_file(
        args.out_dir, task, s, fraction, seed, args.precision, args.eval_split
    )
    partial = out.with_suffix(".part")
    started = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = distill_command(args, task, s, fraction, seed, partial)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return f"FAILED {out.name}: {done.stderr.strip().splitlines()[-1:]}"
    partial.rename(out)
    result = [line for line in done.stdout.splitlines() if line.startswith("  run ")]
    return f"{out.name} ({time.perf_counter() - started:.0f} s): {result[-1].strip()}"


def distill_command(
    args: argparse.Namespace,
    task: str,
    s: Setting,
    fraction: float,
    seed: int,
    out: Path,
) -> list[str]:
    """The `bench.distill` process of one run, writing its result to `out`."""
    tag = run_tag(s, args.precision, args.eval_split)
    return [
        sys.executable,
        "-m",
        "bench.distill",
        *("--train", str(args.data / "pool.jsonl")),
        *("--llm-labels", str(args.data / "llm_labels.jsonl")),
        *("--eval", str(args.data / f"{args.eval_split}.jsonl")),
        *("--task", task, "--objective", s.objective),
        *("--human-fraction", f"{fraction:g}"),
        *("--seeds", "1", "--first-seed", str(seed)),
        *("--epochs", args.epochs, "--precision", args.precision),
        *("--val-fraction", "0"),
        *s.flags(),
        *(("--tag", tag) if tag else ()),
        *("--out", str(out)),
    ]


if __name__ == "__main__":
    main()
