"""`choose_threshold`: the student confidence above which its labels may replace the LLM's."""

from __future__ import annotations

import math

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
