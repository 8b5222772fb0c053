"""The LLM budget benchmark runs Parley's own import, training and LLM-run code (tiny student)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.processes import embedded_env


def test_the_budget_command_counts_calls_and_scores_both_sources(
    files, tiny_backbone, tmp_path
):
    pool, labels = files
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.budget",
            *("--pool", str(pool), "--llm-labels", str(labels), "--task", "act"),
            *("--human", "0.5", "--min-answers", "2", "--epochs", "1"),
            *("--backbone", tiny_backbone, "--out", str(tmp_path / "budget.json")),
        ],
        capture_output=True,
        text=True,
        env=embedded_env(),
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tmp_path / "budget.json").read_text())
    # one call per prompt (3) for each utterance of half B the student did not label
    asked = report["utterances"] - report["student_labelled"]
    assert report["llm_calls"] == 3 * asked
    assert report["llm_calls_all"] == 3 * report["utterances"]
    # the prompts' majority is right on every utterance of this toy pool
    assert report["accuracy_all_llm"] == 1.0 and report["macro_f1_all_llm"] == 1.0
    assert 0.0 <= report["macro_f1_budget"] <= 1.0
    assert "macro-F1" in out.stdout
