"""bench.retrain times one retrain and rescoring on its own embedded database."""

from __future__ import annotations

import subprocess
import sys

from tests.processes import embedded_env


def test_one_retrain_and_rescoring_is_timed(files, tiny_backbone):
    pool, labels = files
    env = embedded_env()
    out = subprocess.run(
        [
            sys.executable, "-m", "bench.retrain", "--pool", str(pool),
            "--llm-labels", str(labels), "--answers", "8", "--epochs", "1",
            "--backbone", tiny_backbone, "--inference", "onnx-int8",
        ],
        capture_output=True, text=True, env=env, timeout=240,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "32 utterances, 8 answers, 1 epochs fp32, scoring on onnx-int8" in out.stdout
