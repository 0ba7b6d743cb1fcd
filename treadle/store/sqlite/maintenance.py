"""Retention on SqliteStore (see :mod:`treadle.store.retention`): purges by filter in short
batches, the space they free given back, and store-wide named leases."""

from __future__ import annotations

import sqlite3
from typing import Any

from treadle.store.retention import PurgeFilter
from treadle.store.serde import to_epoch
from treadle.store.sqlite.connection import Connections
from treadle.store.sqlite.rows import delete_instance

__all__ = ["purge_finished", "reclaim_space", "try_lease"]

FINISHED_SQL = "status IN ('COMPLETED', 'FAILED', 'TERMINATED', 'CANCELED')"
"""Whether an instance has finished, by its status."""

INDEXED_SQL = "finished_at IS NOT NULL"
"""The predicate of the partial index ``instances_finished``, word for word (so the planner
may use it): the instances that finished, by the time they did (``finished_at``, which only
the write that ends an instance sets; see schema version 10)."""


_NO_UNFINISHED_CHILD = (
    "NOT EXISTS (SELECT 1 FROM instances c WHERE c.parent_instance_id = instances.instance_id "
    f"AND NOT c.{FINISHED_SQL})"
)


def filter_sql(which: PurgeFilter) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) of the finished instances ``which`` matches."""
    statuses = [s.name for s in which.finished_statuses]
    clauses = [INDEXED_SQL, f"status IN ({','.join('?' * len(statuses))})"]
    params: list[Any] = list(statuses)
    if which.name is not None:
        clauses.append("name = ?")
        params.append(which.name)
    if which.created_from is not None:
        clauses.append("created_at >= ?")
        params.append(to_epoch(which.created_from))
    if which.created_to is not None:
        clauses.append("created_at < ?")
        params.append(to_epoch(which.created_to))
    if which.finished_before is not None:
        clauses.append("finished_at < ?")
        params.append(to_epoch(which.finished_before))
    # a parent whose child still runs is kept: the child reports to it when it finishes
    clauses.append(_NO_UNFINISHED_CHILD)
    return " AND ".join(clauses), params


def purge_finished(db: Connections, which: PurgeFilter, limit: int, dry_run: bool) -> list[str]:
    """Delete (or with ``dry_run`` find) up to ``limit`` matching finished instances, the
    ones that finished first, in one transaction; return their ids."""
    where, params = filter_sql(which)
    query = (
        f"SELECT instance_id FROM instances WHERE {where} ORDER BY finished_at, instance_id LIMIT ?"
    )
    if dry_run:
        with db.errors():
            return [r[0] for r in db.conn().execute(query, (*params, limit))]
    # clients waiting on them are woken; workers have nothing new to claim
    with db.errors(), db.write(kinds=(False, False)) as conn:
        ids = [r[0] for r in conn.execute(query, (*params, limit))]
        for iid in ids:
            delete_instance(conn, iid)
    return ids


def reclaim_space(db: Connections) -> None:
    """Return free pages to the file system (``PRAGMA incremental_vacuum``: a no-op unless
    the database has ``auto_vacuum=incremental``)."""
    with db.errors(), db.write(notify=False, durable=False) as conn:
        _drain(conn.execute("PRAGMA incremental_vacuum"))


def _drain(cursor: sqlite3.Cursor) -> None:
    # incremental_vacuum frees one page per row fetched: step it to the end
    for _ in cursor:
        pass


def try_lease(db: Connections, name: str, owner: str, lease_s: float, now: float) -> bool:
    """Take or renew the lease ``name`` for ``owner``; return whether it holds it."""
    with db.errors(), db.write(notify=False, durable=False) as conn:
        row = conn.execute(
            "INSERT INTO leases (name, owner, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
            "expires_at = excluded.expires_at "
            "WHERE leases.owner = excluded.owner OR leases.expires_at < ? "
            "RETURNING owner",
            (name, owner, now + lease_s, now),
        ).fetchone()
    return row is not None
