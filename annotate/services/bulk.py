"""Bulk writes for imports: reserved ids and COPY (PostgreSQL) or executemany (SQLite)."""

from __future__ import annotations

from typing import Any

import orjson
from django.db import connection


def json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def allocate_ids(model: type[Any], n: int) -> list[int]:
    """Reserve `n` primary keys of `model`'s table, so that rows can be copied in with them.

    PostgreSQL: from the identity sequence (safe under concurrency). SQLite: after the
    AUTOINCREMENT counter, which is safe because an import holds SQLite's write lock from
    its first statement (IMMEDIATE transactions) and inserting explicit ids advances it.
    """
    if n == 0:
        return []
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [table, n],
            )
            return [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
        row = cursor.fetchone()
        if row is None:
            cursor.execute(
                f"SELECT COALESCE(MAX(id), 0) FROM {connection.ops.quote_name(table)}"
            )
            row = cursor.fetchone()
        start = int(row[0]) + 1
        return list(range(start, start + n))


def insert_rows(
    model: type[Any], columns: list[str], rows: list[tuple[Any, ...]]
) -> None:
    """Insert plain rows: COPY on PostgreSQL, executemany elsewhere. No ids come back."""
    if not rows:
        return
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    cols = ", ".join(quote(c) for c in columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            from psycopg.copy import QueuedLibpqWriter

            # The queued writer sends from a thread while this one formats the next rows.
            raw = cursor.cursor
            with raw.copy(
                f"COPY {table} ({cols}) FROM STDIN", writer=QueuedLibpqWriter(raw)
            ) as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join(["%s"] * len(columns))
            cursor.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)
