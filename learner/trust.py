"""Trust: the probability that an utterance's LLM label is right (DESIGN.md, "Trust score").

Signals per utterance (all in [0, 1]):
    ȳ(l)      the ensemble's probability of its own label l = argmax ȳ
    H(ȳ)      the ensemble's entropy, divided by log C
    a         prompt agreement
    q(l)      the cross-fitted student's probability of the LLM label (a student that did not
              train on this utterance's label)
    H(q)      the student's entropy, divided by log C
    q agrees  1 when the student's own label is l

Before enough human labels exist, `heuristic_trust` combines them with fixed weights; after,
`TrustModel` corrects the heuristic with a logistic regression learnt from the human labels
that arrived (target = 1 where the human agreed with the LLM).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
Votes = npt.NDArray[np.int64]


def signals(soft: Array, agreement: Array, student: Array | None = None) -> Array:
    """(N, F) signals: 3 from the LLM ensemble, 3 more with student probabilities.

    Args:
        soft: (N, C) ensemble soft labels ȳ.
        agreement: (N,) prompt agreement a.
        student: (N, C) cross-fitted student probabilities q, or None before any student.
    """
    soft = np.asarray(soft, dtype=np.float64)
    n, c = soft.shape
    label = soft.argmax(axis=1)
    rows = np.arange(n)
    log_c = math.log(c) if c > 1 else 1.0
    columns = [
        soft[rows, label],
        _entropy(soft) / log_c,
        np.asarray(agreement, dtype=np.float64),
    ]
    if student is not None:
        q = np.asarray(student, dtype=np.float64)
        columns += [
            q[rows, label],
            _entropy(q) / log_c,
            (q.argmax(axis=1) == label).astype(np.float64),
        ]
    return np.stack(columns, axis=1)


def _entropy(p: Array) -> Array:
    safe = np.where(p > 0, p, 1.0)
    return np.asarray(-(p * np.log(safe)).sum(axis=1))


def heuristic_trust(features: Array) -> Array:
    """(N,) trust from `signals` with fixed weights, before any calibration is possible.

    LLM only: ȳ(l) scaled by agreement (a confident ensemble whose prompts disagree is less
    trusted). With a student: the mean of that and q(l), the student's view of the label.
    """
    llm = features[:, 0] * (0.5 + 0.5 * features[:, 2])
    if features.shape[1] > 3:
        llm = 0.5 * llm + 0.5 * features[:, 3]
    return np.asarray(np.clip(llm, 0.0, 1.0))


@dataclass
class TrustModel:
    """P(LLM label right | signals): the heuristic, corrected by a logistic regression.

    logit P = logit(heuristic_trust) + b + w·signals, fitted by Newton's method with an L2
    penalty on w. The human labels it learns from are not a random sample: the queue sends the
    least trusted items first, so they cover a narrow range of the signals. Fitting only a
    correction to the heuristic on the raw signals (all in [0, 1]; no standardisation, which
    would blow the narrow range up to many standard deviations on the rest of the pool) keeps
    the model near the heuristic where the labels say little.
    """

    l2: float = 5.0
    iterations: int = 50
    weights: Array = field(default_factory=lambda: np.zeros(0))

    def fit(self, features: Array, correct: Array) -> TrustModel:
        """Fit on (N, F) signals and (N,) 0/1 outcomes (both must occur)."""
        x = np.asarray(features, dtype=np.float64)
        y = np.asarray(correct, dtype=np.float64)
        if len(set(y.tolist())) < 2:
            raise ValueError("TrustModel needs both right and wrong LLM labels to fit")
        design, offset = self._design(x), _offset(x)
        w = np.zeros(design.shape[1])
        penalty = np.full(design.shape[1], self.l2)
        penalty[0] = 1e-3  # the intercept is barely shrunk
        for _ in range(self.iterations):
            p = _sigmoid(offset + design @ w)
            gradient = design.T @ (p - y) + penalty * w
            hessian = (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty)
            step = np.linalg.solve(hessian, gradient)
            w -= step
            if np.abs(step).max() < 1e-8:
                break
        self.weights = w
        return self

    def predict(self, features: Array) -> Array:
        """(N,) P(the LLM label is right)."""
        x = np.asarray(features, dtype=np.float64)
        return _sigmoid(_offset(x) + self._design(x) @ self.weights)

    @staticmethod
    def _design(x: Array) -> Array:
        return np.hstack([np.ones((x.shape[0], 1)), x])


def _offset(x: Array) -> Array:
    h = np.clip(heuristic_trust(x), 1e-4, 1 - 1e-4)
    return np.asarray(np.log(h / (1 - h)))


def _sigmoid(z: Array) -> Array:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -30, 30))))


@dataclass
class PromptReliability:
    """Prompts as annotators (Dawid & Skene 1979; CROWDLAB): how often each prompt votes k when
    the truth is t, and the class prior, estimated from human answers.

    A Dirichlet prior of `strength` pseudo-answers per true class, `accuracy` of them on the
    diagonal, keeps few answers near "every prompt is right `accuracy` of the time"; many
    answers learn that a prompt is always wrong on one class. A vote of -1 is a prompt that
    did not answer that utterance.
    """

    n_classes: int
    strength: float = 4.0
    accuracy: float = 0.8
    confusion: Array = field(default_factory=lambda: np.zeros((0, 0, 0)))
    prior: Array = field(default_factory=lambda: np.zeros(0))

    def fit(self, votes: npt.ArrayLike, truth: npt.ArrayLike) -> PromptReliability:
        """Fit on (N, M) votes of M prompts and (N,) true classes."""
        v = np.asarray(votes, dtype=np.int64).reshape(len(np.asarray(truth)), -1)
        t = np.asarray(truth, dtype=np.int64)
        c = self.n_classes
        base = np.full((c, c), (1.0 - self.accuracy) / max(c - 1, 1))
        np.fill_diagonal(base, self.accuracy)
        counts = np.repeat((self.strength * base)[None], v.shape[1], axis=0)
        for m in range(v.shape[1]):
            seen = v[:, m] >= 0
            np.add.at(counts[m], (t[seen], v[seen, m]), 1.0)
        self.confusion = counts / counts.sum(axis=2, keepdims=True)
        self.prior = (np.bincount(t, minlength=c) + 1.0) / (len(t) + c)
        return self

    def posterior(self, votes: npt.ArrayLike) -> Array:
        """(N, C) P(true class | the prompts' votes)."""
        v = np.asarray(votes, dtype=np.int64)
        v = v.reshape(v.shape[0], -1)
        log_p = np.tile(np.log(self.prior), (v.shape[0], 1))
        for m in range(min(v.shape[1], self.confusion.shape[0])):
            seen = v[:, m] >= 0
            # log P(vote of prompt m | truth t), for every t
            log_p[seen] += np.log(self.confusion[m][:, v[seen, m]].T)
        log_p -= log_p.max(axis=1, keepdims=True)
        p = np.exp(log_p)
        return np.asarray(p / p.sum(axis=1, keepdims=True))


def prompt_votes(
    distributions: Sequence[Sequence[Sequence[float]]], n_prompts: int
) -> Votes:
    """(N, n_prompts) each prompt's voted class per utterance (-1: no answer)."""
    out = np.full((len(distributions), n_prompts), -1, dtype=np.int64)
    for i, answers in enumerate(distributions):
        for m, dist in enumerate(answers[:n_prompts]):
            out[i, m] = int(np.argmax(dist))
    return out


@dataclass
class Verifier:
    """P(LLM label right), learnt from human answers with signals the LLM's own confidence does
    not have (DESIGN.md, "Trust score"): `signals` (ensemble, agreement, cross-fitted student)
    plus, from the prompts' votes, the Dawid–Skene posterior of the LLM label and the accuracy
    of the LLM label's class among the answers. A `TrustModel` (a correction of the heuristic,
    near it where answers are few) combines them. The reliability features of the answers it
    is fitted on are cross-fitted (each answer's from a reliability fitted without it).
    """

    n_classes: int
    folds: int = 5
    reliability: PromptReliability | None = None
    class_accuracy: Array = field(default_factory=lambda: np.zeros(0))
    model: TrustModel = field(default_factory=TrustModel)

    def fit(
        self, signals: Array, votes: Votes, labels: npt.ArrayLike, truth: npt.ArrayLike
    ) -> Verifier:
        """Fit on answered utterances: their `signals`, prompt votes, LLM labels, human labels."""
        labels, truth = np.asarray(labels), np.asarray(truth)
        n = len(truth)
        extra = np.zeros((n, 2))
        fold = np.arange(n) % self.folds
        for k in range(self.folds):
            out = fold == k
            if out.any() and (~out).any():
                extra[out] = self._reliability_features(
                    votes[~out], labels[~out], truth[~out], votes[out], labels[out]
                )
        right = (labels == truth).astype(np.float64)
        self.model = TrustModel().fit(np.hstack([signals, extra]), right)
        self.reliability = PromptReliability(self.n_classes).fit(votes, truth)
        self.class_accuracy = _class_accuracy(labels, truth, self.n_classes)
        return self

    def predict(self, signals: Array, votes: Votes, labels: npt.ArrayLike) -> Array:
        """(N,) P(the LLM label is right)."""
        assert self.reliability is not None, "fit first"
        labels = np.asarray(labels)
        rows = np.arange(len(labels))
        extra = np.stack(
            [
                self.reliability.posterior(votes)[rows, labels],
                self.class_accuracy[labels],
            ],
            axis=1,
        )
        return self.model.predict(np.hstack([signals, extra]))

    def _reliability_features(
        self,
        votes: Array,
        labels: Array,
        truth: Array,
        votes_out: Array,
        labels_out: Array,
    ) -> Array:
        reliability = PromptReliability(self.n_classes).fit(votes, truth)
        rows = np.arange(len(labels_out))
        accuracy = _class_accuracy(labels, truth, self.n_classes)
        return np.stack(
            [reliability.posterior(votes_out)[rows, labels_out], accuracy[labels_out]],
            axis=1,
        )


def _class_accuracy(
    labels: npt.NDArray[Any],
    truth: npt.NDArray[Any],
    n_classes: int,
    strength: float = 4.0,
) -> Array:
    """(C,) how often an LLM label of each class was right among the answers, shrunk towards
    the overall rate by `strength` pseudo-answers."""
    right = (labels == truth).astype(np.float64)
    overall = (right.sum() + 1.0) / (len(right) + 2.0)
    hits = np.bincount(labels, weights=right, minlength=n_classes)
    seen = np.bincount(labels, minlength=n_classes)
    return np.asarray((hits + strength * overall) / (seen + strength))
