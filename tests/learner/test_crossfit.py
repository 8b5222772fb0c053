"""Cross-fitting: stable folds, fold training sets, each example scored by its fold's student."""

from __future__ import annotations

import numpy as np
import pytest

from learner import crossfit
from learner.data import Example
from learner.model import Student


def _examples(dialogues: list[str]) -> list[Example]:
    return [
        Example(d, t, "A", f"turn {t} of {d}", llm=((0.8, 0.2),))
        for d in dialogues
        for t in range(2)
    ]


def test_a_dialogues_fold_is_stable_and_spreads_the_dialogues():
    folds = [crossfit.fold_of(f"d{i}", 3) for i in range(300)]
    assert folds == [crossfit.fold_of(f"d{i}", 3) for i in range(300)]
    assert {f: folds.count(f) for f in range(3)}.keys() == {0, 1, 2}
    assert min(folds.count(f) for f in range(3)) > 70


def test_each_fold_student_trains_on_the_other_folds_only():
    examples = _examples([f"d{i}" for i in range(12)])
    sets = dict(crossfit.training_sets(examples, 2))
    assert list(sets) == ["full", "fold-0", "fold-1"] and len(sets["full"]) == 24
    for k in (0, 1):
        assert all(crossfit.fold_of(ex.dialogue_id, 2) != k for ex in sets[f"fold-{k}"])
    assert len(sets["fold-0"]) + len(sets["fold-1"]) == 24


def test_a_fold_holding_every_dialogue_gets_no_student():
    examples = _examples(["only"])
    assert [name for name, _ in crossfit.training_sets(examples, 2)] == [
        "full",
        f"fold-{1 - crossfit.fold_of('only', 2)}",
    ]


@pytest.fixture
def students(tiny_config):
    import torch

    torch.manual_seed(0)
    return [Student(tiny_config) for _ in range(3)]


def test_each_example_is_scored_by_the_student_of_its_fold(students):
    from learner.training import predict_proba

    full, fold0, fold1 = students
    examples = _examples([f"d{i}" for i in range(8)])
    got = crossfit.CrossFitted(full, [fold0, fold1]).proba(examples)
    for ex, row in zip(examples, got, strict=True):
        own = (fold0, fold1)[crossfit.fold_of(ex.dialogue_id, 2)]
        assert row == pytest.approx(predict_proba(own, [ex]).numpy()[0], abs=1e-5)


def test_saved_students_load_back_and_a_missing_fold_falls_back_to_full(
    students, tmp_path
):
    from learner.checkpoint import save

    full, fold0, _ = students
    save(full, tmp_path / "full", version=1)
    save(fold0, tmp_path / "fold-0", version=1)
    loaded = crossfit.CrossFitted.load(tmp_path, 2, device="cpu")
    assert loaded.folds == 2 and loaded.fold_students[1] is loaded.full
    examples = _examples(["d1", "d2", "d3"])
    assert loaded.proba(examples).shape == (6, 2)


def test_trust_features_of_examples_with_and_without_llm_labels():
    examples = [
        Example("d", 0, "A", "x", llm=((0.9, 0.1), (0.7, 0.3))),
        Example("d", 1, "B", "y"),
    ]
    student = np.array([[0.6, 0.4], [0.5, 0.5]])
    features = crossfit.trust_features(examples, 2, student)
    assert features.shape == (2, 6)
    assert features[0, 0] == pytest.approx(0.8)  # the ensemble's ȳ(l)
    assert (
        features[1, 0] == pytest.approx(0.5) and features[1, 2] == 0.0
    )  # no LLM label
    assert features[0, 3] == pytest.approx(0.6)  # the student's q(l)
