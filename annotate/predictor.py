"""Live predictions from a task's active student, in the web process, without PyTorch.

The worker exports every scored model version to ONNX beside its checkpoint
(`services.predictions_store` → `learner.ensure_onnx`). Here the ONNX Runtime session of a
task's active version is loaded on first use, once per process, and replaced when another
version becomes active: the active version is looked up at most every
PARLEY_PREDICT_VERSION_CHECK_S seconds per process (a query on every request cost a fifth of
a single prediction's time), so a new version answers within that time of its activation.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from learner import Example, OnnxStudent

from .models import LabelTask, ModelVersion


class NoModel(Exception):
    """The task has no active model version yet."""


class NotExported(Exception):
    """The active version has no ONNX export (its export failed: the reason is given)."""


@dataclass
class Loaded:
    version: ModelVersion
    student: OnnxStudent
    checked: float = field(default_factory=time.monotonic)
    """When the active version was last looked up (time.monotonic)."""


_loaded: dict[int, Loaded] = {}
_lock = threading.Lock()


def predictor_for(task: LabelTask) -> Loaded:
    """The task's active version and its ONNX student (loaded now if it changed)."""
    current = _loaded.get(task.pk)
    now = time.monotonic()
    if (
        current is not None
        and now - current.checked < settings.PARLEY_PREDICT_VERSION_CHECK_S
    ):
        return current
    version = ModelVersion.objects.filter(task=task, is_active=True).first()
    if version is None:
        raise NoModel(
            f"task {task.name!r} has no trained model yet: train one (Dashboard → "
            "Retrain now, or wait for the first automatic retrain) and try again"
        )
    if current is not None and current.version.pk == version.pk:
        current.checked = now
        return current
    with _lock:
        current = _loaded.get(task.pk)
        if current is None or current.version.pk != version.pk:
            directory = Path(version.artifact_path) / "full"
            if not (directory / "onnx" / "model.int8.onnx").is_file():
                failed = directory / "onnx.failed"
                reason = failed.read_text().strip() if failed.exists() else "not yet"
                raise NotExported(
                    f"model version {version.version} has no ONNX export ({reason})"
                )
            current = Loaded(
                version,
                OnnxStudent(
                    directory,
                    quantized=settings.LEARNER_INFERENCE == "onnx-int8",
                    threads=settings.PARLEY_PREDICT_THREADS,
                ),
            )
            _loaded[task.pk] = current
    return current


def predict(task: LabelTask, utterances: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-label probabilities and the label of each utterance ({"text", "speaker",
    "context": [{"speaker", "text"}, …] oldest first}), with the model version."""
    loaded = predictor_for(task)
    examples = [
        Example(
            "api",
            i,
            str(u.get("speaker") or ""),
            u["text"],
            context=tuple(
                (str(turn.get("speaker") or ""), turn["text"])
                for turn in u.get("context") or ()
            ),
        )
        for i, u in enumerate(utterances)
    ]
    probabilities, _ = loaded.student.predict(examples)
    labels = loaded.student.labels
    return {
        "model_version": loaded.version.version,
        "labels": labels,
        "predictions": [
            {
                "label": labels[int(row.argmax())],
                "probabilities": {
                    label: round(float(p), 6)
                    for label, p in zip(labels, row, strict=True)
                },
            }
            for row in probabilities
        ],
    }
