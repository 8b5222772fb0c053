"""A tiny random-weight BERT with MiniLM's tokenizer: the learner tests' backbone (CPU, seconds)."""

from __future__ import annotations

import pytest

from learner.data import Example, with_context
from learner.model import StudentConfig, backbone_path


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> str:
    from transformers import AutoTokenizer, BertConfig, BertModel

    path = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(
        backbone_path("minilm-l6"), local_files_only=True
    )
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture
def tiny_config(tiny_backbone) -> StudentConfig:
    return StudentConfig(
        labels=["question", "inform"],
        backbone=tiny_backbone,
        context_turns=1,
        max_length=32,
    )


QUESTIONS = [
    "where is it",
    "what time is it",
    "can you help me",
    "is it open",
    "who called",
]
ANSWERS = [
    "it is here",
    "it is five",
    "sure I can",
    "yes it is open",
    "your mother called",
]


@pytest.fixture
def toy_dialogues() -> list[Example]:
    """12 dialogues alternating questions (class 0) and answers (class 1), with noisy LLM labels."""
    out = []
    for d in range(12):
        for t in range(6):
            is_question = t % 2 == 0
            text = (QUESTIONS if is_question else ANSWERS)[(d + t) % 5]
            p = 0.8 if (d + t) % 7 else 0.4  # one answer in seven leans the wrong way
            dist = (p, 1 - p) if is_question else (1 - p, p)
            out.append(
                Example(
                    f"d{d}",
                    t,
                    "AB"[t % 2],
                    text,
                    llm=(dist, (0.9, 0.1) if is_question else (0.2, 0.8)),
                )
            )
    return with_context(out, 2)
