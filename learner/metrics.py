"""Evaluation metrics over predicted probabilities: accuracy, macro-F1, per class, ECE."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .scores import ece_from_bins, macro_f1, per_class_scores


@dataclass
class ClassMetrics:
    precision: float
    recall: float
    f1: float
    support: int
    predicted: int


@dataclass
class Metrics:
    """Scores of predictions against gold labels (`n` examples)."""

    n: int
    accuracy: float
    macro_f1: float
    ece: float
    per_class: dict[str, ClassMetrics] = field(default_factory=dict)
    confusion: list[list[int]] = field(default_factory=list)
    """Counts by gold class (rows) and predicted class (columns), in `labels` order."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def expected_calibration_error(
    confidence: torch.Tensor, correct: torch.Tensor, bins: int = 15
) -> float:
    """ECE: Σ_b (n_b / n) · |accuracy_b − mean confidence_b| over equal-width confidence bins.

    Args:
        confidence: (N,) the probability given to the predicted (or any scored) label.
        correct: (N,) whether that label was right.
        bins: number of equal-width bins on [0, 1]; a confidence of exactly 1 falls in the last.
    """
    index = (confidence * bins).long().clamp(max=bins - 1)
    rows = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            rows.append(
                (
                    int(mask.sum()),
                    confidence[mask].float().mean().item(),
                    correct[mask].float().mean().item(),
                )
            )
    return ece_from_bins(rows) or 0.0


def classification_metrics(
    probabilities: torch.Tensor,
    gold: torch.Tensor,
    labels: list[str],
    *,
    bins: int = 15,
) -> Metrics:
    """Accuracy, macro-F1 (over classes present in gold or predictions), per-class P/R/F1, ECE,
    and the confusion matrix.

    Args:
        probabilities: (N, C) predicted distributions.
        gold: (N,) gold class indices.
        labels: the C class names, for `per_class`.
    """
    n = gold.numel()
    if n == 0:
        return Metrics(n=0, accuracy=0.0, macro_f1=0.0, ece=0.0)
    confidence, predicted = probabilities.max(dim=1)
    correct = predicted == gold
    size = len(labels)
    matrix = torch.zeros(size, size, dtype=torch.long)
    matrix.index_put_(
        (gold.long(), predicted), torch.ones(n, dtype=torch.long), accumulate=True
    )
    scores = per_class_scores(matrix.tolist())
    per_class = {
        name: ClassMetrics(
            s.precision or 0.0, s.recall or 0.0, s.f1, s.support, s.predicted
        )
        for name, s in zip(labels, scores, strict=True)
    }
    return Metrics(
        n=n,
        accuracy=correct.float().mean().item(),
        macro_f1=macro_f1(scores) or 0.0,
        ece=expected_calibration_error(confidence, correct, bins),
        per_class=per_class,
        confusion=matrix.tolist(),
    )
