"""bench.inference on a tiny student: every backend measured, ONNX level with torch."""

from __future__ import annotations

from bench import inference


def test_every_backend_is_measured_against_torch(
    files, tiny_backbone, tmp_path, capsys
):
    pool, labels = files
    report = inference.main(
        [
            "--train", str(pool), "--llm-labels", str(labels), "--eval", str(pool),
            "--task", "act", "--backbone", tiny_backbone, "--precision", "fp32",
            "--save", str(tmp_path / "student"), "--repeats", "1", "--single", "5",
            "--out", str(tmp_path / "out.json"),
        ]
    )  # fmt: skip
    rows = report["backends"]
    assert list(rows) == ["torch fp32", "onnx fp32", "onnx int8"]
    assert rows["torch fp32"]["probability_diff_max"] == 0.0
    assert rows["onnx fp32"]["probability_diff_max"] < 1e-4
    assert rows["onnx int8"]["probability_diff_max"] < 0.05
    assert all(r["utterances_per_s"] > 0 for r in rows.values())
    assert "onnx int8" in capsys.readouterr().out
    assert (tmp_path / "student" / "onnx" / "model.int8.onnx").is_file()
