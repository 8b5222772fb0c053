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
from typing import TYPE_CHECKING, Any

from .ensemble import agreement, soft_label

# What `__getattr__` loads, spelled out for type checkers: the names of _LAZY.
if TYPE_CHECKING:
    from .audit import AuditEstimate, PlattCalibration, audit_estimate, weighted_ece
    from .budget import BudgetThreshold, choose_threshold
    from .checkpoint import load as load_student
    from .checkpoint import save as save_student
    from .crossfit import CrossFitted, fold_of, predict, training_sets, trust_features
    from .data import Example, with_context
    from .diversity import clusters, diversify
    from .ensemble import Ensemble, ensemble_summary, spread_confidence
    from .fast import OnnxStudent, ensure_onnx, export_onnx
    from .loss import PrefOptions
    from .metrics import Metrics, classification_metrics, expected_calibration_error
    from .model import Student, StudentConfig
    from .reliability import (
        NO_PREVIOUS,
        ContextAccuracy,
        PromptReliability,
        prompt_votes,
    )
    from .scores import accuracy, cohen_kappa, ece_from_bins, macro_f1, per_class_scores
    from .training import (
        OBJECTIVES,
        Progress,
        TrainingConfig,
        TrainResult,
        evaluate,
        predict_proba,
        predict_with_embeddings,
        train,
    )
    from .trust import (
        TrustModel,
        Verifier,
        heuristic_trust,
        knn_agreement,
        signals,
        student_margin,
    )

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

# A literal, so that type checkers and linters see what is exported (a test keeps it _LAZY's).
__all__ = [
    "agreement",
    "soft_label",
    "Example",
    "with_context",
    "CrossFitted",
    "fold_of",
    "predict",
    "OnnxStudent",
    "ensure_onnx",
    "export_onnx",
    "training_sets",
    "trust_features",
    "TrustModel",
    "Verifier",
    "ContextAccuracy",
    "NO_PREVIOUS",
    "PromptReliability",
    "prompt_votes",
    "knn_agreement",
    "student_margin",
    "diversify",
    "clusters",
    "BudgetThreshold",
    "choose_threshold",
    "audit_estimate",
    "weighted_ece",
    "PlattCalibration",
    "AuditEstimate",
    "heuristic_trust",
    "signals",
    "save_student",
    "load_student",
    "classification_metrics",
    "expected_calibration_error",
    "spread_confidence",
    "ensemble_summary",
    "Ensemble",
    "accuracy",
    "cohen_kappa",
    "ece_from_bins",
    "macro_f1",
    "per_class_scores",
    "Student",
    "StudentConfig",
    "TrainingConfig",
    "TrainResult",
    "Progress",
    "OBJECTIVES",
    "train",
    "evaluate",
    "predict_proba",
    "predict_with_embeddings",
    "Metrics",
    "PrefOptions",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        where = _LAZY[name]
        module, attr = where if isinstance(where, tuple) else (where, name)
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
