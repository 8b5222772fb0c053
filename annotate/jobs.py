"""Background jobs: the database row is the truth, a Celery message is only a nudge.

Every job (import, LLM run, training, scoring) is a row whose status says where it is. The
message that starts it is sent after the row commits; if the broker cannot be reached the
request still succeeds, the row stays queued, and the sweeper (annotate/sweeper.py) sends it
again. Workers claim rows with conditional updates, so a message sent twice runs a job once.

An import runs in one transaction, so it cannot write a heartbeat that others would see. Its
sign of life is a lock that its transaction holds instead: a PostgreSQL advisory lock, or
SQLite's write lock. A worker that dies drops the lock with its connection, and the sweeper,
finding the lock free under a "running" row, knows that nobody is working on it.
"""

from __future__ import annotations

import logging
import sqlite3
import zlib
from functools import partial
from typing import Any

from django.db import connection, transaction
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

from .celery import app

logger = logging.getLogger(__name__)

# The tasks' stable names (annotate/tasks.py registers them under these). Services send a
# task by its name, so that they need not import the tasks module, which imports them.
IMPORT_TRANSCRIPTS = "annotate.import_transcripts"
LLM_LABEL_RUN = "annotate.llm_label_run"
TRAIN_STUDENT = "annotate.train_student"
SCORE_POOL = "annotate.score_pool"
DASHBOARD_REFRESH = "annotate.dashboard_refresh"
SWEEP = "annotate.sweep"


def send(task_name: str, *args: Any) -> bool:
    """Send the task's message now; False (logged) when the broker cannot be reached."""
    try:
        app.tasks[task_name].delay(*args)
    except (BrokerError, RedisError, OSError) as exc:
        logger.warning(
            "broker unreachable, %s%r left for the sweeper: %s", task_name, args, exc
        )
        return False
    return True


def enqueue_on_commit(task_name: str, *args: Any) -> None:
    """Send the task's message once the current transaction commits (never inside it: the
    worker must find the row). A broker outage is logged, never raised: the write stands."""
    transaction.on_commit(partial(send, task_name, *args))


def _lock_key(kind: str, pk: int) -> tuple[int, int]:
    # Two 32-bit keys: one for the kind of job, one for the row (wrapped into int4 range).
    return zlib.crc32(f"parley:{kind}".encode()) - 2**31, pk % 2**32 - 2**31


def hold_job_lock(kind: str, pk: int) -> None:
    """Inside a transaction: mark the job as worked on until the transaction ends."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", _lock_key(kind, pk))
    # SQLite: the transaction (IMMEDIATE) already holds the database's write lock.


def job_lock_is_free(kind: str, pk: int) -> bool:
    """Whether no transaction holds the job's lock (nobody is working on it right now)."""
    if connection.vendor == "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            # The transaction-level lock taken here is let go at once, at the end of the block.
            cursor.execute(
                "SELECT pg_try_advisory_xact_lock(%s, %s)", _lock_key(kind, pk)
            )
            return bool(cursor.fetchone()[0])
    return _sqlite_write_lock_is_free()


def _sqlite_write_lock_is_free() -> bool:
    """Whether another connection holds SQLite's write lock (any writer counts: when in doubt,
    the job is taken as alive and looked at again at the next sweep)."""
    probe = sqlite3.connect(connection.settings_dict["NAME"], timeout=0.5)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.rollback()
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()
