"""The active-loop simulation runs Parley's own queue and training code (tiny student)."""

from __future__ import annotations

import pytest

from bench import active_loop
from tests.processes import embedded_env


@pytest.mark.parametrize("strategy", active_loop.STRATEGIES)
def test_every_strategy_runs_rounds_and_reports_them(
    strategy, files, tiny_backbone, settings, db, capsys
):
    pool, labels = files
    settings.LEARNER_BACKBONE = tiny_backbone
    settings.LEARNER_EPOCHS = 1
    settings.LEARNER_DEVICE = "cpu"
    settings.PARLEY_OVERLAP_FRACTION = 0.0
    settings.PARLEY_RETRAIN_EVERY = 10**9
    args = active_loop.parse_args(
        [
            "--pool",
            str(pool),
            "--llm-labels",
            str(labels),
            "--eval",
            str(pool),
            "--budget",
            "0.5",
            "--rounds",
            "2",
            "--strategy",
            strategy,
        ]
    )
    report = active_loop.simulate(args)
    assert [r["round"] for r in report["rounds"]] == [1, 2]
    assert all(
        r["answered"] == 8 for r in report["rounds"]
    )  # 0.5 × 32 utterances / 2 rounds
    # the one wrong prompt (P2 on dialogue 0) is outvoted: the ensemble makes no error here
    assert report["llm_error_rate"] == 0.0
    assert report["rounds"][-1]["pool_accuracy"] == 1.0
    assert "round 2: answered 8" in capsys.readouterr().out


def test_the_command_runs_on_its_own_embedded_database(files, tiny_backbone, tmp_path):
    import subprocess
    import sys

    pool, labels = files
    env = embedded_env()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.active_loop",
            "--pool",
            str(pool),
            "--llm-labels",
            str(labels),
            "--eval",
            str(pool),
            "--budget",
            "0.25",
            "--rounds",
            "1",
            "--epochs",
            "1",
            "--backbone",
            tiny_backbone,
            "--out",
            str(tmp_path / "loop.json"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "round 1: answered 8" in out.stdout


def test_the_loop_table_has_a_row_per_run(tmp_path, capsys):
    import json

    from bench import reports

    def round_(found, ece, accuracy):
        return {
            "answered": 10,
            "wrong_found": found,
            "pool_ece": ece,
            "student_accuracy": accuracy,
            "audits_served": 1,
        }

    report = {
        "task": "act",
        "strategy": "trust",
        "llm_error_rate": 0.2,
        "settings": {"seed": "3"},
        "rounds": [
            round_(6, 0.3, 0.5),
            round_(5, 0.05, 0.6),
            round_(3, 0.1, 0.7),
        ],
    }
    path = tmp_path / "run.json"
    path.write_text(json.dumps(report))
    report["strategy"], report["rounds"] = "random", [round_(2, float("nan"), None)]
    (tmp_path / "random.json").write_text(json.dumps(report))
    report["settings"]["epochs"] = "3"
    (tmp_path / "random-e3.json").write_text(json.dumps(report))
    reports.main(
        [
            "loop",
            str(path),
            str(tmp_path / "random.json"),
            str(tmp_path / "random-e3.json"),
        ]
    )
    out = capsys.readouterr().out.splitlines()
    # 14 of 30 answers at a 20 % error rate: lift 2.33; round 1's ECE is not in the range
    assert out[2] == (
        "| act | `trust` | 3 | 6, 5, 3 | **14** / 30 | 2.33× | 0.050–0.100 | 0.7000 | 3 |"
    )
    assert out[3] == "| act | `random` | 3 | 2 | **2** / 10 | 1.00× | – | – | 1 |"
    assert out[4].startswith("| act | `random`, 3 epochs | 3 | 2 |")
