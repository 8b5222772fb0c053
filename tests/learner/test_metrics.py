from __future__ import annotations

import math

import pytest
import torch

from learner.metrics import classification_metrics, expected_calibration_error
from learner.uncertainty import entropy, least_confidence, margin


def test_accuracy_macro_f1_and_per_class_on_a_hand_computed_case():
    # gold:      0 0 0 1 1 2
    # predicted: 0 0 1 1 2 2
    gold = torch.tensor([0, 0, 0, 1, 1, 2])
    probs = torch.nn.functional.one_hot(torch.tensor([0, 0, 1, 1, 2, 2]), 3).float()
    m = classification_metrics(probs, gold, ["a", "b", "c"])
    assert m.accuracy == pytest.approx(4 / 6)
    # a: P 2/2 R 2/3 F1 0.8; b: P 1/2 R 1/2 F1 0.5; c: P 1/2 R 1 F1 2/3
    assert m.per_class["a"].precision == 1.0 and m.per_class[
        "a"
    ].recall == pytest.approx(2 / 3)
    assert m.per_class["c"].f1 == pytest.approx(2 / 3)
    assert m.macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m.per_class["b"].support == 2
    assert [m.per_class[c].predicted for c in "abc"] == [2, 2, 2]
    assert m.confusion == [
        [2, 1, 0],
        [0, 1, 1],
        [0, 0, 1],
    ]  # gold rows, predicted columns


def test_ece_on_hand_computed_bins():
    # bin [0.6, 0.667): confidences 0.6, 0.6 with one right → |0.5 − 0.6| · 2/4
    # bin [0.933, 1]:   confidences 1.0, 1.0 both right     → 0
    ece = expected_calibration_error(
        torch.tensor([0.6, 0.6, 1.0, 1.0]), torch.tensor([1, 0, 1, 1])
    )
    assert ece == pytest.approx(0.05)
    assert expected_calibration_error(torch.tensor([]), torch.tensor([])) == 0.0


def test_uncertainty_functions_on_hand_computed_arrays():
    p = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    assert entropy(p).tolist() == pytest.approx(
        [0.0, math.log(2), math.log(3)], abs=1e-6
    )
    assert margin(p).tolist() == pytest.approx([0.0, 1.0, 1.0])
    assert least_confidence(p).tolist() == pytest.approx([0.0, 0.5, 2 / 3])
