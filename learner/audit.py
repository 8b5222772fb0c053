"""The unbiased audit (DESIGN.md, "Trust score"; docs/active-loop.md, "Audit").

The queue serves the least trusted items first, so the answers it collects describe only the
low end of the trust range: a calibration learnt from them alone is biased exactly where the
queue stops looking. A share of the items served (PARLEY_AUDIT_FRACTION) is drawn uniformly
from the unanswered pool instead; each such answer carries its selection probability π (one
over the size of the pool it was drawn from). From those answers, weighted by 1/π (Hájek):

- `weighted_ece`: the trust ECE over the pool, and `platt_fit`: a calibration of trust;
- `audit_estimate`: the ECE and the number of wrong LLM labels left in the pool, each with a
  bootstrap 95 % interval. "Wrong left" is a difference estimator (survey sampling): the sum of
  (1 − trust) over the open items, corrected by the audit's mean of (trust − right), so that
  it is unbiased whatever the trust's calibration, and tight where trust is good.

Pure numpy; torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


def weighted_ece(
    trust: npt.ArrayLike,
    right: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
    bins: int = 10,
) -> float:
    """Expected calibration error of `trust` (P(right)) against 0/1 `right`, each answer
    weighted (default: equally), over `bins` equal-width bins."""
    t = np.asarray(trust, dtype=np.float64)
    r = np.asarray(right, dtype=np.float64)
    w = np.ones_like(t) if weights is None else np.asarray(weights, dtype=np.float64)
    if not len(t) or w.sum() <= 0:
        return float("nan")
    index = np.minimum((t * bins).astype(np.int64), bins - 1)
    total = np.bincount(index, weights=w, minlength=bins)
    gap = np.bincount(index, weights=w * t, minlength=bins) - np.bincount(
        index, weights=w * r, minlength=bins
    )
    return float(np.abs(gap[total > 0]).sum() / w.sum())


@dataclass
class Interval:
    """A point estimate and its bootstrap 95 % interval."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


@dataclass
class AuditEstimate:
    """What the audit answers say about the unanswered pool."""

    answers: int
    """Audit answers it rests on."""
    ece: Interval
    """Trust ECE over the pool (the trust each audit item had when it was served)."""
    llm_error: Interval
    """Share of the pool's LLM labels that are wrong."""
    wrong_left: Interval
    """Wrong LLM labels among the open items now."""

    def as_dict(self) -> dict[str, object]:
        return {
            "answers": self.answers,
            "ece": self.ece.as_dict(),
            "llm_error": self.llm_error.as_dict(),
            "wrong_left": self.wrong_left.as_dict(),
        }


def audit_estimate(
    trust: npt.ArrayLike,
    right: npt.ArrayLike,
    selection_probability: npt.ArrayLike,
    open_trust: npt.ArrayLike,
    current_trust: npt.ArrayLike | None = None,
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> AuditEstimate:
    """Estimates from audit answers: their trust when served, whether the LLM label was right,
    their selection probability; the current trust of every open item, and of the audit items
    (`current_trust`, default: as served). The ECE is that of the trust the queue served with;
    "wrong left" corrects the current trust's Σ (1 − trust) by the audit's mean of (current
    trust − right), so both terms measure the same trust.

    Intervals: percentile bootstrap over the audit answers (`resamples` draws with
    replacement; the open items' trust is fixed); the ECE's bias-corrected."""
    t = np.asarray(trust, dtype=np.float64)
    r = np.asarray(right, dtype=np.float64)
    w = 1.0 / np.asarray(selection_probability, dtype=np.float64)
    pool = np.asarray(open_trust, dtype=np.float64)
    now = t if current_trust is None else np.asarray(current_trust, dtype=np.float64)
    if not len(t):
        raise ValueError("audit_estimate needs at least one audit answer")
    expected_wrong = float((1.0 - pool).sum())

    def figures(index: npt.NDArray[np.int64]) -> tuple[float, float, float]:
        ww = w[index]
        bias = float((ww * (now[index] - r[index])).sum() / ww.sum())
        return (
            weighted_ece(t[index], r[index], ww),
            float((ww * (1.0 - r[index])).sum() / ww.sum()),
            min(max(expected_wrong + len(pool) * bias, 0.0), float(len(pool))),
        )

    point = np.array(figures(np.arange(len(t))))
    rng = np.random.default_rng(seed)
    draws = np.array(
        [figures(rng.integers(0, len(t), len(t))) for _ in range(resamples)]
    )
    # The ECE of a few answers is biased upwards (each bin's noise adds to its gap): correct
    # it, and shift its interval, by the bias the bootstrap shows (Efron & Tibshirani 1993,
    # §10.6). The other two estimates are unbiased as they are.
    bias = np.array([draws[:, 0].mean() - point[0], 0.0, 0.0])
    low, high = np.percentile(draws, [2.5, 97.5], axis=0) - bias
    value = point - bias
    ece, error, left = (
        Interval(
            float(max(value[k], 0.0)), float(max(low[k], 0.0)), float(max(high[k], 0.0))
        )
        for k in range(3)
    )
    return AuditEstimate(len(t), ece, error, left)


MIN_SLOPE, MAX_SLOPE = 0.25, 4.0


@dataclass
class PlattCalibration:
    """P(right) = σ(a·logit(trust) + b), fitted on weighted answers with a Gaussian prior
    centred on the identity (a = 1, b = 0) worth `prior_strength` answers, so that a few audit
    answers move it little and many learn the pool's calibration."""

    prior_strength: float = 20.0
    slope_prior_strength: float | None = None
    """The slope's prior, in answers (None: `prior_strength`); a large one fits the intercept
    alone (calibration in the large)."""
    a: float = 1.0
    b: float = 0.0

    def fit(
        self,
        trust: npt.ArrayLike,
        right: npt.ArrayLike,
        weights: npt.ArrayLike | None = None,
    ) -> PlattCalibration:
        z = _logit(np.asarray(trust, dtype=np.float64))
        y = np.asarray(right, dtype=np.float64)
        w = np.ones_like(z) if weights is None else np.asarray(weights, np.float64)
        if not len(z):
            return self
        w = w * (len(z) / w.sum())  # weights keep the answers' count: the prior's scale
        x = np.stack([z, np.ones_like(z)], axis=1)
        theta = np.array([1.0, 0.0])
        prior = np.array([1.0, 0.0])
        # each parameter's prior precision: `prior_strength` answers' worth of information at
        # p = 1/2 (for the slope, at these answers' spread of logits)
        slope = (
            self.prior_strength
            if self.slope_prior_strength is None
            else self.slope_prior_strength
        )
        precision = np.array([slope, self.prior_strength]) / 4.0
        precision[0] *= max(float((z * z).mean()), 1.0)
        for _ in range(50):
            p = _sigmoid(x @ theta)
            gradient = x.T @ (w * (p - y)) + precision * (theta - prior)
            hessian = (x * (w * p * (1 - p))[:, None]).T @ x + np.diag(precision)
            step = np.linalg.solve(hessian, gradient)
            theta -= step
            if np.abs(step).max() < 1e-9:
                break
        # A calibration re-scales trust; it must never reorder the queue: a noisy handful of
        # audit answers could otherwise fit a flat or falling curve and send the most trusted
        # labels first. The slope stays in [MIN_SLOPE, MAX_SLOPE].
        self.a = float(np.clip(theta[0], MIN_SLOPE, MAX_SLOPE))
        self.b = float(theta[1])
        return self

    def predict(self, trust: npt.ArrayLike) -> Array:
        z = _logit(np.asarray(trust, dtype=np.float64))
        return _sigmoid(self.a * z + self.b)


def _logit(p: Array) -> Array:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.asarray(np.log(p / (1 - p)))


def _sigmoid(z: Array) -> Array:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -30, 30))))
