"""The objectives of learner/loss.py on hand-computed values (DESIGN.md, "Learner: objectives")."""

from __future__ import annotations

import math

import pytest
import torch

from learner import loss
from learner.data import Example, targets
from learner.loss import PrefOptions


def logits_for(probabilities: list[list[float]]) -> torch.Tensor:
    return torch.tensor(probabilities).log().requires_grad_()


def test_ce_is_minus_the_log_probability_of_the_label():
    value = loss.ce(torch.tensor([[0.0, 0.0]]), torch.tensor([0]))
    assert value.item() == pytest.approx(math.log(2))


def test_kd_is_zero_when_the_student_matches_the_soft_label_and_the_kl_otherwise():
    soft = torch.tensor([[0.7, 0.2, 0.1]])
    assert loss.kd(soft.log(), soft).item() == pytest.approx(0.0, abs=1e-7)
    # KL((0.5, 0.5) ‖ (0.9, 0.1)) = 0.5 log(0.5/0.9) + 0.5 log(0.5/0.1)
    expected = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    value = loss.kd(torch.tensor([[0.9, 0.1]]).log(), torch.tensor([[0.5, 0.5]]))
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_kd_takes_one_hot_targets():
    value = loss.kd(torch.tensor([[0.25, 0.75]]).log(), torch.tensor([[0.0, 1.0]]))
    assert value.item() == pytest.approx(-math.log(0.75), rel=1e-6)


def test_llmr_reward_is_the_centred_teacher_log_score():
    reward = loss.llmr_reward(torch.tensor([[0.5, 0.25, 0.25]]))
    logs = [math.log(0.5), math.log(0.25), math.log(0.25)]
    mean = sum(logs) / 3
    assert reward[0].tolist() == pytest.approx([v - mean for v in logs], rel=1e-6)
    assert reward.sum().item() == pytest.approx(0.0, abs=1e-6)


def test_llmr_value_is_minus_the_expected_reward_plus_entropy_bonus():
    q = torch.tensor([[0.6, 0.4]])
    soft = torch.tensor([[0.8, 0.2]])
    r = [
        math.log(0.8) - (math.log(0.8) + math.log(0.2)) / 2,
        math.log(0.2) - (math.log(0.8) + math.log(0.2)) / 2,
    ]
    h = -(0.6 * math.log(0.6) + 0.4 * math.log(0.4))
    expected = -(0.6 * r[0] + 0.4 * r[1] + 0.5 * h)
    assert loss.llmr(q.log(), soft, entropy_weight=0.5).item() == pytest.approx(
        expected, rel=1e-6
    )


@pytest.mark.parametrize("entropy_weight", [0.0, 0.3])
def test_llmr_gradient_equals_the_exact_expectation_of_the_policy_gradient(
    entropy_weight,
):
    torch.manual_seed(0)
    z = torch.randn(5, 4, requires_grad=True)
    soft = torch.softmax(torch.randn(5, 4), dim=-1)
    loss.llmr(z, soft, entropy_weight).backward()
    # REINFORCE: ∇E_q[r] = Σ_c q(c) r(c) ∇log q(c); with the entropy bonus the reward of c
    # becomes r(c) − λ(log q(c) + 1) (∇H = −Σ_c q(c) (log q(c) + 1) ∇log q(c)).
    q = torch.softmax(z.detach(), dim=-1)
    reward = loss.llmr_reward(soft) - entropy_weight * (q.log() + 1)
    # ∂ log q(c) / ∂ z(k) = 1[c = k] − q(k)
    eye = torch.eye(4)
    grad = torch.einsum("nc,nc,nck->nk", q, reward, eye[None] - q[:, None, :])
    assert torch.allclose(z.grad, -grad / 5, atol=1e-6)


def test_llmr_monte_carlo_estimate_converges_to_its_gradient():
    torch.manual_seed(1)
    z = torch.randn(1, 3, requires_grad=True)
    soft = torch.tensor([[0.7, 0.2, 0.1]])
    loss.llmr(z, soft).backward()
    samples = torch.distributions.Categorical(logits=z.detach()).sample((200_000,))[
        :, 0
    ]
    q = torch.softmax(z.detach(), dim=-1)[0]
    score = torch.nn.functional.one_hot(samples, 3).float() - q  # ∇_z log q(sample)
    estimate = -(loss.llmr_reward(soft)[0][samples, None] * score).mean(dim=0)
    assert torch.allclose(z.grad[0], estimate, atol=5e-3)


def test_llmr_with_full_entropy_weight_is_optimal_at_the_teacher():
    soft = torch.tensor([[0.6, 0.3, 0.1]])
    z = soft.log().clone().requires_grad_()
    loss.llmr(z, soft, entropy_weight=1.0).backward()
    assert z.grad.abs().max().item() < 1e-5


def _pref(logits, soft, agreement=None, group=None, position=None, **options):
    n = soft.shape[0]
    return loss.pref(
        logits,
        soft,
        torch.ones(n) if agreement is None else torch.tensor(agreement),
        torch.zeros(n, dtype=torch.long) if group is None else torch.tensor(group),
        torch.arange(n) if position is None else torch.tensor(position),
        PrefOptions(**options),
        trim=True,
    )


def test_pref_matches_the_formula_on_one_pair():
    # Two utterances, two classes. ȳ_0 = (0.9, 0.1), ȳ_1 = (0.2, 0.8): class 0 prefers 0 over 1
    # by Δ = 0.7, class 1 prefers 1 over 0 by Δ = 0.7. Student: q_0 = (0.6, 0.4), q_1 = (0.5, 0.5).
    soft = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    z = logits_for([[0.6, 0.4], [0.5, 0.5]])
    gamma = 2.0
    gap0 = math.log(0.6) - math.log(0.5)  # s_0(0) − s_1(0)
    gap1 = math.log(0.5) - math.log(0.4)  # s_1(1) − s_0(1)
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    expected = (softplus(gamma * 0.7 - gap0) + softplus(gamma * 0.7 - gap1)) / 2
    assert _pref(
        z, soft, gamma=gamma, tau=0.1, form="softplus"
    ).item() == pytest.approx(expected, rel=1e-5)
    hinged = (max(0.0, gamma * 0.7 - gap0) + max(0.0, gamma * 0.7 - gap1)) / 2
    assert _pref(z, soft, gamma=gamma, tau=0.1).item() == pytest.approx(
        hinged, rel=1e-5
    )
    assert (
        PrefOptions().form == "hinge"
    )  # the default since it won on dev (docs/distillation.md)


def test_pref_hinge_is_zero_when_every_gap_exceeds_its_margin():
    soft = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    z = torch.tensor(
        [[5.0, -5.0], [-5.0, 5.0]], requires_grad=True
    )  # gaps ≈ 10 ≫ γΔ = 0.7
    value = _pref(z, soft, form="hinge", gamma=1.0)
    assert value.item() == 0.0
    value.backward()
    assert z.grad.abs().max().item() == 0.0
    assert (
        0 < _pref(z, soft, form="softplus").item() < 1e-3
    )  # softplus only tends to zero


@pytest.mark.parametrize("form", ["softplus", "hinge", "mse"])
def test_pref_grows_with_the_llm_preference_gap(form):
    z = logits_for([[0.5, 0.5], [0.5, 0.5]])  # the student has no preference yet
    values = [
        _pref(
            z,
            torch.tensor([[0.5 + d / 2, 0.5 - d / 2], [0.5 - d / 2, 0.5 + d / 2]]),
            form=form,
            tau=0.05,
        ).item()
        for d in (0.2, 0.5, 0.9)
    ]
    assert values[0] < values[1] < values[2]


def test_pairs_under_tau_contribute_nothing():
    # Utterances 0 and 1 differ by Δ = 0.05 < τ: only their pairs with utterance 2 count.
    soft = torch.tensor([[0.80, 0.20], [0.75, 0.25], [0.10, 0.90]])
    torch.manual_seed(0)
    z = torch.randn(3, 2)
    s = torch.log_softmax(z, dim=-1)
    kept = [(0, 2, 0), (1, 2, 0), (2, 0, 1), (2, 1, 1)]  # (i, j, class) with Δ > τ
    terms = [
        torch.nn.functional.softplus((soft[i, c] - soft[j, c]) - (s[i, c] - s[j, c]))
        for i, j, c in kept
    ]
    assert _pref(z, soft, tau=0.1, form="softplus").item() == pytest.approx(
        sum(terms).item() / 4, rel=1e-6
    )
    assert _pref(z, soft, tau=0.95).item() == 0.0  # τ above every Δ: nothing is left


def test_a_near_tie_pair_has_no_gradient_through_it():
    soft = torch.tensor([[0.80, 0.20], [0.75, 0.25]])
    z = torch.randn(2, 2, requires_grad=True)
    value = _pref(z, soft, tau=0.1)
    value.backward()
    assert value.item() == 0.0
    assert z.grad.abs().max().item() == 0.0


def test_the_margin_mse_regresses_the_student_gap_on_the_teacher_gap():
    soft = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    z = logits_for([[0.6, 0.4], [0.5, 0.5]])
    s = torch.log_softmax(z, dim=-1)
    # kept pairs: (0, 1) on class 0 and (1, 0) on class 1, Δ = 0.7 each
    terms = [
        (s[0, 0] - s[1, 0] - 2.0 * math.log(0.9 / 0.2)) ** 2,
        (s[1, 1] - s[0, 1] - 2.0 * math.log(0.8 / 0.1)) ** 2,
    ]
    assert _pref(z, soft, form="mse", gamma=2.0).item() == pytest.approx(
        sum(terms).item() / 2, rel=1e-5
    )
    # zero, with no gradient, where the student's log-probabilities are the teacher's
    z = soft.log().clone().requires_grad_(True)
    value = _pref(z, soft, form="mse")
    value.backward()
    assert value.item() == pytest.approx(0.0, abs=1e-10)
    assert z.grad.abs().max().item() < 1e-6
    # a human one-hot asks for a gap of log(1 / MSE_FLOOR), not of log(1 / EPS)
    one_hot = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z = torch.tensor(
        [[math.log(1 / loss.MSE_FLOOR), 0.0], [0.0, math.log(1 / loss.MSE_FLOOR)]]
    )
    assert _pref(z, one_hot, form="mse").item() < 1e-4


def test_near_ties_routed_to_kd_are_distilled_not_dropped():
    soft = torch.tensor([[0.80, 0.20], [0.75, 0.25]])  # Δ = 0.05 ≤ τ on both classes
    z = torch.zeros(2, 2, requires_grad=True)  # the student has no preference
    assert _pref(z, soft, tau=0.1).item() == 0.0  # dropped by default
    value = _pref(z, soft, tau=0.1, ties="kd")
    s = torch.log_softmax(z.detach(), dim=-1)
    t = soft.log()
    # ordered pairs with 0 ≤ Δ ≤ τ: (0, 1) on class 0, (1, 0) on class 1
    expected = (
        (s[0, 0] - s[1, 0] - (t[0, 0] - t[1, 0])) ** 2
        + (s[1, 1] - s[0, 1] - (t[1, 1] - t[0, 1])) ** 2
    ) / 2
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    value.backward()
    assert z.grad.abs().max().item() > 0  # the weak preference is learnt
    # and the ranking pairs keep their own term beside it
    soft3 = torch.tensor([[0.80, 0.20], [0.75, 0.25], [0.10, 0.90]])
    z3 = torch.randn(3, 2)
    assert (
        _pref(z3, soft3, tau=0.1, ties="kd").item() > _pref(z3, soft3, tau=0.1).item()
    )


def test_unknown_pref_forms_are_refused():
    with pytest.raises(ValueError, match="form"):
        PrefOptions(form="squared")
    with pytest.raises(ValueError, match="ties"):
        PrefOptions(ties="keep")


def test_pairs_are_drawn_inside_a_dialogue_unless_crossing_is_asked_for():
    soft = torch.tensor([[0.9, 0.1], [0.1, 0.9]])
    z = logits_for([[0.5, 0.5], [0.5, 0.5]])
    assert _pref(z, soft, group=[0, 1]).item() == 0.0
    assert _pref(z, soft, group=[0, 1], cross_dialogue=True).item() > 0.0


def test_the_window_limits_pairs_to_nearby_turns():
    i, j = loss.pair_indices(
        torch.zeros(4, dtype=torch.long), torch.arange(4), window=1
    )
    assert sorted(zip(i.tolist(), j.tolist(), strict=True)) == [
        (0, 1),
        (1, 0),
        (1, 2),
        (2, 1),
        (2, 3),
        (3, 2),
    ]
    i, _ = loss.pair_indices(torch.zeros(4, dtype=torch.long), torch.arange(4))
    assert i.numel() == 12


def test_pairs_the_prompts_disagree_on_weigh_less():
    soft = torch.tensor([[0.9, 0.1], [0.1, 0.9]])
    z = logits_for([[0.5, 0.5], [0.5, 0.5]])
    full = _pref(z, soft, agreement=[1.0, 1.0]).item()
    assert _pref(z, soft, agreement=[0.5, 0.8]).item() == pytest.approx(
        full * 0.4, rel=1e-6
    )
    assert _pref(z, soft, agreement=[0.5, 0.8], weighted=False).item() == pytest.approx(
        full
    )


def test_trimming_drops_the_largest_losses():
    # Three pairs (per class): one where the student is badly wrong.
    soft = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.5, 0.5]])
    z = logits_for([[0.1, 0.9], [0.9, 0.1], [0.5, 0.5]])
    full = _pref(z, soft, tau=0.3).item()
    trimmed = _pref(z, soft, tau=0.3, trim=0.5).item()
    assert trimmed < full


def test_a_human_label_overrides_the_llm_soft_label():
    ex = [
        Example("d", 0, "A", "hi", llm=((0.9, 0.1), (0.7, 0.3)), human=1),
        Example("d", 1, "B", "yo", llm=((0.9, 0.1), (0.5, 0.5))),
        Example("e", 0, "A", "ok", human=0),
    ]
    t = targets(ex, 2)
    assert t.soft.tolist() == [[0.0, 1.0], pytest.approx([0.7, 0.3]), [1.0, 0.0]]
    assert t.agreement.tolist() == [1.0, pytest.approx(0.8), 1.0]
    assert t.hard.tolist() == [1, 0, 0]
    assert t.human.tolist() == [1, -1, 0]
    assert t.group.tolist() == [0, 0, 1]
    # a human label yields exact pairs: utterance 0 now prefers class 1 over utterance 1
    z = logits_for([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])
    assert loss.pref(z, t.soft, t.agreement, t.group, t.position).item() > 0
    # without human labels (stage 1 of the two-stage variant) the LLM label stands
    assert targets(ex, 2, use_human=False).soft[0].tolist() == pytest.approx([0.8, 0.2])
