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


def test_a_prompt_always_wrong_on_one_class_is_learnt_as_such():
    # Three classes, two prompts. Prompt 0 is right; prompt 1 says 2 whenever the truth is 1.
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 300)
    votes = np.stack([truth, np.where(truth == 1, 2, truth)], axis=1)
    reliability = trust.PromptReliability(3).fit(votes, truth)
    assert reliability.confusion[1][1, 2] > 0.9 and reliability.confusion[0][1, 1] > 0.9
    # Prompt 1 voting 2 while prompt 0 votes 1: the truth is 1, not 2.
    posterior = reliability.posterior(np.array([[1, 2]]))[0]
    assert posterior[1] > 0.9 and posterior[2] < 0.05


def test_with_few_answers_the_reliability_stays_near_its_prior():
    reliability = trust.PromptReliability(3, strength=4.0, accuracy=0.8).fit(
        np.array([[0, 1]]), np.array([0])
    )
    assert reliability.confusion[1][0, 0] == pytest.approx(
        3.2 / 5
    )  # one miss among 4+1
    assert reliability.confusion[0][2, 2] == pytest.approx(0.8)  # no answer on class 2


def test_missing_prompt_answers_are_skipped():
    votes = trust.prompt_votes([[(0.9, 0.1), (0.2, 0.8)], [(0.3, 0.7)]], 2)
    assert votes.tolist() == [[0, 1], [1, -1]]
    reliability = trust.PromptReliability(2).fit(votes, np.array([0, 1]))
    assert reliability.posterior(votes).shape == (2, 2)


def test_the_verifier_learns_the_llms_systematic_errors():
    # The LLM is confident everywhere, and wrong on most of its "c" labels: only the answers
    # (class accuracy, prompt reliability) can tell.
    rng = np.random.default_rng(3)
    n = 3000
    truth = rng.integers(0, 3, n)
    labels = truth.copy()
    fooled = (truth == 1) & (rng.uniform(size=n) < 0.6)
    labels[fooled] = 2  # class 1 often labelled 2
    votes = np.stack(
        [labels, labels, np.where(fooled, 1, labels)], axis=1
    )  # prompt 2 is not fooled
    soft = np.full((n, 3), 0.05)
    soft[np.arange(n), labels] = 0.9
    signals = trust.signals(soft, np.full(n, 0.8))
    right = (labels == truth).astype(float)
    train, test = slice(0, 1500), slice(1500, None)
    verifier = trust.Verifier(3).fit(
        signals[train], votes[train], labels[train], truth[train]
    )
    p = verifier.predict(signals[test], votes[test], labels[test])

    def ece(q):
        return expected_calibration_error(
            torch.tensor(q), torch.tensor(right[test]), bins=10
        )

    assert ece(p) < 0.05
    # The heuristic gives every label the same trust; the verifier finds the fooled ones.
    assert np.ptp(trust.heuristic_trust(signals[test])) == 0
    assert p[labels[test] == 0].mean() > 0.9 > 0.5 > p[fooled[test]].mean()


def test_the_verifier_on_few_narrow_answers_stays_near_the_heuristic():
    # The round-2 collapse of the first calibrated model must stay impossible.
    rng = np.random.default_rng(1)
    n = 60
    soft = np.column_stack([rng.uniform(0.35, 0.45, n), rng.uniform(0.3, 0.4, n)])
    soft = np.column_stack([soft, 1 - soft.sum(axis=1)])
    labels = soft.argmax(axis=1)
    truth = np.where(rng.uniform(size=n) < 0.45, labels, (labels + 1) % 3)
    votes = np.stack([labels, labels], axis=1)
    verifier = trust.Verifier(3).fit(
        trust.signals(soft, np.full(n, 0.5)), votes, labels, truth
    )
    confident = trust.signals(np.array([[0.98, 0.01, 0.01]]), np.array([1.0]))
    assert verifier.predict(confident, np.array([[0, 0]]), np.array([0]))[0] > 0.8


def test_the_verifier_penalty_reaches_its_trust_model():
    rng = np.random.default_rng(11)
    n = 300
    labels = rng.integers(0, 3, n)
    truth = np.where(labels == 2, (labels + 1) % 3, labels)  # class 2 is always wrong
    soft = np.full((n, 3), 0.1)
    soft[np.arange(n), labels] = 0.8
    signals = trust.signals(soft, np.full(n, 0.8))
    votes = labels[:, None]
    firm = trust.Verifier(3).fit(signals, votes, labels, truth)
    loose = trust.Verifier(3, l2=0.01).fit(signals, votes, labels, truth)
    assert firm.model.l2 == 5.0 and loose.model.l2 == 0.01
    assert np.abs(loose.model.weights[1:]).sum() > np.abs(firm.model.weights[1:]).sum()


def test_the_context_accuracy_on_hand_computed_cells():
    labels = np.array([0, 0, 0, 0, 1, 1])
    previous = np.array([1, 1, 1, trust.NO_PREVIOUS, 0, 0])
    truth = np.array([1, 1, 0, 0, 1, 1])
    table = trust.ContextAccuracy(2, strength=2.0).fit(labels, previous, truth).table
    # Class accuracy (shrunk to the overall (4 + 1) / (6 + 2) = 0.625 by 2 pseudo-answers):
    # class 0 (2 × 0.625 + 2) / (4 + 2) = 0.5417, class 1 (2 × 0.625 + 2) / (2 + 2) = 0.8125.
    class0, class1 = 3.25 / 6, 3.25 / 4
    assert table.shape == (2, 3)  # the last column: no previous turn
    assert table[0, 1] == pytest.approx((1 + 2 * class0) / (3 + 2))
    assert table[0, 2] == pytest.approx((1 + 2 * class0) / (1 + 2))
    assert table[0, 0] == pytest.approx(class0)  # an empty cell is its class's accuracy
    assert table[1, 0] == pytest.approx((2 + 2 * class1) / (2 + 2))
    model = trust.ContextAccuracy(2, strength=2.0).fit(labels, previous, truth)
    assert model.predict(np.array([0, 0]), np.array([trust.NO_PREVIOUS, 7])) == (
        pytest.approx([table[0, 2], table[0, 2]])  # out of range: no previous turn
    )


def _dialogue_pool(rng: np.random.Generator, n_dialogues: int):
    """Dialogues of 6 turns over 3 classes. The LLM is equally confident everywhere, but its
    label 0 is wrong 70 % of the time right after a turn it labelled 2 (as an LLM calling a
    reply to a request "inform"), and right otherwise."""
    labels, previous, truth = [], [], []
    for _ in range(n_dialogues):
        before = trust.NO_PREVIOUS
        for _ in range(6):
            label = int(rng.integers(0, 3))
            wrong = label == 0 and before == 2 and rng.uniform() < 0.7
            labels.append(label)
            previous.append(before)
            truth.append(1 if wrong else label)
            before = label
    labels, previous, truth = map(np.array, (labels, previous, truth))
    soft = np.full((len(labels), 3), 0.05)
    soft[np.arange(len(labels)), labels] = 0.9
    return trust.signals(soft, np.full(len(labels), 0.9)), labels, previous, truth


def test_the_verifier_learns_which_contexts_the_llm_gets_wrong():
    rng = np.random.default_rng(5)
    signals, labels, previous, truth = _dialogue_pool(rng, 100)
    votes = labels[:, None]
    train, test = slice(0, 300), slice(300, None)
    with_context = trust.Verifier(3).fit(
        signals[train],
        votes[train],
        labels[train],
        truth[train],
        previous=previous[train],
    )
    p = with_context.predict(
        signals[test], votes[test], labels[test], previous=previous[test]
    )
    trap = (labels[test] == 0) & (previous[test] == 2)
    assert p[trap].mean() < 0.5 < 0.8 < p[~trap].mean()
    # The verifier without the previous labels sees one class accuracy for label 0: it
    # cannot tell the trap from the other 0s.
    blind = trust.Verifier(3).fit(
        signals[train], votes[train], labels[train], truth[train]
    )
    q = blind.predict(signals[test], votes[test], labels[test])
    zero = labels[test] == 0
    assert np.ptp(q[zero]) < 1e-9
    with pytest.raises(ValueError, match="previous"):
        with_context.predict(signals[test], votes[test], labels[test])


def test_the_context_log_odds_let_few_answers_move_the_trust_further():
    rng = np.random.default_rng(8)
    signals, labels, previous, truth = _dialogue_pool(rng, 30)
    votes = labels[:, None]
    trap = (labels == 0) & (previous == 2)

    def gap(logit: bool) -> float:
        p = (
            trust.Verifier(3, context_logit=logit)
            .fit(signals, votes, labels, truth, previous=previous)
            .predict(signals, votes, labels, previous=previous)
        )
        return float(p[~trap].mean() - p[trap].mean())

    assert gap(True) > gap(False) > 0
