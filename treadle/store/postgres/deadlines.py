"""Start-to-close activity deadlines on PostgresStore (see :mod:`treadle.store.deadlines`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from treadle.store.deadlines import timeout_failed
from treadle.store.postgres.connection import Connections
from treadle.store.postgres.sql import Conn, Db
from treadle.store.serde import encode_event

__all__ = ["NOT_OVERDUE", "START_DEADLINE", "expire_activity_deadlines"]

NOT_OVERDUE = "(deadline_at IS NULL OR deadline_at > {now})"
"""A claim's condition: the task's attempt is not past its deadline."""

START_DEADLINE = "deadline_at = COALESCE(a.deadline_at, {now} + make_interval(secs => a.timeout_s))"
"""A claim's assignment (on ``activity_tasks a``): the first claim of an attempt with a
timeout starts its clock; a claim after its worker died keeps the deadline (NULL without
timeout)."""


def expire_activity_deadlines(connections: Connections, limit: int) -> int:
    """Fail up to ``limit`` attempts past their deadline: delete each task and put a
    TaskFailed (TimeoutError) in its instance's inbox, in one transaction; return how many."""
    found = connections.statement(
        "SELECT 1 FROM activity_tasks WHERE deadline_at IS NOT NULL AND deadline_at <= {now} "
        "LIMIT 1"
    )
    if not found:  # (the common case: one cheap read through the partial index)
        return 0

    def work(db: Db, conn: Conn) -> Callable[[], int]:
        rows = db.execute(
            conn,
            "WITH due AS (SELECT id FROM activity_tasks WHERE deadline_at IS NOT NULL "
            "  AND deadline_at <= {now} ORDER BY deadline_at, id LIMIT %(limit)s "
            "  FOR UPDATE SKIP LOCKED) "
            "DELETE FROM activity_tasks a USING due WHERE a.id = due.id RETURNING a.id, "
            "  a.instance_id, a.execution_id, a.task_id, a.name, a.task_execution_id, "
            "  a.timeout_s, {now}",
            {"limit": limit},
        ).fetchall()
        rows.sort()
        if rows:
            events = [_event(r) for r in rows]
            db.execute(
                conn,
                "INSERT INTO inbox (instance_id, execution_id, event, visible_at) "
                "SELECT r.iid, r.eid, r.event, {now} FROM unnest(%(iids)s::text[], "
                "  %(eids)s::text[], %(events)s::text[]) WITH ORDINALITY "
                "  AS r(iid, eid, event, ord) ORDER BY r.ord",
                {"iids": [r[1] for r in rows], "eids": [r[2] for r in rows], "events": events},
            )
            db.orchestrations = True
        count = len(rows)
        return lambda: count

    return connections.write(work, notify=False)


def _event(row: Any) -> str:
    return encode_event(
        timeout_failed(
            name=row[4],
            task_id=row[3],
            task_execution_id=row[5],
            timeout_s=row[6],
            timestamp=row[7],
        )
    )
