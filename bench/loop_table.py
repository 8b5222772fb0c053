"""The per-run table of docs/active-loop.md from `bench.active_loop --out` files.

    python -m bench.loop_table docs/active-loop/loop-act-*.json

One row per run: the wrong LLM labels found in each round (audits included), all of them
against the answers, the lift over the pool's LLM error rate, the range of the trust's ECE
over the unanswered pool against gold from round 2 on, the student's dev accuracy after the
last round (– for the strategies that never train it) and the audits served.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any


def _number(value: Any) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def row(report: dict[str, Any]) -> str:
    rounds = report["rounds"]
    found = [r["wrong_found"] for r in rounds]
    answered = sum(r["answered"] for r in rounds)
    lift = sum(found) / answered / report["llm_error_rate"]
    eces = [e for r in rounds[1:] if (e := _number(r["pool_ece"])) is not None]
    ece = f"{min(eces):.3f}–{max(eces):.3f}" if eces else "–"
    accuracy = _number(rounds[-1]["student_accuracy"])
    return (
        f"| {report['task']} | `{report['strategy']}` | {report['settings']['seed']} "
        f"| {', '.join(map(str, found))} | **{sum(found)}** / {answered} | {lift:.2f}× "
        f"| {ece} | {'–' if accuracy is None else f'{accuracy:.4f}'} "
        f"| {sum(r['audits_served'] for r in rounds)} |"
    )


def main(argv: list[str] | None = None) -> None:
    paths = sys.argv[1:] if argv is None else argv
    print(
        "| task | strategy | seed | wrong found per round | all | lift "
        "| pool ECE, rounds 2–5 | dev acc. (last) | audits |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for path in paths:
        print(row(json.loads(Path(path).read_text())))


if __name__ == "__main__":
    main()
