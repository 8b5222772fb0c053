"""LLM budget mode: how confident the student must be for its answer to stand in for the LLM's.

Given human answers on which both the student (cross-fitted: it never saw the answer's dialogue)
and the LLM labelled the utterance, `choose_threshold` finds the lowest student confidence
above which the student's labels lose at most `tolerance` accuracy — and, given the labels
themselves, at most `tolerance` macro-F1 — against the LLM's labels of the same utterances.
Below the threshold the LLM is asked as before. Numpy only: the web process shows the
threshold without loading torch.

Why macro-F1 too: on a skewed task a student that answers the majority class with confidence
matches the LLM's accuracy while it drops the rare classes the LLM finds (sentiment on
DailyDialog: level accuracy, macro-F1 0.34 against 0.61; docs/llm-budget.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


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
        tolerance: the accuracy (and macro-F1) the student may lose against the LLM (a
            fraction, 0.01 = 1 point).
        student_macro_f1, llm_macro_f1: the macro-F1 of each on the covered answers (NaN when
            chosen on right/wrong alone, or with no threshold).
    """

    threshold: float | None
    answers: int
    covered: int
    student_accuracy: float
    llm_accuracy: float
    tolerance: float
    student_macro_f1: float = float("nan")
    llm_macro_f1: float = float("nan")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose_threshold(
    confidence: npt.ArrayLike,
    student_right: npt.ArrayLike,
    llm_right: npt.ArrayLike,
    *,
    tolerance: float,
    min_support: int,
    labels: tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike] | None = None,
) -> BudgetThreshold:
    """The lowest confidence t such that, over the answers whose student confidence is ≥ t
    (at least `min_support` of them), the student's accuracy is at most `tolerance` under the
    LLM's on the same answers — and, with `labels` (the human's, the student's and the LLM's
    label index per answer), its macro-F1 too.

    Answers are ranked by the student's confidence; every prefix of that ranking (cut between
    distinct confidences) is a candidate share, and the largest one that keeps the accuracy
    (and the macro-F1) wins. The comparison is paired (the same utterances for both sources),
    so the LLM's own hard cases count against it as they would in the corpus.
    """
    conf = np.asarray(confidence, dtype=np.float64)
    student = np.asarray(student_right, dtype=np.float64)
    llm = np.asarray(llm_right, dtype=np.float64)
    if not (len(conf) == len(student) == len(llm)):
        raise ValueError("confidence, student_right and llm_right differ in length")
    given = None if labels is None else [np.asarray(x, dtype=np.int64) for x in labels]
    if given is not None and any(len(x) != len(conf) for x in given):
        raise ValueError("labels and confidence differ in length")
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
    student_f1 = llm_f1 = np.full(len(conf), np.nan)
    if given is not None:
        truth, by_student, by_llm = (x[order] for x in given)
        student_f1, llm_f1 = prefix_macro_f1(truth, by_student, by_llm)
        keeps &= student_f1 >= llm_f1 - tolerance - 1e-12
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
        student_macro_f1=float(student_f1[last]),
        llm_macro_f1=float(llm_f1[last]),
    )


def prefix_macro_f1(
    truth: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The macro-F1 of the labels `a` and of `b` against `truth` over every prefix (the first
    1, 2, … answers), both averaged over the same classes: those the prefix's truth, `a` or
    `b` holds. A source scores 1 on a class that neither the truth nor it holds (nothing to
    find, nothing said wrongly), so a class one source invents costs that source only."""
    classes = int(max(truth.max(), a.max(), b.max())) + 1
    one_hot = np.eye(classes, dtype=np.int64)
    support = np.cumsum(one_hot[truth], axis=0)
    said_a = np.cumsum(one_hot[a], axis=0)
    said_b = np.cumsum(one_hot[b], axis=0)
    present = (support + said_a + said_b) > 0

    def macro(said: np.ndarray, hits: np.ndarray) -> np.ndarray:
        tp = np.cumsum(one_hot[truth] * hits[:, None], axis=0)
        denominator = support + said
        f1 = np.divide(
            2 * tp, denominator, out=np.ones(tp.shape), where=denominator > 0
        )
        mean: np.ndarray = (f1 * present).sum(axis=1) / present.sum(axis=1)
        return mean

    return macro(said_a, a == truth), macro(said_b, b == truth)
