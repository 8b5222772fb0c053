"""Evaluation metrics over predicted probabilities: accuracy, macro-F1, per class, ECE."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch


@dataclass
class ClassMetrics:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class Metrics:
    """Scores of predictions against gold labels (`n` examples)."""

    n: int
    accuracy: float
    macro_f1: float
    ece: float
    per_class: dict[str, ClassMetrics] = field(default_factory=dict)

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
    n = confidence.numel()
    if n == 0:
        return 0.0
    index = (confidence * bins).long().clamp(max=bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            gap = correct[mask].float().mean() - confidence[mask].float().mean()
            total += mask.sum().item() / n * abs(gap.item())
    return total


def classification_metrics(
    probabilities: torch.Tensor,
    gold: torch.Tensor,
    labels: list[str],
    *,
    bins: int = 15,
) -> Metrics:
    """Accuracy, macro-F1 (over classes present in gold or predictions), per-class P/R/F1, ECE.

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
    per_class: dict[str, ClassMetrics] = {}
    f1s = []
    for c, name in enumerate(labels):
        tp = int(((predicted == c) & (gold == c)).sum())
        n_pred = int((predicted == c).sum())
        support = int((gold == c).sum())
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / support if support else 0.0
        f1 = (
            2 * precision * recall / (precision + recall) if precision + recall else 0.0
        )
        per_class[name] = ClassMetrics(precision, recall, f1, support)
        if support or n_pred:  # a class absent from both says nothing about this sample
            f1s.append(f1)
    return Metrics(
        n=n,
        accuracy=correct.float().mean().item(),
        macro_f1=sum(f1s) / len(f1s),
        ece=expected_calibration_error(confidence, correct, bins),
        per_class=per_class,
    )
