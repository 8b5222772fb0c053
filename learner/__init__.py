"""Parley's machine-learning core: plain Python + PyTorch, never imports Django.

The public API is re-exported here. Torch-free pieces (`soft_label`, `agreement`) import
without loading torch; the rest loads on first use, so the web application's import path
stays light.

    from learner import Example, StudentConfig, TrainingConfig, train, evaluate, predict_proba
    from learner import checkpoint
"""

from __future__ import annotations

import importlib
from typing import Any

from .ensemble import agreement, soft_label

_LAZY = {
    "Example": "data",
    "with_context": "data",
    "Student": "model",
    "StudentConfig": "model",
    "TrainingConfig": "training",
    "TrainResult": "training",
    "Progress": "training",
    "OBJECTIVES": "training",
    "train": "training",
    "evaluate": "training",
    "predict_proba": "training",
    "Metrics": "metrics",
    "PrefOptions": "loss",
}

__all__ = ["agreement", "soft_label", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
