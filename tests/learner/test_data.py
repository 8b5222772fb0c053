from __future__ import annotations

import random

from learner.data import DialogueBatcher, Example, split_by_dialogue, with_context


def test_context_holds_the_previous_turns_of_the_same_dialogue():
    ex = [Example("a", i, "AB"[i % 2], f"a{i}") for i in range(4)] + [
        Example("b", 0, "A", "b0")
    ]
    out = with_context(ex, 2)
    assert out[0].context == ()
    assert out[3].context == (("B", "a1"), ("A", "a2"))
    assert out[4].context == ()


def test_batches_keep_dialogues_whole_and_cover_every_example_once(toy_dialogues):
    batcher = DialogueBatcher(batch_size=10)
    batches = list(batcher(toy_dialogues, random.Random(0)))
    seen = [ex for b in batches for ex in b]
    assert sorted(seen, key=lambda e: (e.dialogue_id, e.position)) == sorted(
        toy_dialogues, key=lambda e: (e.dialogue_id, e.position)
    )
    for batch in batches:
        for d in {ex.dialogue_id for ex in batch}:
            assert sum(ex.dialogue_id == d for ex in batch) == 6  # the whole dialogue
        assert len(batch) <= 12  # 10 → at most one dialogue over


def test_a_dialogue_longer_than_a_batch_is_a_batch_of_its_own():
    long = [Example("long", i, "A", "x") for i in range(50)]
    batches = list(DialogueBatcher(batch_size=8)(long, random.Random(0)))
    assert [len(b) for b in batches] == [50]


def test_batch_order_depends_on_the_seed_only(toy_dialogues):
    def order(seed):
        return [
            [ex.dialogue_id for ex in b]
            for b in DialogueBatcher(12)(toy_dialogues, random.Random(seed))
        ]

    assert order(1) == order(1)
    assert order(1) != order(2)


def test_split_by_dialogue_never_splits_a_dialogue(toy_dialogues):
    train, held = split_by_dialogue(toy_dialogues, 0.25, seed=0)
    assert len({e.dialogue_id for e in held}) == 3
    assert not {e.dialogue_id for e in train} & {e.dialogue_id for e in held}
    assert len(train) + len(held) == len(toy_dialogues)


def test_previous_label_is_the_llm_label_of_the_turn_just_before():
    def ex(dialogue: str, position: int, llm: tuple[tuple[float, ...], ...]) -> Example:
        return Example(dialogue, position, "A", f"{dialogue}{position}", llm=llm)

    out = with_context(
        [
            ex("a", 0, ((0.2, 0.8), (0.4, 0.6))),  # ȳ = (0.3, 0.7): label 1
            ex("a", 1, ((0.9, 0.1),)),
            ex("a", 2, ()),  # no LLM answer
            ex("a", 3, ((0.5, 0.5),)),
            ex("b", 0, ((1.0, 0.0),)),
        ],
        turns=0,  # no text context: the previous label does not depend on it
    )
    assert [e.previous_label for e in out] == [None, 1, 0, None, None]
