"""What the human answers say about the LLM: each prompt's reliability per class (Dawid &
Skene), the accuracy of each LLM label's class, and of each label after the previous turn's
label. The trust verifier (`learner/trust.py`) reads them as signals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
Votes = npt.NDArray[np.int64]


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


NO_PREVIOUS = -1
"""`previous` label of an utterance that opens its dialogue (or whose previous turn has no LLM
label)."""


@dataclass
class ContextAccuracy:
    """How often the LLM label l is right when the previous turn's LLM label is p, among the
    answers: a (C, C + 1) table (the last column: no previous turn), each cell shrunk towards
    its class's accuracy by `strength` pseudo-answers.

    The LLM's errors follow the dialogue's structure (on DailyDialog acts, 59 % of its
    "inform" labels on a reply to a "directive" are wrong, 9 % after a "question";
    docs/active-loop.md): a cell learns that from a few dozen answers, and an empty cell is
    the class's accuracy.
    """

    n_classes: int
    strength: float = 4.0
    table: Array = field(default_factory=lambda: np.zeros((0, 0)))

    def fit(
        self, labels: npt.ArrayLike, previous: npt.ArrayLike, truth: npt.ArrayLike
    ) -> ContextAccuracy:
        labels, truth = np.asarray(labels), np.asarray(truth)
        column = self._column(np.asarray(previous))
        c = self.n_classes
        right = (labels == truth).astype(np.float64)
        prior = class_accuracy(labels, truth, c, self.strength)
        hits, seen = np.zeros((c, c + 1)), np.zeros((c, c + 1))
        np.add.at(hits, (labels, column), right)
        np.add.at(seen, (labels, column), 1.0)
        self.table = (hits + self.strength * prior[:, None]) / (seen + self.strength)
        return self

    def predict(self, labels: npt.ArrayLike, previous: npt.ArrayLike) -> Array:
        """(N,) the accuracy of each LLM label in its context."""
        return np.asarray(
            self.table[np.asarray(labels), self._column(np.asarray(previous))]
        )

    def _column(self, previous: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        column = np.asarray(previous, dtype=np.int64).copy()
        column[(column < 0) | (column >= self.n_classes)] = self.n_classes
        return column


def class_accuracy(
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
