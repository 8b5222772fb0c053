"""Prompt-bank ensembles: soft labels and prompt agreement (DESIGN.md, "Learner").

ȳ_i = mean_m p_m(·|i) is the ensemble soft label; a_i = 1 − mean_m TV(p_m, ȳ_i) the prompt
agreement, where TV is the total-variation distance. Pure Python over short lists (a task has
a handful of classes), so it is cheap per utterance and needs no numpy or torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


def soft_label(distributions: Sequence[Sequence[float]]) -> list[float]:
    """Mean of the per-prompt distributions.

    Args:
        distributions: M distributions over the same C classes, each summing to 1.

    Returns:
        The C-long mean distribution.
    """
    if not distributions:
        raise ValueError("soft_label needs at least one distribution")
    m = len(distributions)
    return [sum(column) / m for column in zip(*distributions, strict=True)]


def agreement(distributions: Sequence[Sequence[float]], mean: Sequence[float]) -> float:
    """1 − the mean total-variation distance of each distribution from `mean`.

    1.0 when every prompt gives the same distribution; lower as they spread apart.
    """
    if not distributions:
        raise ValueError("agreement needs at least one distribution")
    total = 0.0  # Σ_m Σ_c |p_m(c) − ȳ(c)|, in plain loops: an import calls this per utterance
    for dist in distributions:
        if len(dist) != len(mean):
            raise ValueError("distributions and mean differ in length")
        for p, q in zip(dist, mean):  # noqa: B905 - lengths checked above
            total += abs(p - q)
    return 1.0 - 0.5 * total / len(distributions)


def spread_confidence(
    labels: Sequence[str], label: str, confidence: float | None
) -> list[float]:
    """A verbalised answer as a distribution over `labels`: its confidence on `label`, the
    rest spread uniformly (DESIGN.md); no confidence, or a single label: all on `label`."""
    if confidence is None or len(labels) == 1:
        return [1.0 if value == label else 0.0 for value in labels]
    rest = (1.0 - confidence) / (len(labels) - 1)
    return [confidence if value == label else rest for value in labels]


class Ensemble(NamedTuple):
    """The ensemble of one utterance's prompt answers."""

    soft: list[float]  # ȳ, in label order
    label: int  # argmax ȳ (the first on a tie)
    agreement: float  # a


def ensemble_summary(distributions: Sequence[Sequence[float]]) -> Ensemble:
    """ȳ, its label and the prompts' agreement, from the prompts' distributions."""
    mean = soft_label(distributions)
    best = max(range(len(mean)), key=mean.__getitem__)
    return Ensemble(mean, best, agreement(distributions, mean))
