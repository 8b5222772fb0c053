"""Selectors: reads for views, exports, tasks and the learner, aggregated in SQL.

One module per sub-domain (`projects`, `corpus`, `workspace`, `why`), re-exported here.
"""

from __future__ import annotations

from .corpus import (
    export_csv_header,
    reference_labels,
    training_example_ids,
    training_examples,
    transcript_records,
)
from .projects import (
    llm_sources,
    project_overview,
    project_role,
    project_schema,
    projects_for_user,
    task_and_role,
)
from .why import item_reasons
from .workspace import (
    annotator_history,
    annotator_progress,
    queue_item_context,
    review_rows,
)

__all__ = [
    "annotator_history",
    "annotator_progress",
    "export_csv_header",
    "item_reasons",
    "llm_sources",
    "project_overview",
    "project_role",
    "project_schema",
    "projects_for_user",
    "queue_item_context",
    "reference_labels",
    "review_rows",
    "task_and_role",
    "training_example_ids",
    "training_examples",
    "transcript_records",
]
