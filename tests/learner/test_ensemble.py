from __future__ import annotations

import pytest

from learner.ensemble import agreement, soft_label


def test_soft_label_is_the_mean_distribution():
    assert soft_label([[1.0, 0.0], [0.5, 0.5]]) == pytest.approx([0.75, 0.25])


def test_agreement_is_one_when_every_prompt_says_the_same():
    dists = [[0.2, 0.8], [0.2, 0.8]]
    assert agreement(dists, soft_label(dists)) == pytest.approx(1.0)


def test_agreement_falls_as_prompts_spread_apart():
    # mean (0.5, 0.5); each one-hot is 0.5 away in total variation → agreement 0.5
    opposite = [[1.0, 0.0], [0.0, 1.0]]
    assert agreement(opposite, soft_label(opposite)) == pytest.approx(0.5)
    close = [[0.6, 0.4], [0.4, 0.6]]
    assert agreement(close, soft_label(close)) == pytest.approx(0.9)


def test_an_empty_bank_is_an_error():
    with pytest.raises(ValueError):
        soft_label([])
    with pytest.raises(ValueError):
        agreement([], [])


def test_learner_never_imports_django():
    import subprocess
    import sys

    code = "import sys, learner, learner.ensemble; print('django' in sys.modules)"
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "False"
    )


def test_the_lazy_exports_are_spelled_out_for_type_checkers_and_all_load():
    """`learner` loads most of its API on first use; `__all__` and the TYPE_CHECKING imports
    (what mypy sees) must name exactly what `__getattr__` serves, each from its module."""
    import ast
    import inspect

    import learner

    tree = ast.parse(inspect.getsource(learner))
    guarded = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
    )
    spelled = {
        alias.asname or alias.name: (node.module, alias.name)
        for node in guarded.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    lazy = {
        name: where if isinstance(where, tuple) else (where, name)
        for name, where in learner._LAZY.items()
    }
    assert spelled == lazy
    assert sorted(learner.__all__) == sorted(["agreement", "soft_label", *lazy])
    for name in learner.__all__:
        assert getattr(learner, name) is not None
