"""The rows a store holds, read straight from its database (not through the Store protocol),
for tests that compare what different code paths wrote."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from treadle.store.base import Store

Rows = dict[str, list[tuple[Any, ...]]]
"""Table name -> its rows, in a defined order."""

# Every column of every table, ordered so that rows compare the same on every backend.
TABLES = {
    "instances": (
        "instance_id, name, status, execution_id, input, output, custom_status, failure, "
        "created_at, updated_at, parent_instance_id, history_len, version, lease_owner, "
        "lease_expires_at, own_task, app_id, waiting, finished_at",
        "instance_id",
    ),
    "history": ("instance_id, seq, event", "instance_id, seq"),
    "inbox": ("id, instance_id, execution_id, event, visible_at", "instance_id, id"),
    "activity_tasks": (
        "id, instance_id, execution_id, task_id, name, input, task_execution_id, visible_at, "
        "lease_owner, lease_expires_at, app_id",
        "id",
    ),
}


def column(table: str, name: str) -> int:
    """The place of column ``name`` in the rows of ``table`` that :func:`read_rows` reads."""
    return [c.strip() for c in TABLES[table][0].split(",")].index(name)


def read_rows(store: Store) -> Rows:
    """Every row of the store's tables (times as seconds since the epoch)."""
    scheme = store.url.split(":", 1)[0]
    if scheme in ("postgres", "postgresql"):
        return _postgres_rows(store.url)
    return _sqlite_rows(store.url)


def _sqlite_rows(url: str) -> Rows:
    from treadle.store.sqlite import parse_sqlite_url

    database, is_uri, _ = parse_sqlite_url(url)
    conn = sqlite3.connect(database, uri=is_uri)
    try:
        return {
            table: [
                tuple(row)
                for row in conn.execute(f"SELECT {columns} FROM {table} ORDER BY {order}")
            ]
            for table, (columns, order) in TABLES.items()
        }
    finally:
        conn.close()


def _postgres_rows(url: str) -> Rows:
    import psycopg
    from psycopg import sql

    from treadle.store.postgres import parse_postgres_url

    conninfo, schema, _ = parse_postgres_url(url)
    assert schema is not None, "a test store has a schema of its own"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        return {
            table: [
                tuple(v.timestamp() if isinstance(v, datetime) else v for v in row)
                for row in conn.execute(f"SELECT {columns} FROM {table} ORDER BY {order}")
            ]
            for table, (columns, order) in TABLES.items()
        }
