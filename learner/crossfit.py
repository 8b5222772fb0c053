"""Cross-fitting over dialogue folds: every utterance gets the view of a student that never saw
its dialogue (DESIGN.md, "Trust score"; otherwise the student just memorises the LLM).

A training run trains the full student on every labelled example and one student per fold on
the examples outside that fold (`training_sets`); scoring then asks each utterance's fold
model (`CrossFitted`). Folds are drawn by a hash of the dialogue id, stable across runs and
processes. Torch loads only when a model is used.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import trust
from .data import Example


def fold_of(dialogue_id: str | int, folds: int) -> int:
    """The fold of a dialogue, in 0..folds-1."""
    return int(hashlib.sha256(str(dialogue_id).encode()).hexdigest()[:8], 16) % folds


def training_sets(
    examples: Sequence[Example], folds: int
) -> list[tuple[str, list[Example]]]:
    """("full", every example), then ("fold-k", the examples outside fold k) for each fold.

    A fold that holds every labelled dialogue (a project of one dialogue, or a few that hash
    alike) has nothing to train on and gets no model: `CrossFitted` scores its dialogues
    with the full student, the only one there is.
    """
    sets = [("full", list(examples))]
    for k in range(folds):
        rest = [ex for ex in examples if fold_of(ex.dialogue_id, folds) != k]
        if rest:
            sets.append((f"fold-{k}", rest))
    return sets


class CrossFitted:
    """The students of one training run: `full`, and each fold's (or `full` where a fold has
    none). `proba` scores each example with its fold's student."""

    def __init__(self, full: Any, fold_students: Sequence[Any]) -> None:
        self.full = full
        self.fold_students = list(fold_students)

    @property
    def folds(self) -> int:
        return len(self.fold_students)

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike[str],
        folds: int,
        *,
        device: str = "auto",
        backend: str = "torch",
    ) -> CrossFitted:
        """The students `training_sets` trained, as saved under `directory/<name>`.

        `backend`: "torch", or "onnx" / "onnx-int8" (ONNX Runtime, fp32 or int8 weights;
        exported on first use, `fast.ensure_onnx`; a student whose export fails is loaded
        with torch, the reason logged)."""
        path = Path(directory)
        full = _load_student(path / "full", device, backend)
        students = [
            _load_student(path / f"fold-{k}", device, backend)
            if (path / f"fold-{k}").exists()
            else full
            for k in range(folds)
        ]
        return cls(full, students)

    @property
    def context_turns(self) -> int:
        """Previous turns each student reads with an utterance."""
        return context_turns_of(self.full)

    def proba(self, examples: Sequence[Example]) -> np.ndarray:
        """(N, C) probabilities, each from the student that did not see its dialogue."""
        return self.proba_and_embeddings(examples)[0]

    def proba_and_embeddings(
        self, examples: Sequence[Example]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(N, C) probabilities and (N, H) unit-length sentence embeddings, each from the
        student that did not see its dialogue."""
        out: np.ndarray | None = None
        embeddings: np.ndarray | None = None
        for k, student in enumerate(self.fold_students):
            index = [
                i
                for i, ex in enumerate(examples)
                if fold_of(ex.dialogue_id, self.folds) == k
            ]
            if not index:
                continue
            probabilities, vectors = predict(student, [examples[i] for i in index])
            if out is None or embeddings is None:
                out = np.zeros((len(examples), probabilities.shape[1]))
                embeddings = np.zeros(
                    (len(examples), vectors.shape[1]), dtype=np.float32
                )
            out[index] = probabilities
            embeddings[index] = vectors
        if out is None or embeddings is None:
            return np.zeros((len(examples), 0)), np.zeros((len(examples), 0))
        return out, embeddings


def _load_student(path: Path, device: str, backend: str) -> Any:
    from . import fast

    if backend in ("onnx", "onnx-int8") and fast.ensure_onnx(path) is not None:
        return fast.OnnxStudent(path, quantized=backend == "onnx-int8")
    from .checkpoint import load

    return load(path, device=device)[0]


def predict(student: Any, examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) probabilities and (N, H) embeddings from a torch `Student` or an
    `fast.OnnxStudent`."""
    from . import fast

    if isinstance(student, fast.OnnxStudent):
        return student.predict(examples)
    from .training import predict_with_embeddings

    probabilities, embeddings = predict_with_embeddings(student, examples)
    return probabilities.numpy(), embeddings.numpy()


def context_turns_of(student: Any) -> int:
    from . import fast

    if isinstance(student, fast.OnnxStudent):
        return student.context_turns
    return int(student.config.context_turns)


def trust_features(
    examples: Sequence[Example], n_classes: int, student: np.ndarray | None
) -> np.ndarray:
    """`trust.signals` of the examples: their LLM soft label and agreement (uniform and 0 for
    an utterance without LLM label), and the cross-fitted student's probabilities."""
    soft = np.array(
        [ex.soft if ex.llm else [1.0 / n_classes] * n_classes for ex in examples]
    ).reshape(len(examples), n_classes)
    agree = np.array([ex.agreement if ex.llm else 0.0 for ex in examples])
    return trust.signals(soft, agree, student)
