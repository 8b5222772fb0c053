"""The distillation benchmark's readers and CLI, on small files in the DailyDialog format."""

from __future__ import annotations

import json

import pytest

from bench import dailydialog as dd
from bench import distill


def test_a_verbalised_emotion_answer_becomes_a_sentiment_distribution():
    dist = dd.llm_distribution("sentiment", "happiness", 0.7)
    # happiness → positive at 0.7; the rest shared by the other two sentiments alike (not
    # by emotions, which would give "negative", four emotions, twice "positive"'s share)
    assert dict(zip(dd.LABELS["sentiment"], dist, strict=True)) == pytest.approx(
        {"neutral": 0.15, "positive": 0.7, "negative": 0.15}
    )
    dist = dd.llm_distribution("sentiment", "no_emotion", 0.6)
    assert dict(zip(dd.LABELS["sentiment"], dist, strict=True)) == pytest.approx(
        {"neutral": 0.6, "positive": 0.2, "negative": 0.2}
    )
    assert dd.llm_distribution("act", "question", 0.7) == pytest.approx(
        [0.1, 0.7, 0.1, 0.1]
    )


def test_human_labels_are_revealed_by_whole_dialogues(files):
    pool = dd.read_dialogues(files[0])
    chosen = dd.reveal_human(pool, 0.25, seed=0)
    assert len(chosen) == 2  # 8 of 32 utterances = two 4-turn dialogues
    assert dd.reveal_human(pool, 0.25, seed=0) == chosen
    examples = dd.examples(
        pool, "act", llm=dd.read_llm_labels(files[1], "act"), human_dialogues=chosen
    )
    assert sum(ex.human is not None for ex in examples) == 8
    assert all(len(ex.llm) == 3 for ex in examples)


def test_the_teacher_is_the_majority_over_prompts(files):
    pool = dd.read_dialogues(files[0])
    llm = dd.read_llm_labels(files[1], "act")
    teacher = dd.teacher_majority(pool, llm, "act")
    assert teacher == dd.gold_indices(
        pool, "act"
    )  # one wrong prompt out of three is outvoted


def test_a_malformed_line_names_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "turns": [{"speaker": "A"}]}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1"):
        dd.read_dialogues(bad)


def test_the_cli_prints_a_row_per_objective_and_writes_every_run(
    files, tiny_backbone, tmp_path, capsys
):
    pool, labels = files
    out = tmp_path / "results.json"
    report = distill.main(
        [
            "--train",
            str(pool),
            "--llm-labels",
            str(labels),
            "--eval",
            str(pool),
            "--task",
            "sentiment",
            "--objective",
            "kd",
            "pref",
            "--human-fraction",
            "0",
            "0.25",
            "--seeds",
            "2",
            "--backbone",
            tiny_backbone,
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert (
        "teacher (LLM majority over prompts) on the training pool: accuracy 1.0000"
        in printed
    )
    assert sum(line.startswith("| sentiment |") for line in printed.splitlines()) == 4
    saved = json.loads(out.read_text())
    assert len(saved["runs"]) == 8 and saved["summary"] == report["summary"]
    assert {r["seed"] for r in saved["runs"]} == {0, 1}
    run = saved["runs"][0]
    assert sum(map(sum, run["confusion"])) == sum(
        c["predicted"] for c in run["per_class"].values()
    )


def test_the_class_table_says_where_macro_f1_comes_from(capsys):
    def run(setting, seed, per_class):
        return {"human_fraction": 0.0, "setting": setting, "seed": seed} | {
            "per_class": {
                name: dict(zip(("precision", "recall", "support"), c, strict=True))
                for name, c in per_class.items()
            }
        }

    # an older run without "predicted": neutral 90 of 100 right out of 95 predicted,
    # positive 3 of 4 out of 3, negative never right: 106 − 95 − 3 = 8 predicted
    old = run("kd", 0, {"neutral": (90 / 95, 0.9, 100), "positive": (1.0, 0.75, 4)})
    old["per_class"]["negative"] = {"precision": 0.0, "recall": 0.0, "support": 2}
    assert distill.class_counts(old) == {
        "neutral": (95, 90, 100),
        "positive": (3, 3, 4),
        "negative": (8, 0, 2),
    }
    new = run("kd", 1, {"neutral": (0.9, 0.9, 100), "positive": (1.0, 0.25, 4)})
    new["per_class"]["negative"] = {"precision": 0, "recall": 0, "support": 2}
    for c, predicted in zip(new["per_class"].values(), (99, 1, 6), strict=True):
        c["predicted"] = predicted
    distill.class_table("sentiment", [old, new])
    printed = capsys.readouterr().out
    assert "| setting | human F | neutral | positive | negative |" in printed
    assert "| kd | 0 | 97 / 90 of 100 | 2 / 2 of 4 | 7 / 0 of 2 |" in printed


def act_run(pool, labels, backbone, objective):
    """A one-epoch CPU run of `objective` on the act task of the small files."""
    return [
        *("--train", str(pool), "--llm-labels", str(labels), "--eval", str(pool)),
        *("--task", "act", "--objective", objective, "--backbone", backbone),
        *("--epochs", "1", "--device", "cpu"),
    ]


def test_seeds_split_over_processes_merge_into_the_same_table(
    files, tiny_backbone, tmp_path, capsys
):
    pool, labels = files
    common = act_run(pool, labels, tiny_backbone, "ce")
    whole = distill.main(
        [*common, "--seeds", "2", "--out", str(tmp_path / "whole.json")]
    )
    for seed in (0, 1):
        distill.main(
            [
                *common,
                "--seeds",
                "1",
                "--first-seed",
                str(seed),
                "--out",
                str(tmp_path / f"seed{seed}.json"),
            ]
        )
    capsys.readouterr()
    merged = distill.main(
        ["--merge", str(tmp_path / "seed1.json"), str(tmp_path / "seed0.json")]
    )
    printed = capsys.readouterr().out
    (row,) = merged["tables"]["act"]
    (expected,) = whole["summary"]
    assert row["seeds"] == [0, 1]
    for key in ("accuracy", "macro_f1", "ece"):
        assert row[key] == pytest.approx(expected[key])
        assert row[f"{key}_std"] == pytest.approx(expected[f"{key}_std"])
    assert (
        sum(line.startswith("| act | ce | 0 |") for line in printed.splitlines()) == 1
    )
    with pytest.raises(SystemExit, match="also in"):
        distill.main(
            ["--merge", str(tmp_path / "seed0.json"), str(tmp_path / "whole.json")]
        )


def test_tagged_settings_of_one_objective_are_rows_of_their_own(
    files, tiny_backbone, tmp_path, capsys
):
    pool, labels = files
    common = [*act_run(pool, labels, tiny_backbone, "pref"), "--seeds", "1"]
    distill.main([*common, "--out", str(tmp_path / "default.json")])
    distill.main(
        [
            *common,
            *("--kd-weight", "0.3", "--form", "mse", "--ties", "kd"),
            *("--logit-adjust", "1", "--tag", "λkd=0.3 mse"),
            *("--out", str(tmp_path / "variant.json")),
        ]
    )
    capsys.readouterr()
    merged = distill.main(
        ["--merge", str(tmp_path / "default.json"), str(tmp_path / "variant.json")]
    )
    printed = capsys.readouterr().out
    assert [row["setting"] for row in merged["tables"]["act"]] == [
        "pref",
        "pref [λkd=0.3 mse]",
    ]
    assert "| act | pref [λkd=0.3 mse] | 0 |" in printed
    saved = json.loads((tmp_path / "variant.json").read_text())
    assert saved["training"]["form"] == "mse" and saved["training"]["ties"] == "kd"


def test_the_sweep_runs_only_what_has_no_result_yet(tmp_path, capsys):
    from bench import distill_sweep

    distill_sweep.main(
        ["--out-dir", str(tmp_path), "--task", "act", "--only", "q1", "--list"]
    )
    listed = capsys.readouterr().out.splitlines()
    assert listed[0] == "# 6 runs left"  # λ_kd 0, 0.1, 0.3 × 2 seeds
    assert "act kd0.3 F=0 seed 1" in listed
    (tmp_path / "act-kd0.3-F0-s1.json").write_text("{}")
    (tmp_path / "act-kd0-F0-s0.part").write_text("")  # a run cut off counts as not run
    distill_sweep.main(
        ["--out-dir", str(tmp_path), "--task", "act", "--only", "q1", "--list"]
    )
    listed = capsys.readouterr().out.splitlines()
    assert listed[0] == "# 5 runs left"
    assert "act kd0.3 F=0 seed 1" not in listed and "act kd0 F=0 seed 0" in listed


def test_the_sweep_can_run_one_human_fraction_first(tmp_path, capsys):
    from bench import distill_sweep

    distill_sweep.main(
        ["--out-dir", str(tmp_path), "--task", "act", "--only", "base", "--list"]
    )
    assert capsys.readouterr().out.splitlines()[0] == "# 20 runs left"
    distill_sweep.main(
        ["--out-dir", str(tmp_path), "--task", "act", "--only", "base"]
        + ["--fraction", "0", "--list"]
    )
    listed = capsys.readouterr().out.splitlines()
    assert listed[0] == "# 8 runs left"  # ce, kd, llmr, pref at F = 0 × 2 seeds
    assert all(" F=0 " in line for line in listed[1:])
    distill_sweep.main(
        ["--out-dir", str(tmp_path), "--task", "act", "--fraction", "0"]
        + ["--setting", "pref", "kd", "--list"]
    )
    listed = capsys.readouterr().out.splitlines()
    assert listed == [
        "# 4 runs left",
        "act pref F=0 seed 0",
        "act pref F=0 seed 1",
        "act kd F=0 seed 0",
        "act kd F=0 seed 1",
    ]


def test_fp32_sweep_runs_keep_files_and_rows_of_their_own(tmp_path, capsys):
    from bench import distill_sweep

    (tmp_path / "act-pref-F0-s0.json").write_text("{}")  # a bf16 run
    distill_sweep.main(
        ["--out-dir", str(tmp_path), "--task", "act", "--fraction", "0"]
        + ["--setting", "pref", "la0.5", "--precision", "fp32", "--list"]
    )
    listed = capsys.readouterr().out.splitlines()
    assert listed[0] == "# 4 runs left"  # the bf16 file does not stand for fp32
    settings = {s.name: s for s in distill_sweep.settings("1")}
    pref, adjusted = settings["pref"], settings["la0.5"]
    assert distill_sweep.run_file(tmp_path, "act", pref, 0.0, 1, "fp32").name == (
        "act-pref-fp32-F0-s1.json"
    )
    assert distill_sweep.run_file(tmp_path, "act", pref, 0.05, 1).name == (
        "act-pref-F0.05-s1.json"
    )
    # the table's rows: "pref [fp32]", "pref [la0.5 fp32]"; bf16 keeps "pref", "pref [la0.5]"
    assert distill_sweep.run_tag(pref, "fp32") == "fp32"
    assert distill_sweep.run_tag(adjusted, "fp32") == "la0.5 fp32"
    assert distill_sweep.run_tag(pref, "bf16") == ""
    assert distill_sweep.run_tag(adjusted, "bf16") == "la0.5"


def test_a_test_split_rerun_keeps_files_and_rows_of_its_own(tmp_path, capsys):
    import argparse

    from bench import distill_sweep

    (tmp_path / "act-kd0.1-F0-s0.json").write_text("{}")  # the dev run
    distill_sweep.main(
        ["--out-dir", str(tmp_path), "--task", "act", "--q1-kd", "0.1"]
        + ["--setting", "kd0.1", "--eval-split", "test", "--seeds", "3", "--list"]
    )
    listed = capsys.readouterr().out.splitlines()
    # F 0, 0.05, 0.1, 0.2 × 3 seeds; the dev run stands for none of them
    assert listed[0] == "# 12 runs left"
    winner = {s.name: s for s in distill_sweep.settings("0.1")}["kd0.1"]
    named = distill_sweep.run_file(tmp_path, "act", winner, 0.2, 2, "bf16", "test")
    assert named.name == "act-kd0.1-test-F0.2-s2.json"
    assert distill_sweep.run_tag(winner, "fp32", "test") == "kd0.1 fp32 test"
    args = argparse.Namespace(
        data=tmp_path, precision="bf16", eval_split="test", epochs="3"
    )
    command = distill_sweep.distill_command(args, "act", winner, 0.2, 2, named)
    flags = dict(zip(command[3::2], command[4::2], strict=True))
    assert flags["--eval"] == str(tmp_path / "test.jsonl")
    assert flags["--train"] == str(tmp_path / "pool.jsonl")
    assert flags["--first-seed"] == "2" and flags["--kd-weight"] == "0.1"
    assert flags["--tag"] == "kd0.1 test" and flags["--out"] == str(named)


def test_sweep_settings_keep_their_lambda_kd_whatever_the_product_default():
    from bench import distill_sweep

    settings = {s.name: s for s in distill_sweep.settings("0.1")}
    # The committed runs were made at λ_kd = 1; the product's default moved to 0.1.
    assert settings["pref"].flags() == ("--kd-weight", "1")
    assert settings["la0.5"].flags() == ("--kd-weight", "1", "--logit-adjust", "0.5")
    assert settings["pref-2stage"].flags() == ("--kd-weight", "1", "--two-stage")
    assert settings["kd0.3"].flags() == ("--kd-weight", "0.3")
    assert settings["kd0.1-g2"].flags() == ("--kd-weight", "0.1", "--gamma", "2")
    assert settings["kd"].flags() == () and settings["kd-la0.5"].flags() == (
        "--logit-adjust",
        "0.5",
    )


def test_q5_runs_at_the_q1_winner_which_also_runs_at_every_human_fraction(
    tmp_path, capsys
):
    from bench import distill_sweep

    settings = {s.name: s for s in distill_sweep.settings("0.1")}
    assert settings["kd0.1-w2"].flags() == ("--kd-weight", "0.1", "--window", "2")
    assert settings["kd0.1-trim0.2"].flags() == ("--kd-weight", "0.1", "--trim", "0.2")
    assert settings["kd0.1-cross"].flags() == ("--kd-weight", "0.1", "--cross-dialogue")
    assert settings["kd0.1"].fractions == (0.0, 0.05, 0.1, 0.2)
    assert settings["kd0.3"].fractions == (0.0,)
    distill_sweep.main(
        ["--out-dir", str(tmp_path), "--task", "act", "--q1-kd", "0.1"]
        + ["--only", "q5", "--list"]
    )
    listed = capsys.readouterr().out.splitlines()
    assert listed[0] == "# 10 runs left"  # W 2, 4, trim 0.1, 0.2, cross × 2 seeds
    assert "act kd0.1-cross F=0 seed 1" in listed


def test_q4_also_runs_two_stage_pref_at_the_q1_winners_kd_weight():
    from bench import distill_sweep

    settings = {s.name: s for s in distill_sweep.settings("0.1")}
    two_stage = settings["kd0.1-2stage"]
    assert two_stage.question == "q4" and two_stage.fractions == (0.05, 0.2)
    assert two_stage.flags() == ("--kd-weight", "0.1", "--two-stage")
    # the committed q4 rows keep their meaning: `pref-2stage` is still λ_kd 1
    assert settings["pref-2stage"].flags() == ("--kd-weight", "1", "--two-stage")
    # where the product switches from one stage to two: both of its trainings at F = 0.1
    assert settings["pref-2stage"].fractions == (0.05, 0.1, 0.2)
    assert settings["kd-2stage"].fractions == (0.05, 0.2)
