"""Examples, targets and dialogue-grouped batches for the student.

Importing this module does not load torch (the web application builds `Example`s).

An `Example` is one utterance with everything the learner may use: its dialogue and position
(for intra-dialogue pairs), the previous turns (the model's context), the per-prompt LLM
distributions over the task's label set (→ soft label ȳ and prompt agreement a) and the index
of its human label, if any. `annotate/` builds them from querysets, `bench/` from files.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from .ensemble import agreement, soft_label

if (
    TYPE_CHECKING
):  # torch loads only where tensors are built: the web app imports Example
    import torch


@dataclass(frozen=True)
class Example:
    """One utterance of a dialogue, for one label task.

    Attributes:
        dialogue_id: groups the utterances of one dialogue (pairs are drawn inside it).
        position: 0-based turn index in the dialogue.
        speaker: who speaks (marked in the model input).
        text: the utterance.
        context: previous turns as (speaker, text), oldest first; see `with_context`.
        llm: one distribution per prompt of the bank, each over the label set (sums to 1).
        human: index of the human label in the label set, or None.
        previous_label: the previous turn's LLM label (argmax of its ȳ), or None at the
            dialogue's start or where that turn has no LLM label; see `with_context`. Trust
            reads it (`ContextAccuracy`); the student does not.
    """

    dialogue_id: str
    position: int
    speaker: str
    text: str
    context: tuple[tuple[str, str], ...] = ()
    llm: tuple[tuple[float, ...], ...] = ()
    human: int | None = None
    previous_label: int | None = None

    @property
    def soft(self) -> list[float]:
        """ȳ: the mean of the prompt distributions."""
        return soft_label(self.llm)

    @property
    def agreement(self) -> float:
        """a: 1 − mean total-variation distance of the prompts from ȳ."""
        return agreement(self.llm, self.soft)

    @property
    def has_target(self) -> bool:
        return bool(self.llm) or self.human is not None


def input_texts(
    ex: Example, *, context_turns: int, mark_speakers: bool, sep: str
) -> tuple[str, str]:
    """(utterance, context): the two segments of the student's input. The context is the
    `context_turns` previous turns, the most recent first, joined by `sep`; each turn is
    "speaker: text" when `mark_speakers`."""

    def turn(speaker: str, text: str) -> str:
        return f"{speaker}: {text}" if mark_speakers and speaker else text

    previous = ex.context[-context_turns:] if context_turns > 0 else ()
    context = sep.join(turn(s, t) for s, t in reversed(previous))
    return turn(ex.speaker, ex.text), context


def with_context(examples: Sequence[Example], turns: int) -> list[Example]:
    """Fill each example's `context` with up to `turns` previous turns of its dialogue, and
    its `previous_label` with the LLM label of the turn just before it.

    Only the utterances present in `examples` are known, so pass whole dialogues.
    """
    by_dialogue: dict[str, dict[int, Example]] = {}
    for ex in examples:
        by_dialogue.setdefault(ex.dialogue_id, {})[ex.position] = ex
    out = []
    for ex in examples:
        turns_before = by_dialogue[ex.dialogue_id]
        context = tuple(
            (turns_before[p].speaker, turns_before[p].text)
            for p in range(max(0, ex.position - turns), ex.position)
            if p in turns_before
        )
        before = turns_before.get(ex.position - 1)
        previous_label = (
            max(range(len(before.soft)), key=before.soft.__getitem__)
            if before is not None and before.llm
            else None
        )
        out.append(replace(ex, context=context, previous_label=previous_label))
    return out


@dataclass
class Targets:
    """What the losses need for a batch of N examples over C classes (all tensors on one device).

    Attributes:
        soft: (N, C) ȳ, replaced by the one-hot human label where there is one.
        agreement: (N,) a, 1.0 where a human label replaced ȳ.
        hard: (N,) argmax of `soft` (the LLM label, or the human label).
        human: (N,) the human label index, −1 where there is none.
        has_llm: (N,) True where the example has LLM distributions.
        group: (N,) dialogue index within the batch (pairs are drawn inside a group).
        position: (N,) turn position.
    """

    soft: torch.Tensor
    agreement: torch.Tensor
    hard: torch.Tensor
    human: torch.Tensor
    has_llm: torch.Tensor
    group: torch.Tensor
    position: torch.Tensor

    def to(self, device: torch.device | str) -> Targets:
        return Targets(**{k: v.to(device) for k, v in vars(self).items()})


def targets(
    examples: Sequence[Example], n_classes: int, *, use_human: bool = True
) -> Targets:
    """Build the loss targets of a batch; a human label overrides the LLM soft label."""
    import torch

    soft, agree, human, has_llm, groups, positions = [], [], [], [], [], []
    group_ids: dict[str, int] = {}
    for ex in examples:
        h = ex.human if use_human else None
        if h is not None:
            row = [0.0] * n_classes
            row[h] = 1.0
            soft.append(row)
            agree.append(1.0)
        elif ex.llm:
            soft.append(ex.soft)
            agree.append(ex.agreement)
        else:
            soft.append([1.0 / n_classes] * n_classes)
            agree.append(0.0)
        human.append(-1 if h is None else h)
        has_llm.append(bool(ex.llm))
        groups.append(group_ids.setdefault(ex.dialogue_id, len(group_ids)))
        positions.append(ex.position)
    soft_t = torch.tensor(soft, dtype=torch.float32)
    return Targets(
        soft=soft_t,
        agreement=torch.tensor(agree, dtype=torch.float32),
        hard=soft_t.argmax(dim=1),
        human=torch.tensor(human, dtype=torch.long),
        has_llm=torch.tensor(has_llm, dtype=torch.bool),
        group=torch.tensor(groups, dtype=torch.long),
        position=torch.tensor(positions, dtype=torch.long),
    )


@dataclass
class DialogueBatcher:
    """Batches of whole dialogues, so every batch holds intra-dialogue pairs.

    Dialogues are shuffled, then taken in windows of `sort_window` dialogues sorted by
    length (`length(example)`, e.g. its token count) and packed into batches of about
    `batch_size` utterances: similar lengths share a batch, which keeps padding small. A
    dialogue longer than `batch_size` is a batch of its own. Batch order is shuffled again.
    """

    batch_size: int = 32
    sort_window: int = 50
    length: Callable[[Example], int] = field(default=lambda ex: len(ex.text))

    def __call__(
        self, examples: Sequence[Example], rng: random.Random
    ) -> Iterator[list[Example]]:
        dialogues: dict[str, list[Example]] = {}
        for ex in examples:
            dialogues.setdefault(ex.dialogue_id, []).append(ex)
        order = list(dialogues.values())
        rng.shuffle(order)
        batches: list[list[Example]] = []
        for start in range(0, len(order), self.sort_window):
            window = sorted(
                order[start : start + self.sort_window],
                key=lambda d: sum(map(self.length, d)) / len(d),
            )
            batch: list[Example] = []
            for dialogue in window:
                if batch and len(batch) + len(dialogue) > self.batch_size:
                    batches.append(batch)
                    batch = []
                batch.extend(dialogue)
            if batch:
                batches.append(batch)
        rng.shuffle(batches)
        yield from batches


def split_by_dialogue(
    examples: Sequence[Example], fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Split into (train, held out) with `fraction` of the dialogues held out."""
    ids = sorted({ex.dialogue_id for ex in examples})
    random.Random(seed).shuffle(ids)
    held = set(ids[: round(len(ids) * fraction)])
    train = [ex for ex in examples if ex.dialogue_id not in held]
    rest = [ex for ex in examples if ex.dialogue_id in held]
    return train, rest
