"""The trust replay: the queue's ranking replayed over cached student signals."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from bench import reports, trust_replay


def systematic_pool(n=1500, seed=0):
    """An LLM confident everywhere and wrong on 60 % of its "2" labels; its third prompt is not
    fooled. The LLM's confidence cannot tell; the answers can."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 3, n)
    fooled = (gold == 1) & (rng.uniform(size=n) < 0.6)
    labels = np.where(fooled, 2, gold)
    soft = np.full((n, 3), 0.05)
    soft[np.arange(n), labels] = 0.9
    votes = np.stack([labels, labels, np.where(fooled, 1, labels)], axis=1)
    student = soft.copy()
    embeddings = rng.normal(size=(n, 8))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    return trust_replay.Pool(
        soft=soft,
        agreement=np.where(fooled, 0.6, 0.9),
        votes=votes,
        student=student,
        embeddings=embeddings.astype(np.float32),
        gold=gold,
        dialogue=np.arange(n) // 8,
    )


def args(**overrides):
    base = {
        "budget": 0.1,
        "rounds": 5,
        "audit_fraction": 0.1,
        "min_human": 50,
        "audit_min_answers": 10,
    }
    return argparse.Namespace(**{**base, **overrides})


def test_the_verifier_learns_the_llms_systematic_errors_round_by_round():
    pool = systematic_pool()
    llm = trust_replay.replay(pool, "llm_confidence-noaudit", 0, args())
    trust = trust_replay.replay(pool, "trust-noaudit", 0, args())
    assert llm["answered"] == trust["answered"] == 150
    # round 1 has no answers: both rank by the LLM's view; then the verifier finds the class
    assert trust["rounds"][0]["wrong_found"] <= 30
    assert sum(r["wrong_found"] for r in trust["rounds"][1:]) >= 100
    assert trust["wrong_found"] > 2 * llm["wrong_found"]


def test_the_pool_knows_each_utterances_previous_llm_label():
    pool = trust_replay.Pool(
        soft=np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]),
        agreement=np.ones(4),
        votes=np.zeros((4, 1), dtype=np.int64),
        student=np.full((4, 2), 0.5),
        embeddings=np.zeros((4, 2), dtype=np.float32),
        gold=np.zeros(4, dtype=np.int64),
        dialogue=np.array(
            [7, 7, 7, 9]
        ),  # the cache keeps each dialogue's turns in a row
    )
    assert pool.previous.tolist() == [-1, 0, 1, -1]


def test_the_audit_share_is_drawn_and_estimated():
    pool = systematic_pool()
    run = trust_replay.replay(pool, "trust", 0, args(audit_fraction=0.3))
    assert run["answered"] == 150
    estimates = [r["audit"] for r in run["rounds"] if r["audit"]]
    assert estimates, "30 % of 150 answers reach the 10 the estimate needs"
    last = estimates[-1]
    assert last["answers"] >= 10
    assert last["wrong_left"]["low"] <= last["wrong_left"]["value"]
    assert last["wrong_left"]["value"] <= last["wrong_left"]["high"]


def test_the_cli_trains_the_students_once_and_replays_from_the_cache(
    files, tiny_backbone, tmp_path, monkeypatch, capsys
):
    pool, labels = files
    cache = tmp_path / "cache.npz"
    argv = [
        "--pool", str(pool), "--llm-labels", str(labels), "--task", "act",
        "--cache", str(cache), "--seeds", "0", "--precision", "fp32",
        "--backbone", tiny_backbone,
        "--variants", "llm_confidence", "trust", "--min-human", "4",
        "--budget", "0.5", "--rounds", "2", "--out", str(tmp_path / "out.json"),
    ]  # fmt: skip
    report = trust_replay.main(argv)
    assert cache.exists()
    assert [r["variant"] for r in report["results"]] == ["llm_confidence", "trust"]
    assert all(r["answered"] == 16 for r in report["results"])
    assert "trust" in capsys.readouterr().out
    cached = trust_replay.load(cache)
    assert cached.student.shape == (32, 4) and cached.embeddings.shape[0] == 32
    # a second run reads the cache: no training
    monkeypatch.setattr(trust_replay, "build_cache", lambda _: 1 / 0)
    trust_replay.main(argv)
    saved = json.loads((tmp_path / "out.json").read_text())
    assert saved["settings"]["kd_weight"] == "0.1"  # the product's λ_kd by default
    # students trained otherwise are not read as these ones
    with pytest.raises(SystemExit, match=r"built with .*\"kd_weight\": 0.1"):
        trust_replay.main([*argv, "--kd-weight", "1"])
    for other in (["--epochs", "2"], ["--student-seed", "1"]):
        with pytest.raises(SystemExit, match="built with"):
            trust_replay.main([*argv, *other])
    np.savez_compressed(old := tmp_path / "old.npz", soft=cached.soft)
    with pytest.raises(SystemExit, match="built with not recorded"):
        trust_replay.main([*argv[: argv.index("--cache")], "--cache", str(old)])


def test_coverage_counts_the_rounds_whose_audit_interval_holds_the_truth(
    tmp_path, capsys
):
    def round_(answers, wrong_left, ece, truth_left, truth_ece):
        return {
            "true_wrong_left": truth_left,
            "served_trust_ece": truth_ece,
            "audit": {
                "answers": answers,
                "wrong_left": dict(zip(("low", "high"), wrong_left, strict=True)),
                "ece": dict(zip(("low", "high"), ece, strict=True)),
            },
        }

    report = {
        "results": [
            {
                "variant": "trust",
                "rounds": [
                    {"audit": None},
                    round_(5, (0, 10), (0, 1), 50, 0.5),  # too few answers: not counted
                    round_(10, (100, 300), (0.0, 0.1), 200, 0.2),  # left in, ECE out
                    round_(12, (100, 500), (0.1, 0.3), 600, 0.2),  # left out, ECE in
                ],
            },
            {"variant": "llm_confidence", "rounds": [round_(30, (0, 1), (0, 1), 5, 5)]},
        ]
    }
    path = tmp_path / "replay.json"
    path.write_text(json.dumps(report))
    reports.main(["coverage", str(path)])
    assert "| replay.json | 2 | 1 | 1 | 300 |" in capsys.readouterr().out
