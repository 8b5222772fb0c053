"""`choose_threshold`: the student confidence above which its labels may replace the LLM's."""

from __future__ import annotations

import math

import numpy as np
import pytest

from learner import choose_threshold


def test_the_share_where_the_student_keeps_the_llm_accuracy_is_chosen():
    # 60 answers the student is sure of and gets right (the LLM too), then 40 it is
    # unsure of and gets wrong where the LLM is right.
    confidence = [0.99 - 0.001 * i for i in range(60)] + [
        0.6 - 0.001 * i for i in range(40)
    ]
    student = [True] * 60 + [False] * 40
    llm = [True] * 100
    chosen = choose_threshold(confidence, student, llm, tolerance=0.01, min_support=10)
    assert chosen.threshold == pytest.approx(confidence[59])
    assert (chosen.answers, chosen.covered) == (100, 60)
    assert chosen.student_accuracy == chosen.llm_accuracy == 1.0


def test_the_tolerance_lets_in_errors_up_to_its_size():
    # 100 answers, the LLM always right; the student wrong on every 20th answer.
    confidence = [1.0 - 0.001 * i for i in range(100)]
    student = [(i + 1) % 20 != 0 for i in range(100)]
    llm = [True] * 100
    strict = choose_threshold(confidence, student, llm, tolerance=0.0, min_support=5)
    assert strict.covered == 19  # the first error at rank 20
    loose = choose_threshold(confidence, student, llm, tolerance=0.05, min_support=5)
    assert loose.covered == 100 and loose.student_accuracy == pytest.approx(0.95)


def test_the_student_is_credited_where_the_llm_is_wrong():
    # The student is right where the LLM is wrong: its share may grow past its own errors.
    confidence = [0.9] * 50 + [0.5] * 50
    student = [True] * 50 + [i % 2 == 0 for i in range(50)]
    llm = [False] * 10 + [True] * 90
    chosen = choose_threshold(confidence, student, llm, tolerance=0.0, min_support=10)
    # all 100: student 75 right, LLM 90 — no; the first 50: student 50, LLM 40 — yes
    assert chosen.covered == 50 and chosen.threshold == 0.9


def test_ties_are_never_split():
    confidence = [0.9] * 30 + [0.8] * 30
    student = [True] * 30 + [True] * 20 + [False] * 10
    llm = [True] * 60
    chosen = choose_threshold(confidence, student, llm, tolerance=0.0, min_support=5)
    # the first 50 would keep the accuracy, but 0.8 also takes the 10 wrong answers
    assert (chosen.threshold, chosen.covered) == (0.9, 30)


@pytest.mark.parametrize(
    ("n", "student_right"),
    [(5, True), (100, False)],  # too few answers; a student always wrong
)
def test_no_threshold_leaves_everything_to_the_llm(n, student_right):
    chosen = choose_threshold(
        [0.9] * n, [student_right] * n, [True] * n, tolerance=0.01, min_support=10
    )
    assert chosen.threshold is None and chosen.covered == 0
    assert math.isnan(chosen.student_accuracy)


def test_lengths_must_agree():
    with pytest.raises(ValueError, match="differ in length"):
        choose_threshold([0.9], [True, False], [True], tolerance=0.0, min_support=1)


def test_a_student_that_drops_a_rare_class_is_held_back_by_the_macro_f1():
    # 90 "neutral" (0) answers and 10 "negative" (1); the LLM finds 8 of the negatives and
    # calls 8 neutrals negative; the student says neutral to everything, sure of itself.
    truth = [0] * 90 + [1] * 10
    llm_label = [0] * 82 + [1] * 8 + [1] * 8 + [0] * 2
    student_label = [0] * 100
    confidence = [0.95] * 100
    student_right = [s == t for s, t in zip(student_label, truth, strict=True)]
    llm_right = [m == t for m, t in zip(llm_label, truth, strict=True)]
    # accuracy alone: the student's 0.90 is level with the LLM's 0.90 — the share is taken
    blind = choose_threshold(
        confidence, student_right, llm_right, tolerance=0.01, min_support=10
    )
    assert blind.covered == 100
    assert blind.student_accuracy == blind.llm_accuracy == pytest.approx(0.90)
    # with the labels: macro-F1 (180/190 + 0) / 2 = 0.474 against (164/174 + 16/26) / 2 =
    # 0.779: no share keeps it
    guarded = choose_threshold(
        confidence,
        student_right,
        llm_right,
        tolerance=0.01,
        min_support=10,
        labels=(truth, student_label, llm_label),
    )
    assert guarded.threshold is None and guarded.covered == 0


def test_the_guard_keeps_a_share_that_holds_only_what_the_student_gets_right():
    # The student is sure (0.9) of 50 neutral answers, which it gets right, and unsure (0.5)
    # of the rest, where it says neutral to the 10 negatives; the LLM is right everywhere.
    truth = [0] * 50 + [0] * 40 + [1] * 10
    student_label = [0] * 100
    llm_label = truth
    confidence = [0.9] * 50 + [0.5] * 50
    chosen = choose_threshold(
        confidence,
        [s == t for s, t in zip(student_label, truth, strict=True)],
        [True] * 100,
        tolerance=0.01,
        min_support=10,
        labels=(truth, student_label, llm_label),
    )
    # on the first 50 both have F1 1 on "neutral" and say no "negative": level
    assert (chosen.threshold, chosen.covered) == (0.9, 50)
    assert chosen.student_macro_f1 == chosen.llm_macro_f1 == 1.0


def test_the_prefix_macro_f1_by_hand():
    from learner.budget import prefix_macro_f1

    truth = np.array([0, 0, 1, 2])
    a = np.array([0, 0, 0, 0])
    b = np.array([0, 1, 1, 2])
    fa, fb = prefix_macro_f1(truth, a, b)
    # prefix 2: a perfect on class 0; b says 1 once where 0 is true: F1(0) = 2/3, F1(1) = 0
    # (b invented it), a scores 1 on class 1 (nothing to find, nothing said)
    assert fa[1] == pytest.approx(1.0)
    assert fb[1] == pytest.approx((2 / 3 + 0) / 2)
    # all 4: a F1(0) = 2·2/(2+4) = 2/3, F1(1) = F1(2) = 0 → 2/9; b: F1(0) = 2/3, F1(1) = 2/3,
    # F1(2) = 1
    assert fa[3] == pytest.approx(2 / 9)
    assert fb[3] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
