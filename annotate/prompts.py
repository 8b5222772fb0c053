"""The prompt bank: the chat messages one prompt of a task sends to the LLM for one utterance."""

from __future__ import annotations

from .models import (
    PromptTemplate,
    Utterance,
)

ANSWER_FORMAT = (
    "You label utterances of dialogues. Answer with JSON only, no other text: "
    '{{"label": "<one of: {labels}>", "confidence": <your confidence that the label is right, '
    "between 0 and 1>}}"
)


def prompt_messages(
    prompt: PromptTemplate,
    labels: list[str],
    utterance: Utterance,
    context: list[Utterance],
) -> list[dict[str, str]]:
    """The chat messages of one prompt of the bank for one utterance.

    The template may use {task}, {labels}, {guidelines}, {context}, {speaker} and {utterance};
    {context} holds the prompt's `context_turns` previous turns, one "speaker: text" a line.
    """
    task = prompt.task
    shown = context[-prompt.context_turns :] if prompt.context_turns else []
    values = {
        "task": task.title or task.name,
        "labels": ", ".join(labels),
        "guidelines": task.guidelines,
        "context": "\n".join(f"{u.speaker}: {u.text}" for u in shown),
        "speaker": utterance.speaker,
        "utterance": f"{utterance.speaker}: {utterance.text}",
    }
    return [
        {"role": "system", "content": ANSWER_FORMAT.format(labels=", ".join(labels))},
        {"role": "user", "content": prompt.template.format_map(_Blank(values))},
    ]


class _Blank(dict[str, str]):
    """format_map values where an unknown {name} renders as itself, not a KeyError."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
