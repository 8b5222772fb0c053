"""LLM budget mode: how confident the student must be for its answer to stand in for the LLM's.

Given human answers on which both the student (cross-fitted: it never saw the answer's dialogue)
and the LLM labelled the utterance, `choose_threshold` finds the lowest student confidence
above which the student's labels lose at most `tolerance` accuracy against the LLM's labels of
the same utterances. Below the threshold the LLM is asked as before. Numpy only: the web
process shows the threshold without loading torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class BudgetThreshold:
    """The threshold chosen, and the figures it was chosen on.

    Attributes:
        threshold: the student's lowest max-probability that replaces the LLM, or None when
            no share of the answers keeps the accuracy (the LLM labels everything).
        answers: human answers it was chosen on.
        covered: those whose student confidence is at or above the threshold.
        student_accuracy: the student's accuracy on the covered answers.
        llm_accuracy: the LLM's accuracy on the same answers.
        tolerance: the accuracy the student may lose against the LLM (a fraction, 0.01 = 1 point).
    """

    threshold: float | None
    answers: int
    covered: int
    student_accuracy: float
    llm_accuracy: float
    tolerance: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose_threshold(
    confidence: Sequence[float],
    student_right: Sequence[bool],
    llm_right: Sequence[bool],
    *,
    tolerance: float,
    min_support: int,
) -> BudgetThreshold:
    """The lowest confidence t such that, over the answers whose student confidence is ≥ t
    (at least `min_support` of them), the student's accuracy is at most `tolerance` under the
    LLM's on the same answers.

    Answers are ranked by the student's confidence; every prefix of that ranking (cut between
    distinct confidences) is a candidate share, and the largest one that keeps the accuracy
    wins. The comparison is paired (the same utterances for both sources), so the LLM's own
    hard cases count against it as they would in the corpus.
    """
    conf = np.asarray(confidence, dtype=np.float64)
    student = np.asarray(student_right, dtype=np.float64)
    llm = np.asarray(llm_right, dtype=np.float64)
    if not (len(conf) == len(student) == len(llm)):
        raise ValueError("confidence, student_right and llm_right differ in length")
    none = BudgetThreshold(None, len(conf), 0, float("nan"), float("nan"), tolerance)
    if len(conf) < max(min_support, 1):
        return none
    order = np.argsort(-conf, kind="stable")
    conf, student, llm = conf[order], student[order], llm[order]
    k = np.arange(1, len(conf) + 1)
    student_accuracy = np.cumsum(student) / k
    llm_accuracy = np.cumsum(llm) / k
    # A cut may only fall where the confidence changes (a threshold keeps every tie).
    cut = np.append(conf[1:] < conf[:-1], True)
    keeps = (
        (student_accuracy >= llm_accuracy - tolerance - 1e-12)
        & cut
        & (k >= min_support)
    )
    if not keeps.any():
        return none
    last = int(np.flatnonzero(keeps)[-1])
    return BudgetThreshold(
        threshold=float(conf[last]),
        answers=len(conf),
        covered=last + 1,
        student_accuracy=float(student_accuracy[last]),
        llm_accuracy=float(llm_accuracy[last]),
        tolerance=tolerance,
    )
