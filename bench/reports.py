"""Tables for docs/active-loop.md from saved benchmark reports.

    python -m bench.reports loop docs/active-loop/loop-act-*.json
    python -m bench.reports coverage docs/active-loop/replay-*.json

`loop`: one row per `bench.active_loop` run (its epochs named where they are not 1) — the
wrong LLM labels found in each round (audits included), all of them against the answers, the
lift over the pool's LLM error rate, the range of the trust's ECE over the unanswered pool
against gold from round 2 on, the student's dev accuracy after the last round (– for the
strategies that never train it) and the audits served.

`coverage`: per `bench.trust_replay` report, how often the audit's 95 % intervals held the
truth over the rounds of `trust` with at least 10 audit answers: the wrong labels left, and
the ECE of the served trust over the pools the audits drew from.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any


def _number(value: Any) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def loop_row(report: dict[str, Any]) -> str:
    rounds = report["rounds"]
    found = [r["wrong_found"] for r in rounds]
    answered = sum(r["answered"] for r in rounds)
    lift = sum(found) / answered / report["llm_error_rate"]
    eces = [e for r in rounds[1:] if (e := _number(r["pool_ece"])) is not None]
    ece = f"{min(eces):.3f}–{max(eces):.3f}" if eces else "–"
    accuracy = _number(rounds[-1]["student_accuracy"])
    strategy = f"`{report['strategy']}`"
    epochs = report["settings"].get("epochs", "1")
    if epochs != "1":  # the table's runs are at 1 epoch unless it says so
        strategy += f", {epochs} epochs"
    return (
        f"| {report['task']} | {strategy} | {report['settings']['seed']} "
        f"| {', '.join(map(str, found))} | **{sum(found)}** / {answered} | {lift:.2f}× "
        f"| {ece} | {'–' if accuracy is None else f'{accuracy:.4f}'} "
        f"| {sum(r['audits_served'] for r in rounds)} |"
    )


def loop_table(paths: list[Path]) -> None:
    print(
        "| task | strategy | seed | wrong found per round | all | lift "
        "| pool ECE, rounds 2–5 | dev acc. (last) | audits |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for path in paths:
        print(loop_row(json.loads(path.read_text())))


def coverage(paths: list[Path], variant: str = "trust", min_answers: int = 10) -> None:
    """How often the audit's 95 % intervals held the truth, over the rounds of `variant` with
    at least `min_answers` audit answers in replay reports (docs/active-loop.md's table):
    the wrong labels left, and the ECE of the served trust over the pools the audits drew
    from."""
    print(
        "| report | rounds | wrong left covered | ECE covered | median width (wrong left) |"
    )
    print("|---|---|---|---|---|")
    for path in paths:
        rounds = [
            r
            for run in json.loads(path.read_text())["results"]
            if run["variant"] == variant
            for r in run["rounds"]
            if r["audit"] and r["audit"]["answers"] >= min_answers
        ]
        if not rounds:
            print(f"| {path.name} | 0 | | | |")
            continue

        def covered(r: dict[str, Any], key: str, truth: str) -> bool:
            return bool(r["audit"][key]["low"] <= r[truth] <= r["audit"][key]["high"])

        width = statistics.median(
            r["audit"]["wrong_left"]["high"] - r["audit"]["wrong_left"]["low"]
            for r in rounds
        )
        print(
            f"| {path.name} | {len(rounds)} "
            f"| {sum(covered(r, 'wrong_left', 'true_wrong_left') for r in rounds)} "
            f"| {sum(covered(r, 'ece', 'served_trust_ece') for r in rounds)} | {width:.0f} |"
        )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    tables = {"loop": loop_table, "coverage": coverage}
    if not argv or argv[0] not in tables:
        raise SystemExit(
            "usage: python -m bench.reports {loop,coverage} REPORT.json ..."
        )
    tables[argv[0]]([Path(a) for a in argv[1:]])


if __name__ == "__main__":
    main()
