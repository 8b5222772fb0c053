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
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


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
