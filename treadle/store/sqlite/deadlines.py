"""Start-to-close activity deadlines on SqliteStore (see :mod:`treadle.store.deadlines`)."""

from __future__ import annotations

from datetime import datetime, timezone

from treadle.store.base import NewMessage
from treadle.store.deadlines import timeout_failed
from treadle.store.sqlite.connection import Connections
from treadle.store.sqlite.rows import insert_message

__all__ = ["NOT_OVERDUE", "START_DEADLINE", "expire_activity_deadlines"]

NOT_OVERDUE = "(deadline_at IS NULL OR deadline_at > ?)"
"""A claim's condition (one parameter: now): the task's attempt is not past its deadline."""

START_DEADLINE = "deadline_at = COALESCE(deadline_at, ? + timeout_s)"
"""A claim's assignment (one parameter: now): the first claim of an attempt with a timeout
starts its clock; a claim after its worker died keeps the deadline (NULL without timeout)."""


def expire_activity_deadlines(db: Connections, now: float, limit: int) -> int:
    """Fail up to ``limit`` attempts past their deadline: delete each task and put a
    TaskFailed (TimeoutError) in its instance's inbox, in one transaction; return how many."""
    due = "deadline_at IS NOT NULL AND deadline_at <= ?"
    with db.errors():
        found = db.conn().execute(f"SELECT 1 FROM activity_tasks WHERE {due} LIMIT 1", (now,))
        if found.fetchone() is None:  # (the common case: a read, no write lock)
            return 0
    timestamp = datetime.fromtimestamp(now, timezone.utc)
    with db.errors(), db.write(kinds=(True, False)) as conn:
        rows = conn.execute(
            "SELECT id, instance_id, execution_id, task_id, name, task_execution_id, timeout_s "
            f"FROM activity_tasks WHERE {due} ORDER BY deadline_at, id LIMIT ?",
            (now, limit),
        ).fetchall()
        for row_id, iid, eid, task_id, name, teid, timeout_s in rows:
            conn.execute("DELETE FROM activity_tasks WHERE id = ?", (row_id,))
            event = timeout_failed(
                name=name,
                task_id=task_id,
                task_execution_id=teid,
                timeout_s=timeout_s,
                timestamp=timestamp,
            )
            insert_message(conn, NewMessage(iid, event, execution_id=eid), now)
    return len(rows)
