"""What each variant of `bench.trust_replay` ranks by, and the ceiling with every answer.

`VARIANTS` names the verifier's options per variant; `priority` is a variant's trust of every
utterance from the answers so far; `ceiling` what the signals could do with every answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from bench.trust_replay import Pool

VARIANTS: dict[str, dict[str, Any]] = {
    # name: options (knn, margin: extra verifier signals; base: what the verifier corrects;
    # audit: the audit share, default --audit-fraction; diversity: the rule on or off)
    "llm_confidence": {},
    "heuristic": {},
    "trust_v1": {},
    "trust": {},  # the product's verifier
    "trust-nocontext": {"context": None},
    "trust-context-raw": {"context": "raw"},
    "trust+knn": {"knn": True},
    "trust+margin": {"margin": True},
    "trust+knn+margin": {"knn": True, "margin": True},
    "trust+logits": {"logits": True},
    "trust+logits+knn": {"logits": True, "knn": True},
    "trust-llmbase": {"base": "llm"},
    "trust+errknn": {"errknn": "any"},
    "trust+errknn-same": {"errknn": "same"},
    "trust-noaudit": {"audit": 0.0},
    "trust-nodiversity": {"diversity": False},
    "trust-prior5": {"prior": 5.0},
    "trust-prior5-min5": {"prior": 5.0, "min_audit": 5},
    "trust-prior2-min5": {"prior": 2.0, "min_audit": 5},
    "trust-calall": {"calibrate_on": "all"},
    "trust-l2-1": {"l2": 1.0},
    "trust-l2-0.2": {"l2": 0.2},
    "trust-l2-0.01": {"l2": 0.01},
    "trust-intercept2": {"prior": 2.0, "slope_prior": 1000.0},
    "trust-intercept5": {"prior": 5.0, "slope_prior": 1000.0},
    "trust-intercept2-min5": {"prior": 2.0, "slope_prior": 1000.0, "min_audit": 5},
    "llm_confidence-noaudit": {"audit": 0.0},
    "llm_confidence-nodiversity": {"diversity": False},
}


def error_knn(
    pool: Pool, known: np.ndarray, *, same_label: bool, k: int = 10, prior: float = 3.0
) -> np.ndarray:
    """Per utterance: the similarity-weighted share of wrong LLM labels among its k nearest
    answered utterances (of other dialogues; with `same_label`, those the LLM gave the same
    label), shrunk towards the answered items' error rate by `prior` pseudo-answers; centred."""
    index = np.flatnonzero(known)
    wrong = (pool.labels[index] != pool.gold[index]).astype(np.float64)
    base = wrong.mean()
    similarity = pool.embeddings @ pool.embeddings[index].T
    similarity[pool.dialogue[:, None] == pool.dialogue[index][None, :]] = -np.inf
    if same_label:
        similarity[pool.labels[:, None] != pool.labels[index][None, :]] = -np.inf
    top = min(k, len(index))
    nearest = np.argpartition(-similarity, top - 1, axis=1)[:, :top]
    weights = np.take_along_axis(similarity, nearest, axis=1)
    weights = np.where(np.isfinite(weights), np.clip(weights, 0.0, None), 0.0)
    share = (weights * wrong[nearest]).sum(axis=1) + prior * base
    centred: np.ndarray = share / (weights.sum(axis=1) + prior) - base
    return centred


def priority(
    variant: str,
    pool: Pool,
    features: np.ndarray,
    index: np.ndarray,
    audit: list[bool],
    probability: list[float],
    options: dict[str, Any],
    extra: np.ndarray,
    min_human: int,
) -> np.ndarray:
    """The variant's trust of every utterance, from the answers so far (`index`)."""
    from learner import TrustModel, Verifier, heuristic_trust

    if variant.startswith("llm_confidence"):
        return np.asarray(pool.soft.max(axis=1))
    heuristic = heuristic_trust(features)
    right = pool.labels[index] == pool.gold[index] if len(index) else np.zeros(0, bool)
    if (
        variant == "heuristic"
        or len(index) < min_human
        or right.all()
        or not right.any()
    ):
        return heuristic
    if variant == "trust_v1":
        return TrustModel().fit(features[index], right.astype(float)).predict(features)
    context = options.get("context", "logit")
    previous = None if context is None else pool.previous
    verifier = Verifier(
        pool.soft.shape[1],
        base=options.get("base", "heuristic"),
        min_audit=options.get("min_audit", 10),
        calibration_prior=options.get("prior", 20.0),
        calibrate_on=options.get("calibrate_on", "audit"),
        calibration_slope_prior=options.get("slope_prior"),
        l2=options.get("l2", 5.0),
        context_logit=context == "logit",
    ).fit(
        features[index],
        pool.votes[index],
        pool.labels[index],
        pool.gold[index],
        extra=extra[index],
        previous=None if previous is None else previous[index],
        audit=np.array(audit) if options["audit"] else None,
        weights=1.0 / np.array(probability),
    )
    return verifier.predict(
        features, pool.votes, pool.labels, extra=extra, previous=previous
    )


def ceiling(pool: Pool, budget: int, folds: int = 5) -> dict[str, int]:
    """What the signals could do with every answer: the verifier fitted on the gold labels of
    four fifths of the pool's dialogues scores the fifth (5 folds), in one pass; the wrong LLM
    labels among the `budget` least trusted. An upper bound for the loop, which has only the
    answers of its rounds."""
    from learner import Verifier, knn_agreement, signals, student_margin

    n, c = pool.soft.shape
    features = signals(pool.soft, pool.agreement, pool.student)
    wrong = pool.labels != pool.gold
    knn = knn_agreement(
        pool.embeddings,
        pool.labels,
        pool.dialogue,
        pool.embeddings,
        pool.soft,
        pool.dialogue,
    )
    margin = student_margin(pool.student, pool.labels)
    fold = pool.dialogue % folds
    out = {
        "llm_confidence": int(wrong[np.argsort(pool.soft.max(axis=1))[:budget]].sum()),
        "perfect": int(min(budget, wrong.sum())),
    }
    for name, extra, previous in (
        ("verifier", np.zeros((n, 0)), None),
        ("verifier+context", np.zeros((n, 0)), pool.previous),
        ("verifier+knn+margin", np.stack([knn, margin], axis=1), None),
    ):
        for base in ("heuristic", "llm"):
            trust = np.zeros(n)
            for k in range(folds):
                train, test = fold != k, fold == k
                right = pool.labels[train] == pool.gold[train]
                if right.all() or not right.any():  # nothing to learn from
                    trust[test] = features[test, 0]
                    continue
                verifier = Verifier(c, base=base).fit(
                    features[train],
                    pool.votes[train],
                    pool.labels[train],
                    pool.gold[train],
                    extra=extra[train],
                    previous=None if previous is None else previous[train],
                )
                trust[test] = verifier.predict(
                    features[test],
                    pool.votes[test],
                    pool.labels[test],
                    extra=extra[test],
                    previous=None if previous is None else previous[test],
                )
            out[f"{name} ({base} base)"] = int(wrong[np.argsort(trust)[:budget]].sum())
    return out
