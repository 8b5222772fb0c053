"""Services: every write Parley makes goes through a function here (`<entity>_<action>`).

One module per sub-domain; everything is re-exported here, so callers write
`services.label_submit(...)` whatever module holds it:

- `projects`: projects, label tasks, members, API tokens
- `imports` (+ `bulk`): a transcript file written in bulk with its queue items
- `import_jobs`: an uploaded file imported on a worker
- `llm_runs`: the LLM teacher over a task's prompt bank (prompts: `annotate/prompts.py`)
- `queue`: queue items, their trust before any student, claims
- `labels`: submit, undo, flag, adjudicate
- `training`: training runs, from request to an active model version
- `scoring`: predictions and trust for every utterance with a model version
"""

from __future__ import annotations

from .. import selectors
from ..prompts import prompt_messages
from .import_jobs import (
    IMPORT_LOCK,
    import_job_create,
    import_job_execute,
    import_job_progress,
)
from .import_writer import ImportResult
from .imports import transcripts_import
from .labels import (
    SubmitError,
    flag_create,
    label_adjudicate,
    label_change,
    label_submit,
    label_undo,
)
from .llm_runs import (
    LlmNotConfigured,
    llm_failures_retry,
    llm_run_execute,
    llm_run_request,
    llm_settings,
    llm_settings_or_none,
    soft_labels_refresh,
)
from .projects import (
    LABEL_KEYS,
    api_token_authenticate,
    api_token_create,
    label_task_add,
    label_task_create,
    label_task_update,
    labels_update,
    membership_remove,
    membership_set,
    project_create,
    project_create_by,
    project_update,
    prompt_save,
)
from .queue import (
    project_queue_sync,
    queue_claim,
    queue_diversify,
    queue_release,
    queue_renew,
    queue_requeue,
    queue_skip,
    queue_sync,
    queue_workspace,
)
from .scoring import predictions_store
from .training import (
    job_stale_before,
    training_run_execute,
    training_run_maybe_request,
    training_run_request,
    training_runs_fail_stale,
)

__all__ = [
    "IMPORT_LOCK",
    "LABEL_KEYS",
    "ImportResult",
    "LlmNotConfigured",
    "SubmitError",
    "api_token_authenticate",
    "api_token_create",
    "flag_create",
    "import_job_create",
    "import_job_execute",
    "import_job_progress",
    "job_stale_before",
    "label_adjudicate",
    "label_change",
    "label_submit",
    "label_task_add",
    "label_task_create",
    "label_task_update",
    "labels_update",
    "label_undo",
    "llm_failures_retry",
    "llm_run_execute",
    "llm_run_request",
    "llm_settings",
    "llm_settings_or_none",
    "membership_remove",
    "membership_set",
    "predictions_store",
    "project_create",
    "project_create_by",
    "project_update",
    "prompt_save",
    "project_queue_sync",
    "prompt_messages",
    "queue_claim",
    "queue_diversify",
    "queue_release",
    "queue_renew",
    "queue_requeue",
    "queue_skip",
    "queue_sync",
    "queue_workspace",
    "selectors",
    "soft_labels_refresh",
    "training_run_execute",
    "training_run_maybe_request",
    "training_run_request",
    "training_runs_fail_stale",
    "transcripts_import",
]
