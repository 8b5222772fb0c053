"""The student on ONNX Runtime matches PyTorch; a failed export falls back."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest

from learner import checkpoint, fast
from learner.data import Example, with_context
from learner.model import Student
from learner.training import predict_with_embeddings


@pytest.fixture
def saved(tiny_config, tmp_path):
    student = Student(tiny_config)
    return checkpoint.save(student, tmp_path / "student", version=1), student


def examples():
    rows = [
        Example("d1", 0, "A", "where is my parcel?"),
        Example(
            "d1", 1, "B", "It left the depot this morning, it should be there soon."
        ),
        Example("d1", 2, "A", "thanks"),
        Example("d2", 0, "", "no speaker and a much longer utterance " * 6),
    ]
    return with_context(rows, 1)


def test_the_tokenizer_gives_the_models_own_inputs(saved):
    directory, student = saved
    fast.export_onnx(directory)
    onnx = fast.OnnxStudent(directory)
    batch = examples()
    theirs = {k: v.numpy() for k, v in student.encode(batch).items()}
    ours = onnx.encode(batch)
    for name in ours:
        assert np.array_equal(ours[name], theirs[name]), name


@pytest.mark.parametrize("quantized", [False, True])
def test_onnx_matches_pytorch(saved, quantized):
    directory, student = saved
    fast.export_onnx(directory)
    batch = examples()
    torch_probs, torch_emb = predict_with_embeddings(student, batch)
    probs, emb = fast.OnnxStudent(directory, quantized=quantized).predict(batch)
    tolerance = 0.05 if quantized else 1e-4
    assert np.abs(probs - torch_probs.numpy()).max() < tolerance
    assert np.abs(emb - torch_emb.numpy()).max() < (0.1 if quantized else 1e-4)
    assert probs.shape == (4, 2) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_a_failed_export_falls_back_with_its_reason_logged(tmp_path, caplog):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "parley.json").write_text('{"format": "parley-student/1"}')
    with caplog.at_level(logging.WARNING, logger="learner.fast"):
        assert fast.ensure_onnx(broken) is None
    assert "PyTorch is used instead" in caplog.text
    assert (broken / "onnx.failed").read_text().startswith("KeyError")
    caplog.clear()
    assert fast.ensure_onnx(broken) is None  # not tried again
    assert caplog.text == ""


def test_ensure_onnx_exports_once(saved):
    directory, _ = saved
    first = fast.ensure_onnx(directory)
    assert first is not None and (first / fast.INT8).is_file()
    stamp = (first / fast.INT8).stat().st_mtime_ns
    assert fast.ensure_onnx(directory) == first
    assert (first / fast.INT8).stat().st_mtime_ns == stamp


def test_predicting_with_onnx_does_not_load_torch(saved):
    directory, _ = saved
    fast.export_onnx(directory)
    code = (
        "import sys; from learner import fast; from learner.data import Example; "
        f"s = fast.OnnxStudent({str(directory)!r}); "
        "p, e = s.predict([Example('d', 0, 'A', 'hi')]); "
        "assert p.shape == (1, 2); assert 'torch' not in sys.modules, 'torch loaded'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_batch_without_padding_and_one_with_much_agree(saved):
    directory, student = saved
    fast.export_onnx(directory)
    onnx = fast.OnnxStudent(directory, quantized=False)
    batch = examples()
    alone = np.concatenate([onnx.predict([ex])[0] for ex in batch])
    together, _ = onnx.predict(batch, batch_size=64)
    assert np.abs(alone - together).max() < 1e-4
