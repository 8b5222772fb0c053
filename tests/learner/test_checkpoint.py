from __future__ import annotations

import json

import pytest
import torch

from learner import checkpoint
from learner.model import Student
from learner.training import predict_proba


def test_a_saved_student_loads_back_with_the_same_predictions(
    tmp_path, tiny_config, toy_dialogues
):
    student = Student(tiny_config)
    checkpoint.save(
        student,
        tmp_path / "v1",
        version=1,
        metrics={"accuracy": 0.5},
        training={"objective": "pref"},
    )
    loaded, record = checkpoint.load(tmp_path / "v1", device="cpu")
    assert torch.allclose(
        predict_proba(student, toy_dialogues),
        predict_proba(loaded, toy_dialogues),
        atol=1e-6,
    )
    assert record["version"] == 1 and record["labels"] == ["question", "inform"]
    assert record["metrics"] == {"accuracy": 0.5} and record["training"] == {
        "objective": "pref"
    }
    assert loaded.config.context_turns == tiny_config.context_turns


def test_hugging_face_loads_the_checkpoint_on_its_own(
    tmp_path, tiny_config, toy_dialogues
):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    student = Student(tiny_config).eval()
    checkpoint.save(student, tmp_path / "v1", version=1)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "v1").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "v1")
    assert model.config.id2label == {0: "question", 1: "inform"}
    first, second = student.input_texts(toy_dialogues[3])
    with torch.no_grad():
        theirs = model(**tokenizer(first, second, return_tensors="pt")).logits
        ours = student(**student.encode([toy_dialogues[3]]))
    assert torch.allclose(theirs, ours, atol=1e-5)


def test_saving_over_a_checkpoint_replaces_it_whole(tmp_path, tiny_config):
    student = Student(tiny_config)
    checkpoint.save(student, tmp_path / "active", version=1)
    (tmp_path / "active" / "stale.txt").write_text("from version 1")
    checkpoint.save(student, tmp_path / "active", version=2)
    assert json.loads((tmp_path / "active" / "parley.json").read_text())["version"] == 2
    assert not (tmp_path / "active" / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "active"
    ]  # no staging left behind


def test_loading_something_else_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a Parley student"):
        checkpoint.load(tmp_path)
