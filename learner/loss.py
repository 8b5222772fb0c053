"""The student's training objectives, as specified in DESIGN.md ("Learner: objectives").

Notation: logits z (N, C); s = log_softmax(z); ȳ (N, C) the ensemble soft label (a human
label replaces it by a one-hot, see `data.targets`); a (N,) the prompt agreement.

- `ce`: cross-entropy on the hard label argmax ȳ ("fine-tune on LLM labels").
- `kd`: KL(ȳ ‖ softmax z) ("conventional distillation").
- `llmr`: LLMR (Li, Hao, Mou, LREC-COLING 2024, arXiv 2409.12500) reduced to one decision step:
  reward r(c) = log ȳ(c) − mean_c log ȳ(c), objective E_{c∼q}[r(c)] + λ·H(q), computed
  exactly over the C classes.
- `pref`: the noise-reduced intra-dialogue preference loss (Liu, Kong et al., NAACL 2025
  Industry, arXiv 2503.05620), our specification: for each class c and each pair (i, j) of
  one dialogue with Δ = ȳ_i(c) − ȳ_j(c) > τ, ℓ = a_i·a_j · softplus(γ·Δ − (s_i(c) − s_j(c))),
  or with the hinge max(0, ·) in place of softplus (DESIGN.md's ablation; the default, as it
  won on dev), or a margin-MSE (the student's log-probability gap regressed on the
  teacher's); near-ties (Δ ≤ τ) dropped, or routed to that pairwise distillation
  (`PrefOptions.ties`, issue 17).

Every function returns a scalar to minimise and is differentiable in the logits only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

EPS = 1e-6
"""Floor on teacher probabilities where their log is taken (a one-hot has zeros)."""


def ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of `logits` (N, C) against class indices `labels` (N,)."""
    return F.cross_entropy(logits, labels)


def kd(logits: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """Mean KL(ȳ ‖ softmax z) over the batch; 0 when the student matches ȳ exactly."""
    log_q = F.log_softmax(logits, dim=-1)
    return (torch.xlogy(soft, soft) - soft * log_q).sum(dim=-1).mean()


def llmr_reward(soft: torch.Tensor) -> torch.Tensor:
    """r(c) = log ȳ(c) − mean_c log ȳ(c): the teacher-induced reward, centred per utterance."""
    log_p = soft.clamp_min(EPS).log()
    return log_p - log_p.mean(dim=-1, keepdim=True)


def llmr(
    logits: torch.Tensor, soft: torch.Tensor, entropy_weight: float = 0.0
) -> torch.Tensor:
    """−(E_{c∼q}[r(c)] + λ·H(q)), the expectation taken exactly over the C classes.

    Its gradient is the exact expectation of the REINFORCE estimator r(c)·∇log q(c) (plus the
    entropy term), so no sampling noise. With λ = 1 the optimum is q = ȳ up to the floor EPS;
    smaller λ makes the student sharper than the teacher (mode seeking, like reverse KL).
    """
    q = F.softmax(logits, dim=-1)
    log_q = F.log_softmax(logits, dim=-1)
    expected_reward = (q * llmr_reward(soft)).sum(dim=-1)
    entropy = -(q * log_q).sum(dim=-1)
    return -(expected_reward + entropy_weight * entropy).mean()


def pair_indices(
    group: torch.Tensor,
    position: torch.Tensor,
    *,
    window: int = 0,
    cross_dialogue: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ordered pairs (i, j), i ≠ j, of the same group (dialogue), optionally |pos_i − pos_j| ≤ window.

    Args:
        group: (N,) dialogue index of each example.
        position: (N,) turn position of each example.
        window: 0 for every pair of the dialogue, else the largest distance in turns.
        cross_dialogue: pairs across dialogues too (the control of the ablation).

    Returns:
        Two (P,) index tensors.
    """
    n = group.shape[0]
    mask = ~torch.eye(n, dtype=torch.bool, device=group.device)
    if not cross_dialogue:
        mask &= group[:, None] == group[None, :]
        if window > 0:
            mask &= (position[:, None] - position[None, :]).abs() <= window
    i, j = mask.nonzero(as_tuple=True)
    return i, j


FORMS = ("hinge", "softplus", "mse")
TIES = ("drop", "kd")
MSE_FLOOR = 0.01
"""Floor on teacher probabilities in the margin-MSE target: a human one-hot asks for a
log-probability gap of at most log(1 / 0.01) ≈ 4.6, not log(1 / EPS) ≈ 13.8."""


@dataclass(frozen=True)
class PrefOptions:
    """Knobs of the preference loss (DESIGN.md; the defaults are what won on dev)."""

    gamma: float = 1.0
    """Margin scale γ: the score gap asked for is γ·Δ (γ times the teacher's log gap for
    `mse`)."""
    tau: float = 0.1
    """Pairs with Δ ≤ τ are near-ties: dropped, or routed as `ties` says."""
    window: int = 0
    """Only pairs at most this many turns apart (0: the whole dialogue)."""
    form: str = "hinge"
    """The pair term: "hinge" max(0, γΔ − gap), exactly zero once the gap exceeds the margin;
    "softplus" softplus(γΔ − gap), which keeps widening gaps the teacher barely asked for (it
    lost on dev, badly on sentiment); "mse" (gap − γ·(log ȳ_i(c) − log ȳ_j(c)))², a
    margin-MSE: the student's log-probability gap regressed on the teacher's."""
    ties: str = "drop"
    """Near-tie pairs (0 ≤ Δ ≤ τ): "drop" (they contribute nothing) or "kd" (they are weak
    preferences, not noise: each gets the margin-MSE term, whose mean is added to the
    ranking term's — a pairwise distillation of the teacher's small gaps)."""
    trim: float = 0.0
    """Drop this fraction of the pairs with the largest loss (small-loss trick), after warm-up."""
    weighted: bool = True
    """Weight each pair by a_i·a_j (pairs the prompts disagree on count less)."""
    cross_dialogue: bool = False
    """Draw pairs across dialogues too (control)."""

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {self.form!r}")
        if self.ties not in TIES:
            raise ValueError(f"ties must be one of {TIES}, got {self.ties!r}")


def pref(
    logits: torch.Tensor,
    soft: torch.Tensor,
    agreement: torch.Tensor,
    group: torch.Tensor,
    position: torch.Tensor,
    options: PrefOptions = PrefOptions(),
    *,
    trim: bool = False,
) -> torch.Tensor:
    """The noise-reduced intra-dialogue preference loss.

    For every class c and pair (i, j) of one dialogue with Δ = ȳ_i(c) − ȳ_j(c) > τ:
    ℓ = w_ij · f(γ·Δ − (s_i(c) − s_j(c))), w_ij = a_i·a_j, s = log_softmax(z), f the hinge
    (the default) or softplus; or, for `options.form` "mse", ℓ = w_ij · (s_i(c) − s_j(c) −
    γ·(log ȳ_i(c) − log ȳ_j(c)))². The mean is over the pairs that pass τ (kept after
    trimming); 0 when there are none. With `options.ties` "kd", the near-tie pairs
    (0 ≤ Δ ≤ τ) add the mean of their margin-MSE terms.

    Args:
        logits: (N, C) student logits.
        soft: (N, C) teacher soft labels ȳ (one-hot for human labels).
        agreement: (N,) prompt agreement a (1 for human labels).
        group, position: (N,) dialogue index and turn position, for `pair_indices`.
        options: γ, τ, window, pair term, near-ties, trimming fraction, weighting,
            cross-dialogue pairs.
        trim: apply `options.trim` (the caller turns it on after warm-up).
    """
    i, j = pair_indices(
        group, position, window=options.window, cross_dialogue=options.cross_dialogue
    )
    zero = logits.sum() * 0.0
    if i.numel() == 0:
        return zero
    s = F.log_softmax(logits, dim=-1)
    delta = soft[i] - soft[j]  # (P, C)
    gap = s[i] - s[j]  # (P, C)
    weight = (
        (agreement[i, None] * agreement[j, None]).expand_as(delta)
        if options.weighted
        else torch.ones_like(delta)
    )
    teacher_gap = (
        None  # (P, C): the teacher's log-probability gap, for margin-MSE terms
    )
    if options.form == "mse" or options.ties == "kd":
        log_teacher = soft.clamp_min(MSE_FLOOR).log()
        teacher_gap = options.gamma * (log_teacher[i] - log_teacher[j])
    value = zero
    keep = delta > options.tau
    if keep.any():
        if teacher_gap is not None and options.form == "mse":
            raw = (gap[keep] - teacher_gap[keep]) ** 2
        else:
            margin = options.gamma * delta[keep] - gap[keep]
            raw = F.relu(margin) if options.form == "hinge" else F.softplus(margin)
        raw = raw * weight[keep]
        if trim and options.trim > 0:
            n_keep = max(1, int(round(raw.numel() * (1.0 - options.trim))))
            raw = raw.topk(n_keep, largest=False).values
        value = value + raw.mean()
    if teacher_gap is not None and options.ties == "kd":
        ties = (delta >= 0) & (delta <= options.tau)
        if ties.any():
            value = value + (weight[ties] * (gap[ties] - teacher_gap[ties]) ** 2).mean()
    return value
