"""Parley's machine-learning core: plain Python + PyTorch, never imports Django.

The public API is re-exported here. Torch-free pieces (`soft_label`, `agreement`) import
without loading torch; the rest loads on first use, so the web application's import path
stays light.

    from learner import Example, StudentConfig, TrainingConfig, train, evaluate, predict_proba
    from learner import save_student, load_student, CrossFitted, TrustModel

Callers that must not load torch at import time (the web process) `import learner` and use
`learner.train(...)` where they need it.
"""

from __future__ import annotations

import importlib
from typing import Any

from .ensemble import agreement, soft_label

# name -> module (the same name there), or (module, name there).
_LAZY: dict[str, str | tuple[str, str]] = {
    "Example": "data",
    "with_context": "data",
    "CrossFitted": "crossfit",
    "fold_of": "crossfit",
    "predict": "crossfit",
    "OnnxStudent": "fast",
    "ensure_onnx": "fast",
    "export_onnx": "fast",
    "training_sets": "crossfit",
    "trust_features": "crossfit",
    "TrustModel": "trust",
    "Verifier": "trust",
    "ContextAccuracy": "reliability",
    "NO_PREVIOUS": "reliability",
    "PromptReliability": "reliability",
    "prompt_votes": "reliability",
    "knn_agreement": "trust",
    "student_margin": "trust",
    "diversify": "diversity",
    "clusters": "diversity",
    "BudgetThreshold": "budget",
    "choose_threshold": "budget",
    "audit_estimate": "audit",
    "weighted_ece": "audit",
    "PlattCalibration": "audit",
    "AuditEstimate": "audit",
    "heuristic_trust": "trust",
    "signals": "trust",
    "save_student": ("checkpoint", "save"),
    "load_student": ("checkpoint", "load"),
    "classification_metrics": "metrics",
    "expected_calibration_error": "metrics",
    "spread_confidence": "ensemble",
    "ensemble_summary": "ensemble",
    "Ensemble": "ensemble",
    "accuracy": "scores",
    "cohen_kappa": "scores",
    "ece_from_bins": "scores",
    "macro_f1": "scores",
    "per_class_scores": "scores",
    "Student": "model",
    "StudentConfig": "model",
    "TrainingConfig": "training",
    "TrainResult": "training",
    "Progress": "training",
    "OBJECTIVES": "training",
    "train": "training",
    "evaluate": "training",
    "predict_proba": "training",
    "predict_with_embeddings": "training",
    "Metrics": "metrics",
    "PrefOptions": "loss",
}

__all__ = ["agreement", "soft_label", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        where = _LAZY[name]
        module, attr = where if isinstance(where, tuple) else (where, name)
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
