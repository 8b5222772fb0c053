"""The audit's estimators, the new verifier signals and the diversity rule, on hand-made data."""

from __future__ import annotations

import numpy as np
import pytest

from learner import audit, diversity, trust


def _logit(p):
    return np.log(p / (1 - p))


def _population(rng, n=40_000):
    """Trust scores and outcomes whose true calibration curve is known and not a Platt curve
    of the identity: P(right | t) = σ(2·logit(t) − 0.5)."""
    t = rng.beta(5, 1.5, n)
    p_right = 1 / (1 + np.exp(-(2 * _logit(np.clip(t, 1e-4, 1 - 1e-4)) - 0.5)))
    right = rng.uniform(size=n) < p_right
    return t, p_right, right


def test_weighted_ece_on_hand_computed_values():
    # bin 0.8–0.9: mean trust 0.85, 1 of 2 right → gap 0.35; bin 0.2–0.3: 0.25 vs 0 → 0.25
    t = np.array([0.82, 0.88, 0.25])
    right = np.array([1, 0, 0])
    assert audit.weighted_ece(t, right) == pytest.approx((2 * 0.35 + 0.25) / 3)
    # weight 2 on the third answer counts it twice
    assert audit.weighted_ece(t, right, [1, 1, 2]) == pytest.approx(
        (2 * 0.35 + 2 * 0.25) / 4
    )


def test_ipw_calibration_recovers_a_known_curve_from_a_biased_sample():
    rng = np.random.default_rng(0)
    t, p_right, right = _population(rng)
    # A queue-like sample: low trust drawn far more often (π from 0.5 down to 0.01).
    pi = np.clip(0.5 * (1 - t) ** 2, 0.01, 0.5)
    drawn = rng.uniform(size=len(t)) < pi
    weighted = audit.PlattCalibration(prior_strength=1).fit(
        t[drawn], right[drawn], 1 / pi[drawn]
    )
    assert weighted.a == pytest.approx(2.0, abs=0.25)
    assert weighted.b == pytest.approx(-0.5, abs=0.25)
    assert audit.weighted_ece(weighted.predict(t), right) < 0.02
    # What the biased sample says about the population needs its weights: the share of
    # right labels, unweighted, is far off; weighted (Hájek), close.
    w = 1 / pi[drawn]
    assert abs(right[drawn].mean() - right.mean()) > 0.1
    assert abs((w * right[drawn]).sum() / w.sum() - right.mean()) < 0.02


def test_few_audit_answers_keep_the_calibration_near_the_identity():
    calibration = audit.PlattCalibration().fit([0.9, 0.2, 0.6], [0, 1, 0])
    assert calibration.a == pytest.approx(1.0, abs=0.3)
    assert calibration.predict([0.9])[0] == pytest.approx(0.9, abs=0.15)


def test_the_audit_estimate_covers_the_truth_and_corrects_a_miscalibrated_trust():
    rng = np.random.default_rng(1)
    t, _, right = _population(rng, 20_000)
    open_ = np.arange(len(t)) >= 1000  # the pool left
    truth_left = int((~right[open_]).sum())
    naive = float((1 - t[open_]).sum())  # believes the trust
    draws = rng.choice(np.flatnonzero(open_), 400, replace=False)
    estimate = audit.audit_estimate(
        t[draws], right[draws], np.full(400, 1 / open_.sum()), t[open_]
    )
    assert estimate.answers == 400
    assert estimate.wrong_left.low <= truth_left <= estimate.wrong_left.high
    assert abs(estimate.wrong_left.value - truth_left) < abs(naive - truth_left)
    true_ece = audit.weighted_ece(t[open_], right[open_])
    assert estimate.ece.low <= true_ece <= estimate.ece.high
    assert estimate.llm_error.low <= (~right[open_]).mean() <= estimate.llm_error.high


def test_the_audit_estimate_needs_an_answer():
    with pytest.raises(ValueError, match="at least one"):
        audit.audit_estimate([], [], [], [0.5])


def test_the_student_margin():
    q = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    assert trust.student_margin(q, np.array([0, 0])).tolist() == pytest.approx(
        [(0.5 + 1) / 2, (-0.7 + 1) / 2]
    )


def test_knn_agreement_reads_the_neighbours_of_other_dialogues():
    e = np.array([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0], [0.98, 0.2]])
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    labels = np.eye(2)[[0, 1, 1, 0]]  # the reference's labels
    groups = np.array([1, 2, 3, 1])
    out = trust.knn_agreement(e, np.array([0, 0, 1, 0]), groups, e, labels, groups, k=1)
    # item 0's nearest of another dialogue is item 1 (label 1): disagrees with its label 0,
    # and so does item 3 (dialogue 1, like item 0: item 0 is not its neighbour); item 1's is
    # item 0 (label 0): agrees; item 2's is item 3 (label 0): disagrees with its label 1.
    assert out.tolist() == [0.0, 1.0, 0.0, 0.0]
    # k = 2, weighted by similarity: item 1's neighbours elsewhere are items 0 and 3 (label 0)
    out = trust.knn_agreement(e, np.array([0, 0, 1, 0]), groups, e, labels, groups, k=2)
    assert out[1] == 1.0
    # no neighbour outside its own dialogue: no opinion
    lone = trust.knn_agreement(
        e[:1], np.array([0]), groups[:1], e[:1], labels[:1], groups[:1]
    )
    assert lone.tolist() == [0.5]


def test_the_verifier_uses_the_knn_signal_when_it_tells_right_from_wrong():
    rng = np.random.default_rng(4)
    n = 2000
    labels = rng.integers(0, 3, n)
    wrong = rng.uniform(size=n) < 0.3
    truth = np.where(wrong, (labels + 1) % 3, labels)
    soft = np.full((n, 3), 0.1)
    soft[np.arange(n), labels] = 0.8
    signals = trust.signals(soft, np.full(n, 0.8))
    votes = np.stack([labels, labels], axis=1)
    knn = np.where(wrong, rng.uniform(0.0, 0.5, n), rng.uniform(0.4, 1.0, n))
    half = slice(0, 1000), slice(1000, None)
    verifier = trust.Verifier(3).fit(
        signals[half[0]],
        votes[half[0]],
        labels[half[0]],
        truth[half[0]],
        extra=knn[half[0], None],
    )
    p = verifier.predict(
        signals[half[1]], votes[half[1]], labels[half[1]], extra=knn[half[1], None]
    )
    assert p[wrong[half[1]]].mean() < 0.45 < 0.8 < p[~wrong[half[1]]].mean()


def test_the_verifier_calibrates_on_the_audit_answers():
    # The queue's answers (low trust only) say the LLM is right 40 % of the time; the audit,
    # drawn uniformly, shows the pool is right 90 % of the time at the same signals.
    rng = np.random.default_rng(5)
    n = 400
    soft = np.full((n, 2), 0.25)
    soft[:, 0] = 0.75
    labels = np.zeros(n, dtype=int)
    audit = np.arange(n) < 100
    right = np.where(audit, rng.uniform(size=n) < 0.9, rng.uniform(size=n) < 0.4)
    truth = np.where(right, 0, 1)
    signals = trust.signals(soft, np.full(n, 0.7))
    votes = labels[:, None]
    plain = trust.Verifier(2).fit(signals, votes, labels, truth)
    audited = trust.Verifier(2).fit(
        signals, votes, labels, truth, audit=audit, weights=np.where(audit, 40.0, 1.0)
    )
    x = signals[:1]
    assert plain.predict(x, votes[:1], labels[:1])[0] < 0.6
    # calibrated on every answer instead (the replay's `trust-calall`, which lost): the 300
    # queue answers outweigh the 100 audits, so the curve stays nearer the queue's 40 %
    on_all = trust.Verifier(2, calibrate_on="all").fit(
        signals, votes, labels, truth, audit=audit, weights=np.where(audit, 40.0, 1.0)
    )
    assert on_all.calibration is not None
    assert (
        on_all.predict(x, votes[:1], labels[:1])[0]
        < audited.predict(x, votes[:1], labels[:1])[0] - 0.1
    )
    assert audited.calibration is not None
    assert (
        audited.predict(x, votes[:1], labels[:1])[0]
        > plain.predict(x, votes[:1], labels[:1])[0] + 0.15
    )


def test_diversify_holds_back_the_fourth_item_of_a_dialogue_unless_far_less_trusted():
    trust_ = np.array([0.10, 0.11, 0.12, 0.13, 0.20, 0.30, 0.01])
    dialogue = np.array([1, 1, 1, 1, 2, 3, 1])
    priority = diversity.diversify(trust_, [dialogue], cap=3, margin=0.15)
    order = np.argsort(priority, kind="stable").tolist()
    # dialogue 1's items in trust order: 6 (0.01), 0, 1, then 2 (0.12) is the fourth → 0.27
    assert order[:5] == [6, 0, 1, 4, 2]
    assert priority[2] == pytest.approx(0.27) and priority[3] == pytest.approx(0.43)
    # a fourth item far less trusted than the rest still goes first
    assert (
        diversity.diversify(
            np.array([0.1, 0.1, 0.1, 0.1, 0.9]), [np.array([1, 1, 1, 1, 2])]
        )[3]
        < 0.9
    )
    # -1: no group
    assert diversity.diversify(trust_, [np.full(7, -1)]).tolist() == trust_.tolist()


def test_clusters_join_near_duplicates_only():
    e = np.array([[1.0, 0.0], [0.999, 0.045], [0.0, 1.0], [0.7, 0.7]])
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    assert diversity.clusters(e, threshold=0.95).tolist() == [0, 0, 1, 2]


def test_a_calibration_never_reorders_the_queue():
    # A few audit answers that happen to run against the trust (the trusted ones wrong).
    calibration = audit.PlattCalibration(prior_strength=1).fit(
        [0.95, 0.9, 0.92, 0.3, 0.25, 0.2] * 3, [0, 0, 0, 1, 1, 1] * 3
    )
    assert calibration.a >= audit.MIN_SLOPE
    t = np.linspace(0.05, 0.95, 19)
    assert np.all(np.diff(calibration.predict(t)) > 0)  # the order of the trust is kept


def test_a_firm_slope_prior_fits_the_calibration_in_the_large_only():
    rng = np.random.default_rng(7)
    trust_ = rng.uniform(0.3, 0.9, 400)
    right = rng.uniform(size=400) < np.clip(
        trust_ + 0.1, 0, 1
    )  # under-confident by 0.1
    both = audit.PlattCalibration(2.0).fit(trust_, right)
    intercept = audit.PlattCalibration(2.0, slope_prior_strength=1e4).fit(trust_, right)
    assert intercept.a == pytest.approx(1.0, abs=0.02) and intercept.b > 0.3
    assert abs(both.a - 1.0) > abs(intercept.a - 1.0)
    assert intercept.predict(trust_).mean() == pytest.approx(right.mean(), abs=0.03)
