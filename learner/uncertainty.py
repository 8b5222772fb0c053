"""Uncertainty of predicted distributions: pure functions over (N, C) probability tensors.

Higher means less certain for all three, so any of them can order a queue (most uncertain
first), as in modAL and small-text.
"""

from __future__ import annotations

import torch


def entropy(probabilities: torch.Tensor) -> torch.Tensor:
    """(N,) Shannon entropy in nats; 0 for a one-hot, log C for the uniform distribution."""
    return -torch.xlogy(probabilities, probabilities).sum(dim=-1)


def margin(probabilities: torch.Tensor) -> torch.Tensor:
    """(N,) 1 − (p_top1 − p_top2): 0 when one class has all the mass, 1 on a tie."""
    top = probabilities.topk(2, dim=-1).values
    return 1.0 - (top[..., 0] - top[..., 1])


def least_confidence(probabilities: torch.Tensor) -> torch.Tensor:
    """(N,) 1 − max_c p(c)."""
    return 1.0 - probabilities.max(dim=-1).values
