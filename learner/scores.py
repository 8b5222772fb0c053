"""Scores from counts, without torch (the web process uses them): per-class precision, recall
and F1 from a confusion matrix, ECE from calibration bins, Cohen's κ. `learner.metrics` scores
tensors with the same functions, so every figure Parley shows has one definition."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ClassScore:
    """One class of a confusion matrix; precision/recall are None where undefined (0/0)."""

    precision: float | None
    recall: float | None
    f1: float
    support: int  # reference (gold) count
    predicted: int


def per_class_scores(matrix: Sequence[Sequence[int]]) -> list[ClassScore]:
    """Per class c of a C×C matrix (rows: reference, columns: predicted)."""
    size = len(matrix)
    out = []
    for c in range(size):
        tp = matrix[c][c]
        predicted = sum(matrix[r][c] for r in range(size))
        support = sum(matrix[c])
        precision = tp / predicted if predicted else None
        recall = tp / support if support else None
        f1 = (
            2 * precision * recall / (precision + recall)
            if precision and recall
            else 0.0
        )
        out.append(ClassScore(precision, recall, f1, support, predicted))
    return out


def macro_f1(scores: Sequence[ClassScore]) -> float | None:
    """Mean F1 over the classes present in the reference or the predictions."""
    present = [s.f1 for s in scores if s.support or s.predicted]
    return sum(present) / len(present) if present else None


def accuracy(matrix: Sequence[Sequence[int]]) -> float | None:
    n = sum(map(sum, matrix))
    return sum(matrix[c][c] for c in range(len(matrix))) / n if n else None


def ece_from_bins(bins: Iterable[tuple[int, float, float]]) -> float | None:
    """ECE = Σ_b (n_b / n) · |accuracy_b − mean confidence_b|, from (n_b, mean confidence_b,
    accuracy_b) per non-empty bin; None without any item."""
    rows = list(bins)
    total = sum(n for n, _, _ in rows)
    if not total:
        return None
    return sum(n / total * abs(acc - conf) for n, conf, acc in rows)


def cohen_kappa(matrix: dict[tuple[int, int], int]) -> float | None:
    """Cohen's κ from {(label of rater a, label of rater b): count}; None without items."""
    n = sum(matrix.values())
    if n == 0:
        return None
    observed = sum(c for (a, b), c in matrix.items() if a == b) / n
    rows: dict[int, int] = defaultdict(int)
    cols: dict[int, int] = defaultdict(int)
    for (a, b), c in matrix.items():
        rows[a] += c
        cols[b] += c
    expected = sum(rows[k] * cols.get(k, 0) for k in rows) / (n * n)
    if expected == 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - expected) / (1.0 - expected)
