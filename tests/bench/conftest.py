"""Small files in the DailyDialog benchmark format, and the tiny test backbone."""

from __future__ import annotations

import json

import pytest

from tests.learner.conftest import tiny_backbone  # noqa: F401 - shared fixture

QUESTION = ("where are you going", "question", "no_emotion")
ANSWER = ("to the shop, I am so happy", "inform", "happiness")


@pytest.fixture
def files(tmp_path):
    dialogues, llm = [], []
    for d in range(8):
        turns = [QUESTION if t % 2 == 0 else ANSWER for t in range(4)]
        dialogues.append(
            {
                "id": f"dd{d:05d}",
                "topic": "x",
                "turns": [
                    {
                        "speaker": "AB"[t % 2],
                        "text": text,
                        "act": act,
                        "emotion": emotion,
                    }
                    for t, (text, act, emotion) in enumerate(turns)
                ],
            }
        )
        for t, (_, act, emotion) in enumerate(turns):
            for p, wrong in (("P1", False), ("P2", d == 0), ("P3", False)):
                llm.append(
                    {
                        "id": f"dd{d:05d}-{t}",
                        "prompt": p,
                        "act": "directive" if wrong else act,
                        "act_conf": 0.9,
                        "emotion": emotion,
                        "emotion_conf": 0.8,
                    }
                )
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps(d) + "\n" for d in dialogues))
    labels = tmp_path / "llm.jsonl"
    labels.write_text("".join(json.dumps(row) + "\n" for row in llm))
    return pool, labels
