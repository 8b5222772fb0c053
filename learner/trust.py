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
from typing import Any

import numpy as np
import numpy.typing as npt

from .reliability import (  # noqa: F401 - re-exported: trust.PromptReliability etc.
    NO_PREVIOUS,
    ContextAccuracy,
    PromptReliability,
    class_accuracy,
    prompt_votes,
)

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
    base: str = "heuristic"
    """What the correction starts from: "heuristic" (`heuristic_trust`) or "llm" (the
    ensemble's probability of its label, ȳ(l), which is calibrated on DailyDialog)."""
    weights: Array = field(default_factory=lambda: np.zeros(0))

    def fit(self, features: Array, correct: Array) -> TrustModel:
        """Fit on (N, F) signals and (N,) 0/1 outcomes (both must occur)."""
        x = np.asarray(features, dtype=np.float64)
        y = np.asarray(correct, dtype=np.float64)
        if len(set(y.tolist())) < 2:
            raise ValueError("TrustModel needs both right and wrong LLM labels to fit")
        design, offset = self._design(x), _offset(x, self.base)
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
        return _sigmoid(_offset(x, self.base) + self._design(x) @ self.weights)

    @staticmethod
    def _design(x: Array) -> Array:
        return np.hstack([np.ones((x.shape[0], 1)), x])


def _offset(x: Array, base: str = "heuristic") -> Array:
    h = np.clip(heuristic_trust(x) if base == "heuristic" else x[:, 0], 1e-4, 1 - 1e-4)
    return np.asarray(np.log(h / (1 - h)))


def _sigmoid(z: Array) -> Array:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -30, 30))))


@dataclass
class Verifier:
    """P(LLM label right), learnt from human answers with signals the LLM's own confidence does
    not have (DESIGN.md, "Trust score"; docs/active-loop.md): `signals` (ensemble, agreement,
    cross-fitted student) plus, from the prompts' votes, the Dawid–Skene posterior of the LLM
    label and the accuracy of the LLM label's class among the answers, plus, given the
    `previous` turn's LLM label, the accuracy of the LLM label in that context (`ContextAccuracy`:
    the LLM's errors follow the dialogue's structure, e.g. a reply to a request that it calls
    "inform"), plus any `extra` columns the caller computes (`knn_agreement`,
    `student_margin`). A `TrustModel` (a correction of the heuristic, near it where answers
    are few) combines them. The reliability features of the answers it is fitted on are
    cross-fitted (each answer's from a reliability fitted without it).

    With audit answers (drawn uniformly from the pool, `audit`, with weights 1/π), a
    `PlattCalibration` of the verifier's output is fitted on them: each audit answer scored by
    a verifier fitted without it, the answers weighted by 1/π (learner/audit.py).
    """

    n_classes: int
    folds: int = 5
    min_audit: int = 10
    """Audit answers before a calibration is fitted on them."""
    base: str = "heuristic"
    """The `TrustModel`'s starting point."""
    calibration_prior: float = 20.0
    """The audit calibration's prior, in answers (`PlattCalibration.prior_strength`)."""
    l2: float = 5.0
    """The `TrustModel`'s penalty (its default; the replay measures others)."""
    calibration_slope_prior: float | None = None
    """The calibration slope's prior, in answers (None: `calibration_prior`)."""
    calibrate_on: str = "audit"
    """"audit": the calibration is fitted on the audit answers, weighted by 1/π; "all": on
    every answer, unweighted — the queue selects on trust, so P(right | trust) is not biased
    by the selection where answers exist, and the audits carry it to the rest of the range."""
    context_logit: bool = True
    """The context accuracy enters the model as its log-odds (False: as a probability, which
    the replay measured to add nothing; docs/active-loop.md)."""
    reliability: PromptReliability | None = None
    class_accuracy: Array = field(default_factory=lambda: np.zeros(0))
    context_accuracy: ContextAccuracy | None = None
    uses_context: bool = False
    model: TrustModel = field(default_factory=TrustModel)
    calibration: Any = None

    def fit(
        self,
        signals: Array,
        votes: Votes,
        labels: npt.ArrayLike,
        truth: npt.ArrayLike,
        *,
        extra: Array | None = None,
        previous: npt.ArrayLike | None = None,
        audit: npt.ArrayLike | None = None,
        weights: npt.ArrayLike | None = None,
    ) -> Verifier:
        """Fit on answered utterances: their `signals`, prompt votes, LLM labels, human labels,
        `extra` signal columns, the `previous` turn's LLM label (`NO_PREVIOUS` at a
        dialogue's start; None: the context is not used); `audit` marks the answers drawn
        uniformly (weights: 1/π)."""
        from .audit import PlattCalibration

        labels, truth = np.asarray(labels), np.asarray(truth)
        extra = _columns(extra, len(truth))
        self.uses_context = previous is not None
        context = _previous(previous, len(truth))
        self._fit_core(signals, votes, labels, truth, extra, context)
        self.calibration = None
        if audit is None:
            return self
        audit = np.asarray(audit, dtype=bool)
        w = np.ones(len(truth)) if weights is None else np.asarray(weights, np.float64)
        if audit.sum() < self.min_audit:
            return self
        index = np.flatnonzero(audit)
        if self.calibrate_on == "all":
            index, w = np.arange(len(truth)), np.ones(len(truth))
        # Each audit answer scored by a verifier that did not see it.
        scores = np.zeros(len(index))
        fold = np.arange(len(index)) % self.folds
        for k in range(self.folds):
            held = index[fold == k]
            keep = np.ones(len(truth), dtype=bool)
            keep[held] = False
            right = labels[keep] == truth[keep]
            if not len(held) or right.all() or not right.any():
                return self
            part = Verifier(
                self.n_classes,
                self.folds,
                base=self.base,
                l2=self.l2,
                context_logit=self.context_logit,
            )._fit_core(
                signals[keep],
                votes[keep],
                labels[keep],
                truth[keep],
                extra[keep],
                None if context is None else context[keep],
            )
            scores[fold == k] = part._predict_core(
                signals[held],
                votes[held],
                labels[held],
                extra[held],
                None if context is None else context[held],
            )
        self.calibration = PlattCalibration(
            self.calibration_prior, self.calibration_slope_prior
        ).fit(scores, labels[index] == truth[index], w[index])
        return self

    def predict(
        self,
        signals: Array,
        votes: Votes,
        labels: npt.ArrayLike,
        *,
        extra: Array | None = None,
        previous: npt.ArrayLike | None = None,
    ) -> Array:
        """(N,) P(the LLM label is right). `previous` as in `fit` (required if it was given
        there)."""
        labels = np.asarray(labels)
        if self.uses_context and previous is None:
            raise ValueError("this Verifier was fitted with the previous turns' labels")
        p = self._predict_core(
            signals,
            votes,
            labels,
            _columns(extra, len(labels)),
            _previous(previous if self.uses_context else None, len(labels)),
        )
        return p if self.calibration is None else self.calibration.predict(p)

    def _fit_core(
        self,
        signals: Array,
        votes: Votes,
        labels: npt.NDArray[Any],
        truth: npt.NDArray[Any],
        extra: Array,
        previous: npt.NDArray[np.int64] | None,
    ) -> Verifier:
        n = len(truth)
        reliability = np.zeros((n, 2 if previous is None else 3))
        fold = np.arange(n) % self.folds
        for k in range(self.folds):
            out = fold == k
            if out.any() and (~out).any():
                part = self._fit_reliability(
                    votes[~out],
                    labels[~out],
                    truth[~out],
                    None if previous is None else previous[~out],
                )
                reliability[out] = part._reliability_columns(
                    votes[out],
                    labels[out],
                    None if previous is None else previous[out],
                )
        right = (labels == truth).astype(np.float64)
        self.model = TrustModel(l2=self.l2, base=self.base).fit(
            np.hstack([signals, reliability, extra]), right
        )
        self._fit_reliability(votes, labels, truth, previous)
        return self

    def _fit_reliability(
        self,
        votes: Votes,
        labels: npt.NDArray[Any],
        truth: npt.NDArray[Any],
        previous: npt.NDArray[np.int64] | None,
    ) -> Verifier:
        """The answer-derived parts (prompt reliability, class and context accuracy), fitted
        on these answers; returns a Verifier holding them (self)."""
        self.reliability = PromptReliability(self.n_classes).fit(votes, truth)
        self.class_accuracy = class_accuracy(labels, truth, self.n_classes)
        self.context_accuracy = (
            None
            if previous is None
            else ContextAccuracy(self.n_classes).fit(labels, previous, truth)
        )
        return self

    def _reliability_columns(
        self,
        votes: Votes,
        labels: npt.NDArray[Any],
        previous: npt.NDArray[np.int64] | None,
    ) -> Array:
        assert self.reliability is not None, "fit first"
        rows = np.arange(len(labels))
        columns = [
            self.reliability.posterior(votes)[rows, labels],
            self.class_accuracy[labels],
        ]
        if previous is not None:
            assert self.context_accuracy is not None
            accuracy = self.context_accuracy.predict(labels, previous)
            if self.context_logit:
                # On the log-odds scale: a [0, 1] column under the L2 penalty could move
                # the trust's log-odds by a few tenths at most, not by a cell's 0.3 vs 0.9.
                accuracy = np.log(accuracy / (1.0 - accuracy))
            columns.append(accuracy)
        return np.stack(columns, axis=1)

    def _predict_core(
        self,
        signals: Array,
        votes: Votes,
        labels: npt.NDArray[Any],
        extra: Array,
        previous: npt.NDArray[np.int64] | None,
    ) -> Array:
        reliability = self._reliability_columns(votes, labels, previous)
        return self.model.predict(np.hstack([signals, reliability, extra]))


def _previous(previous: npt.ArrayLike | None, n: int) -> npt.NDArray[np.int64] | None:
    if previous is None:
        return None
    out = np.asarray(previous, dtype=np.int64).reshape(-1)
    if len(out) != n:
        raise ValueError(f"previous has {len(out)} labels for {n} utterances")
    return out


def _columns(extra: Array | None, n: int) -> Array:
    if extra is None:
        return np.zeros((n, 0))
    return np.asarray(extra, dtype=np.float64).reshape(n, -1)


def student_margin(student: Array, labels: npt.ArrayLike) -> Array:
    """(N,) the cross-fitted student's margin on the LLM label, mapped to [0, 1]:
    (q(l) − the largest other q + 1) / 2 (1: sure of l; 0: sure of another label)."""
    q = np.asarray(student, dtype=np.float64)
    labels = np.asarray(labels)
    rows = np.arange(len(labels))
    mine = q[rows, labels]
    others = q.copy()
    others[rows, labels] = -np.inf
    return np.asarray((mine - others.max(axis=1) + 1.0) / 2.0)


def knn_agreement(
    query: Array,
    query_labels: npt.ArrayLike,
    query_groups: npt.ArrayLike,
    reference: Array,
    reference_labels: Array,
    reference_groups: npt.ArrayLike,
    *,
    k: int = 10,
    block: int = 2048,
) -> Array:
    """(N,) how much the k most similar reference utterances of other dialogues agree with
    each query's LLM label: the similarity-weighted mean of their label distribution's mass on
    it (a human label is one-hot, an LLM label its soft label). 1/2 where no neighbour is
    similar at all.

    Args:
        query, reference: unit-length embeddings (N, H) and (M, H).
        query_labels: (N,) each query's LLM label.
        query_groups, reference_groups: dialogue ids (a neighbour from the query's own
            dialogue would share its context, not confirm its label).
        reference_labels: (M, C) label distributions of the reference utterances.
    """
    q = np.asarray(query, dtype=np.float32)
    ref = np.asarray(reference, dtype=np.float32)
    dist = np.asarray(reference_labels, dtype=np.float64)
    labels = np.asarray(query_labels)
    groups, ref_groups = np.asarray(query_groups), np.asarray(reference_groups)
    out = np.full(len(q), 0.5)
    if not len(ref) or not len(q):
        return out
    k = min(k, len(ref))
    for start in range(0, len(q), block):
        rows = slice(start, start + block)
        similarity = q[rows] @ ref.T
        similarity[groups[rows, None] == ref_groups[None, :]] = -np.inf
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        weight = np.take_along_axis(similarity, nearest, axis=1).astype(np.float64)
        weight = np.where(np.isfinite(weight), np.maximum(weight, 0.0), 0.0)
        mass = dist[nearest, labels[rows, None]]
        total = weight.sum(axis=1)
        out[rows] = np.where(
            total > 0, (weight * mass).sum(axis=1) / np.where(total > 0, total, 1), 0.5
        )
    return out
