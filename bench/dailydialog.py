"""Readers for the DailyDialog benchmark format (../shared/data/dailydialog/README.md).

Dialogue line: {"id", "topic", "turns": [{"speaker", "text", "act", "emotion"}]}
LLM label line: {"id": "<dialogue id>-<turn>", "prompt", "act", "act_conf", "emotion", "emotion_conf"}

Any file in this format works: the benchmark CLIs take paths, nothing here names the shared
directory.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from learner.data import Example, with_context
from learner.ensemble import spread_confidence

EMOTIONS = [
    "no_emotion",
    "anger",
    "disgust",
    "fear",
    "happiness",
    "sadness",
    "surprise",
]
SENTIMENT_OF = {
    "no_emotion": "neutral",
    "happiness": "positive",
    "surprise": "positive",
    "anger": "negative",
    "disgust": "negative",
    "fear": "negative",
    "sadness": "negative",
}
LABELS = {
    "act": ["inform", "question", "directive", "commissive"],
    "emotion": EMOTIONS,
    "sentiment": ["neutral", "positive", "negative"],
}
TASKS = tuple(LABELS)


@dataclass(frozen=True)
class Turn:
    dialogue_id: str
    position: int
    speaker: str
    text: str
    gold: dict[str, str]
    """Task → gold label (act, emotion, sentiment)."""


def read_dialogues(path: str | Path) -> list[list[Turn]]:
    dialogues = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                turns = [
                    Turn(
                        d["id"],
                        i,
                        t["speaker"],
                        t["text"],
                        {
                            "act": t["act"],
                            "emotion": t["emotion"],
                            "sentiment": SENTIMENT_OF[t["emotion"]],
                        },
                    )
                    for i, t in enumerate(d["turns"])
                ]
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{path}:{n}: not a dialogue line ({exc!r})") from exc
            dialogues.append(turns)
    return dialogues


def llm_distribution(task: str, label: str, confidence: float) -> list[float]:
    """A verbalised answer as a distribution over the task's labels (DESIGN.md).

    The confidence goes on the label and the rest is spread uniformly over the other labels.
    For sentiment, the LLM answered an emotion: its answer is the emotion's sentiment, with
    the same confidence, and the rest is spread over the other two sentiments. (Spreading the
    rest over the 7 emotions and summing by sentiment, as before, gave "negative" — four
    emotions — twice the residual mass of "positive" on every answer: 259 LLM "negative"
    labels on the pool against 79 gold, 192 without that bias; issue 17.)
    """
    if task == "sentiment":
        return spread_confidence(LABELS["sentiment"], SENTIMENT_OF[label], confidence)
    return spread_confidence(LABELS[task], label, confidence)


def read_llm_labels(
    path: str | Path, task: str
) -> dict[tuple[str, int], dict[str, list[float]]]:
    """(dialogue id, position) → prompt → distribution over the task's labels."""
    source = "emotion" if task == "sentiment" else task
    out: dict[tuple[str, int], dict[str, list[float]]] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                dialogue_id, turn = row["id"].rsplit("-", 1)
                dist = llm_distribution(task, row[source], float(row[f"{source}_conf"]))
            except (KeyError, ValueError) as exc:
                raise ValueError(
                    f"{path}:{n}: not an LLM label line ({exc!r})"
                ) from exc
            out.setdefault((dialogue_id, int(turn)), {})[row["prompt"]] = dist
    return out


def reveal_human(dialogues: list[list[Turn]], fraction: float, seed: int) -> set[str]:
    """Dialogue ids whose gold labels are revealed as human labels: whole dialogues drawn at
    random until they hold `fraction` of the utterances."""
    if fraction <= 0:
        return set()
    order = list(dialogues)
    random.Random(seed).shuffle(order)
    target = fraction * sum(len(d) for d in dialogues)
    chosen: set[str] = set()
    count = 0
    for d in order:
        if count >= target:
            break
        chosen.add(d[0].dialogue_id)
        count += len(d)
    return chosen


def examples(
    dialogues: list[list[Turn]],
    task: str,
    *,
    llm: dict[tuple[str, int], dict[str, list[float]]] | None = None,
    human_dialogues: set[str] = frozenset(),  # type: ignore[assignment]
    context_turns: int = 8,
) -> list[Example]:
    """Learner examples of `task`: LLM distributions where given, gold as human label for
    the dialogues in `human_dialogues`."""
    labels = LABELS[task]
    out = []
    for d in dialogues:
        for t in d:
            prompts = (llm or {}).get((t.dialogue_id, t.position), {})
            human = (
                labels.index(t.gold[task]) if t.dialogue_id in human_dialogues else None
            )
            out.append(
                Example(
                    t.dialogue_id,
                    t.position,
                    t.speaker,
                    t.text,
                    llm=tuple(tuple(prompts[p]) for p in sorted(prompts)),
                    human=human,
                )
            )
    return with_context(out, context_turns)


def gold_indices(dialogues: list[list[Turn]], task: str) -> list[int]:
    labels = LABELS[task]
    return [labels.index(t.gold[task]) for d in dialogues for t in d]


def teacher_majority(
    dialogues: list[list[Turn]],
    llm: dict[tuple[str, int], dict[str, list[float]]],
    task: str,
) -> list[int]:
    """The LLM ensemble's label per utterance: majority over prompts; ties go to the label
    with the higher mean probability (the soft label)."""
    out = []
    for d in dialogues:
        for t in d:
            dists = list(llm.get((t.dialogue_id, t.position), {}).values())
            if not dists:
                out.append(-1)
                continue
            votes = Counter(max(range(len(p)), key=p.__getitem__) for p in dists)
            mean = [sum(col) / len(dists) for col in zip(*dists, strict=True)]
            out.append(max(votes, key=lambda c: (votes[c], mean[c])))
    return out
