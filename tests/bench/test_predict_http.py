"""bench.predict_http on a tiny student: gunicorn answers single and batched predictions."""

from __future__ import annotations

import subprocess
import sys

from learner import checkpoint
from learner.model import Student, StudentConfig
from tests.processes import embedded_env


def test_the_benchmark_measures_single_and_batched_predictions(tiny_backbone, tmp_path):
    student = Student(
        StudentConfig(
            labels=["question", "inform"], backbone=tiny_backbone, max_length=32
        )
    )
    saved = checkpoint.save(student, tmp_path / "student", version=1)
    env = embedded_env()
    out = subprocess.run(
        [
            sys.executable, "-m", "bench.predict_http", "--checkpoint", str(saved),
            "--single", "5", "--warmup", "1", "--batch", "4", "--batches", "2",
            "--workers", "1",
        ],
        capture_output=True, text=True, env=env, timeout=240,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "single utterance: server p50" in out.stdout
    assert "batches of 4 from 1 clients" in out.stdout
    assert (saved / "onnx" / "model.int8.onnx").is_file()
