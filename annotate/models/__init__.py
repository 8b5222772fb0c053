"""Parley's data model.

Invariants live in the database (unique and check constraints, a partial unique index for
"one active training run per task"); model methods only derive values from one row.
Human labels are append-only: a correction is a new row and the history stays.

One module per sub-domain (`projects`, `corpus`, `queue`, `jobs`); every model is imported
here, where Django and callers find them.
"""

from __future__ import annotations

from .corpus import (
    BULK_FK,
    Dialogue,
    Flag,
    HumanLabel,
    LabelRetraction,
    LlmLabel,
    SoftLabel,
    Utterance,
)
from .jobs import ImportJob, LlmFailure, LlmRun, ModelVersion, Prediction, TrainingRun
from .projects import (
    ApiToken,
    Label,
    LabelTask,
    Membership,
    Project,
    PromptTemplate,
    Role,
)
from .queue import QueueItem, QueueSkip

__all__ = [
    "Role",
    "Project",
    "Membership",
    "ApiToken",
    "LabelTask",
    "Label",
    "PromptTemplate",
    "BULK_FK",
    "Dialogue",
    "Utterance",
    "LlmLabel",
    "SoftLabel",
    "HumanLabel",
    "LabelRetraction",
    "Flag",
    "TrainingRun",
    "ModelVersion",
    "Prediction",
    "ImportJob",
    "LlmRun",
    "LlmFailure",
    "QueueItem",
    "QueueSkip",
]
