from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from learner import loss
from learner.data import Example, targets
from learner.model import Student
from learner.training import (
    OBJECTIVES,
    TrainingConfig,
    evaluate,
    objective_loss,
    predict_proba,
    train,
)


def quick(**kwargs) -> TrainingConfig:
    return TrainingConfig(
        **{
            "epochs": 2,
            "batch_size": 12,
            "lr": 3e-3,
            "device": "cpu",
            "val_fraction": 0.25,
            **kwargs,
        }
    )


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_loss_goes_down_when_overfitting_a_toy_batch(
    objective, tiny_config, toy_dialogues
):
    torch.manual_seed(0)
    student = Student(tiny_config)
    batch = toy_dialogues[:12]
    t = targets(batch, 2)
    inputs = student.encode(batch)
    optimizer = torch.optim.AdamW(student.parameters(), lr=3e-3)
    config = quick(objective=objective)
    values = []
    for _ in range(15):
        value = objective_loss(objective, student(**inputs), t, config, epoch=0)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        values.append(value.item())
    assert values[-1] < values[0] * 0.7


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_train_fits_every_objective_and_reports_progress(
    objective, tiny_config, toy_dialogues
):
    reports = []
    result = train(
        toy_dialogues,
        tiny_config,
        quick(objective=objective),
        on_progress=reports.append,
    )
    assert [r["epoch"] for r in result.history] in ([0], [0, 1])  # it may stop early
    fractions = [r.fraction for r in reports]
    assert (
        fractions == sorted(fractions)
        and fractions[0] > 0
        and fractions[-1] == pytest.approx(1.0, abs=0.2)
    )
    assert any(r.validation is not None for r in reports)
    assert (
        result.validation is not None and result.validation.n == 18
    )  # 3 of 12 dialogues held out
    assert result.utterances_seen > 0 and result.seconds > 0


def test_training_learns_the_toy_task(tiny_config, toy_dialogues):
    result = train(
        toy_dialogues, tiny_config, quick(objective="pref", epochs=6, val_fraction=0)
    )
    gold = [0 if ex.position % 2 == 0 else 1 for ex in toy_dialogues]
    assert evaluate(result.student, toy_dialogues, gold).accuracy >= 0.9


def test_early_stopping_keeps_the_best_epoch(tiny_config, toy_dialogues):
    result = train(toy_dialogues, tiny_config, quick(epochs=5, patience=1, lr=1e-6))
    best = max(
        range(len(result.history)), key=lambda i: result.history[i]["val_accuracy"]
    )
    assert result.best_epoch == result.history[best]["epoch"]
    assert result.validation.accuracy == pytest.approx(
        result.history[best]["val_accuracy"]
    )


def test_two_stage_trains_on_llm_labels_then_on_the_human_labels(
    tiny_config, toy_dialogues
):
    from dataclasses import replace

    with_humans = [
        replace(ex, human=ex.position % 2)
        if ex.dialogue_id in {"d0", "d1", "d2"}
        else ex
        for ex in toy_dialogues
    ]
    result = train(
        with_humans, tiny_config, quick(two_stage=True, stage2_epochs=1, val_fraction=0)
    )
    assert [(r["stage"], r["objective"]) for r in result.history] == [
        (1, "pref"),
        (1, "pref"),
        (2, "human"),
    ]


def test_seeds_make_training_reproducible(tiny_config, toy_dialogues):
    a = train(toy_dialogues, tiny_config, quick(seed=3)).student
    b = train(toy_dialogues, tiny_config, quick(seed=3)).student
    assert torch.equal(predict_proba(a, toy_dialogues), predict_proba(b, toy_dialogues))


def test_predict_proba_keeps_the_input_order(tiny_config, toy_dialogues):
    # trained, so that questions and answers get different probabilities and a swap shows
    student = train(toy_dialogues, tiny_config, quick(epochs=6, val_fraction=0)).student
    batched = predict_proba(student, toy_dialogues, batch_size=7)
    one_by_one = torch.cat([predict_proba(student, [ex]) for ex in toy_dialogues[:10]])
    assert batched.shape == (72, 2)
    assert batched[:10, 0].max() - batched[:10, 0].min() > 0.5  # a swap would show
    # padding to a batch's longest input moves float32 sums by about 1e-5
    assert torch.allclose(batched[:10], one_by_one, atol=1e-3)
    assert torch.allclose(batched.sum(dim=1), torch.ones(72))


def test_evaluate_defaults_to_the_human_labels(tiny_config):
    student = Student(tiny_config)
    ex = [
        Example("d", 0, "A", "where is it", human=0),
        Example("d", 1, "B", "here", llm=((0.5, 0.5),)),
    ]
    assert evaluate(student, ex).n == 1


def test_an_unknown_objective_is_refused():
    with pytest.raises(ValueError, match="objective"):
        TrainingConfig(objective="mse")


def test_without_any_label_there_is_nothing_to_train(tiny_config):
    with pytest.raises(ValueError, match="no example"):
        train([Example("d", 0, "A", "hi")], tiny_config, quick())


def test_the_input_marks_speakers_and_puts_the_latest_context_first(tiny_config):
    student = Student(
        tiny_config.__class__(**{**vars(tiny_config), "context_turns": 2})
    )
    ex = Example("d", 2, "A", "fine", context=(("A", "hello"), ("B", "how are you")))
    assert student.input_texts(ex) == ("A: fine", "B: how are you [SEP] A: hello")


def test_the_learner_never_imports_django():
    code = (
        "import sys, learner, learner.training, learner.checkpoint, learner.uncertainty; "
        "learner.train; assert not any(m.startswith('django') for m in sys.modules), 'django'"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_pref_options_default_to_intra_dialogue_pairs():
    assert loss.PrefOptions().cross_dialogue is False


def test_bf16_autocast_trains_too(tiny_config, toy_dialogues):
    result = train(toy_dialogues, tiny_config, quick(precision="bf16", val_fraction=0))
    probabilities = predict_proba(result.student, toy_dialogues)
    assert probabilities.dtype == torch.float32 and torch.isfinite(probabilities).all()
    with pytest.raises(ValueError, match="precision"):
        TrainingConfig(precision="fp8")
    assert result.precision == "bf16"


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "expected"),
    [(True, False, "bf16"), (False, True, "bf16"), (False, False, "fp32")],
)
def test_auto_precision_is_bf16_only_where_the_cpu_has_it_natively(
    monkeypatch, avx512_bf16, amx, expected
):
    from learner.model import resolve_precision

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == expected
    assert resolve_precision("fp32", cpu) == "fp32"  # an explicit choice is kept
    assert resolve_precision("bf16", cpu) == "bf16"


def test_a_run_records_the_precision_auto_resolved_to(
    monkeypatch, tiny_config, toy_dialogues
):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    config = quick(precision="auto", val_fraction=0, device="cpu")
    assert train(toy_dialogues, tiny_config, config).precision == "fp32"


def test_the_class_prior_is_the_mean_target_with_human_labels_in_place():
    from dataclasses import replace

    from learner.training import class_prior

    examples = [
        Example("d0", 0, "A", "a", llm=((0.8, 0.2),)),
        Example("d0", 1, "B", "b", llm=((0.6, 0.4),)),
        replace(Example("d1", 0, "A", "c", llm=((0.9, 0.1),)), human=1),
        Example("d1", 1, "B", "d", llm=((1.0, 0.0),)),
    ]
    assert class_prior(examples, 2).tolist() == pytest.approx([0.6, 0.4])
    # a class no target names gets a floor, so that its log stays finite
    assert class_prior(examples[3:], 2)[1].item() == pytest.approx(1e-3, rel=1e-2)


def test_logit_adjustment_lowers_the_prior_of_the_class_the_teacher_calls_most(
    tiny_config, toy_dialogues
):
    # three questions to one answer per dialogue: the targets' prior favours class 0
    skewed = [ex for ex in toy_dialogues if ex.position % 2 == 0 or ex.position == 1]
    plain = train(skewed, tiny_config, quick(val_fraction=0)).student
    adjusted = train(
        skewed, tiny_config, quick(val_fraction=0, logit_adjust=1.0)
    ).student
    assert (
        predict_proba(adjusted, skewed)[:, 0].mean()
        < predict_proba(plain, skewed)[:, 0].mean()
    )
