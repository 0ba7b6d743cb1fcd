"""Retention on PostgresStore (see :mod:`treadle.store.retention`): purges by filter in short
batches and store-wide named leases.

A batch locks the rows it deletes with ``FOR UPDATE SKIP LOCKED``: a row some other
transaction holds (a purge racing this one, a client replacing the instance) is left for the
next batch rather than waited for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from treadle.store.postgres.connection import Connections
from treadle.store.postgres.sql import NOSYNC, Conn, Db, utc
from treadle.store.retention import PurgeFilter

__all__ = ["purge_finished", "try_lease"]

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


def _filter_sql(which: PurgeFilter) -> tuple[str, dict[str, Any]]:
    clauses = [INDEXED_SQL, "status = ANY(%(statuses)s::text[])"]
    params: dict[str, Any] = {"statuses": [s.name for s in which.finished_statuses]}
    if which.name is not None:
        clauses.append("name = %(name)s")
        params["name"] = which.name
    if which.created_from is not None:
        clauses.append("created_at >= %(created_from)s")
        params["created_from"] = utc(which.created_from)
    if which.created_to is not None:
        clauses.append("created_at < %(created_to)s")
        params["created_to"] = utc(which.created_to)
    if which.finished_before is not None:
        clauses.append("finished_at < %(finished_before)s")
        params["finished_before"] = utc(which.finished_before)
    # a parent whose child still runs is kept: the child reports to it when it finishes
    clauses.append(_NO_UNFINISHED_CHILD)
    return " AND ".join(clauses), params


def purge_finished(
    connections: Connections, which: PurgeFilter, limit: int, dry_run: bool
) -> list[str]:
    """Delete (or with ``dry_run`` find) up to ``limit`` matching finished instances, the
    ones that finished first, in one transaction; return their ids."""
    where, params = _filter_sql(which)
    params["limit"] = limit
    select = (
        f"SELECT instance_id FROM instances WHERE {where} "
        "ORDER BY finished_at, instance_id LIMIT %(limit)s"
    )
    if dry_run:
        rows = connections.run(lambda db, conn: db.execute(conn, select, params).fetchall())
        return [r[0] for r in rows]

    def work(db: Db, conn: Conn) -> Callable[[], list[str]]:
        rows = db.execute(conn, f"{select} FOR UPDATE SKIP LOCKED", params).fetchall()
        ids = [r[0] for r in rows]
        if ids:
            db.delete_instances(conn, ids)
            db.status_changed = True  # clients waiting on them; no work for workers
        return lambda: ids

    return connections.write(work)


def try_lease(connections: Connections, name: str, owner: str, lease_s: float) -> bool:
    """Take or renew the lease ``name`` for ``owner``; return whether it holds it."""
    rows = connections.statement(
        f"WITH {NOSYNC} INSERT INTO leases (name, owner, expires_at) "
        "SELECT %(name)s, %(owner)s, {now} + make_interval(secs => %(lease)s) FROM nosync "
        "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
        "expires_at = excluded.expires_at "
        "WHERE leases.owner = excluded.owner OR leases.expires_at < {now} "
        "RETURNING owner",
        {"name": name, "owner": owner, "lease": lease_s},
    )
    return bool(rows)
