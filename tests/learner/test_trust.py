from __future__ import annotations

import numpy as np
import pytest
import torch

from learner import trust
from learner.metrics import expected_calibration_error


def test_signals_from_the_ensemble_and_the_student():
    soft = np.array([[0.8, 0.2], [0.5, 0.5]])
    features = trust.signals(soft, np.array([1.0, 0.5]))
    assert features.shape == (2, 3)
    assert features[:, 0].tolist() == [
        0.8,
        0.5,
    ]  # the ensemble's probability of its label
    assert features[1, 1] == pytest.approx(
        1.0
    )  # a tie has the maximum (normalised) entropy
    student = np.array([[0.3, 0.7], [0.9, 0.1]])
    full = trust.signals(soft, np.array([1.0, 0.5]), student)
    assert full.shape == (2, 6)
    assert full[:, 3].tolist() == [0.3, 0.9] and full[:, 5].tolist() == [0.0, 1.0]


def test_the_heuristic_on_hand_computed_values():
    llm_only = np.array([[0.8, 0.3, 1.0], [0.8, 0.3, 0.5]])
    assert trust.heuristic_trust(llm_only).tolist() == pytest.approx([0.8, 0.6])
    with_student = np.array([[0.8, 0.3, 1.0, 0.4, 0.5, 0.0]])
    assert trust.heuristic_trust(with_student).tolist() == pytest.approx([0.6])


def test_the_calibrated_model_learns_what_the_heuristic_gets_wrong():
    rng = np.random.default_rng(0)
    n = 4000
    soft_max = rng.uniform(0.4, 1.0, n)
    agree = rng.uniform(0.3, 1.0, n)
    student = rng.uniform(0.0, 1.0, n)
    features = np.stack(
        [soft_max, np.zeros(n), agree, student, np.zeros(n), (student > 0.5) * 1.0],
        axis=1,
    )
    truth = 1 / (1 + np.exp(-(6 * student - 3)))  # only the student's view matters here
    right = (rng.uniform(size=n) < truth).astype(float)
    model = trust.TrustModel().fit(features, right)

    def ece(p):
        return expected_calibration_error(torch.tensor(p), torch.tensor(right), bins=10)

    assert ece(model.predict(features)) < 0.05 < ece(trust.heuristic_trust(features))


def test_few_labels_from_a_narrow_range_keep_it_near_the_heuristic():
    # 60 labels, all among the least trusted items: the pool's confident items stay confident.
    rng = np.random.default_rng(1)
    low = np.stack(
        [rng.uniform(0.35, 0.45, 60), np.full(60, 0.9), rng.uniform(0.3, 0.5, 60)],
        axis=1,
    )
    right = (rng.uniform(size=60) < 0.45).astype(float)
    model = trust.TrustModel().fit(low, right)
    confident = np.array([[0.98, 0.05, 1.0]])
    assert model.predict(confident)[0] > 0.8
    assert trust.heuristic_trust(confident)[0] == pytest.approx(0.98)


def test_one_outcome_only_cannot_be_fitted():
    with pytest.raises(ValueError, match="both"):
        trust.TrustModel().fit(np.ones((3, 3)), np.ones(3))
