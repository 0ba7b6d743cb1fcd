"""The rows of SqliteStore that several operations write: instances (created, replaced,
deleted), inbox messages, activity tasks and own tasks.

Every function runs in the caller's write transaction on ``conn``; times are seconds since
the epoch on the store's clock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from treadle.core.history import OrchestrationStatus
from treadle.errors import WorkflowAlreadyExistsError
from treadle.store.base import (
    ActivityWorkItem,
    NewActivity,
    NewInstance,
    NewMessage,
)
from treadle.store.own_tasks import own_task_from_json, own_task_matches
from treadle.store.serde import encode_event, encode_propagation, from_epoch, to_epoch

__all__ = [
    "TERMINAL_NAMES",
    "clear_own_task",
    "create_instance",
    "delete_instance",
    "enqueue_own_tasks",
    "insert_activity",
    "insert_instance",
    "insert_message",
]

TERMINAL_NAMES = tuple(s.name for s in OrchestrationStatus if s.is_terminal)


def insert_instance(
    conn: sqlite3.Connection,
    new: NewInstance,
    now: float,
    *,
    lease: tuple[str, float] | None = None,
) -> bool:
    """Insert ``new``'s row, PENDING; with ``lease`` (owner, until), leased, and only if the
    id is free (False: it was not). Without, the caller has made room for it."""
    owner, expires = lease if lease is not None else (None, None)
    cur = conn.execute(
        "INSERT INTO instances (instance_id, name, status, execution_id, input, created_at, "
        "updated_at, parent_instance_id, lease_owner, lease_expires_at, app_id) "
        "VALUES (?, ?, 'PENDING', ?, ?, ?, ?, ?, ?, ?, ?)"
        + (" ON CONFLICT (instance_id) DO NOTHING" if lease is not None else ""),
        (
            new.instance_id,
            new.name,
            new.execution_id,
            new.input,
            now,
            now,
            new.parent.instance_id if new.parent else None,
            owner,
            expires,
            new.app_id,
        ),
    )
    return cur.rowcount == 1


def create_instance(conn: sqlite3.Connection, new: NewInstance, now: float) -> None:
    """Create ``new`` with its ExecutionStarted message (or its given history: a rerun),
    replacing a finished instance with its id.

    Raises:
        WorkflowAlreadyExistsError: an unfinished instance has the id.
    """
    row = conn.execute(
        "SELECT status FROM instances WHERE instance_id = ?", (new.instance_id,)
    ).fetchone()
    if row is not None:
        if row[0] not in TERMINAL_NAMES:
            raise WorkflowAlreadyExistsError(
                f"workflow instance {new.instance_id!r} already exists and is {row[0]}; "
                "wait for it to finish, terminate it, or choose another instance id"
            )
        delete_instance(conn, new.instance_id)
    insert_instance(conn, new, now)
    if new.history:
        _adopt_history(conn, new, now)
        return
    start = new.started_event(from_epoch(now))
    visible = max(now, to_epoch(new.scheduled_start)) if new.scheduled_start else now
    conn.execute(
        "INSERT INTO inbox (instance_id, execution_id, event, visible_at) VALUES (?, ?, ?, ?)",
        (new.instance_id, new.execution_id, encode_event(start), visible),
    )


def _adopt_history(conn: sqlite3.Connection, new: NewInstance, now: float) -> None:
    """Start a created instance from a given history (a rerun), RUNNING."""
    conn.executemany(
        "INSERT INTO history (instance_id, seq, event) VALUES (?, ?, ?)",
        [(new.instance_id, i, encode_event(e)) for i, e in enumerate(new.history)],
    )
    conn.execute(
        "UPDATE instances SET status = 'RUNNING', history_len = ? WHERE instance_id = ?",
        (len(new.history), new.instance_id),
    )
    for task in new.activities:
        insert_activity(conn, task, None, now, 0.0)
    for message in new.messages:
        visible = to_epoch(message.visible_at) if message.visible_at else now
        insert_message(conn, message, visible)


def delete_instance(conn: sqlite3.Connection, instance_id: str) -> None:
    """Delete everything stored for the instance."""
    for table in ("history", "inbox", "activity_tasks", "instances"):
        conn.execute(f"DELETE FROM {table} WHERE instance_id = ?", (instance_id,))


def insert_message(conn: sqlite3.Connection, message: NewMessage, visible: float) -> None:
    """Put ``message`` in its instance's inbox, visible from ``visible``."""
    conn.execute(
        "INSERT INTO inbox (instance_id, execution_id, event, visible_at) VALUES (?, ?, ?, ?)",
        (message.instance_id, message.execution_id, encode_event(message.event), visible),
    )


def insert_activity(
    conn: sqlite3.Connection,
    task: NewActivity,
    owner: str | None,
    now: float,
    lease_s: float,
    *,
    delivered: bool = False,
) -> int:
    """Queue ``task`` (leased to ``owner`` if it says so and there is one); return its id.
    ``delivered``: it was handed to a worker already (an own task whose worker died), which
    counts as a delivery as a lease taken now does."""
    leased = task.leased and owner is not None
    cur = conn.execute(
        "INSERT INTO activity_tasks (instance_id, execution_id, task_id, name, input, "
        "task_execution_id, visible_at, lease_owner, lease_expires_at, propagated, app_id, "
        "heartbeat_s, deliveries, timeout_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            task.instance_id,
            task.execution_id,
            task.task_id,
            task.name,
            task.input,
            task.task_execution_id,
            now,
            owner if leased else None,
            now + lease_s if leased else None,
            encode_propagation(task.propagated),
            task.app_id,
            task.heartbeat_s,
            1 if leased or delivered else 0,
            task.timeout_s,
        ),
    )
    return int(cur.lastrowid or 0)


def enqueue_own_tasks(
    conn: sqlite3.Connection, where: str, params: Sequence[object], now: float
) -> bool:
    """Turn the own tasks of the instances ``where`` selects into ordinary task rows,
    for any worker; their instances' versions move on, fencing off turns that would
    still consume them. Returns whether there were any (activities to claim)."""
    rows = conn.execute(
        f"SELECT instance_id, own_task FROM instances WHERE own_task IS NOT NULL AND {where}",
        tuple(params),
    ).fetchall()
    if not rows:
        return False
    for iid, text in rows:
        insert_activity(conn, own_task_from_json(iid, text), None, now, 0.0, delivered=True)
    conn.executemany(
        "UPDATE instances SET own_task = NULL, version = version + 1 WHERE instance_id = ?",
        [(r[0],) for r in rows],
    )
    return True


def clear_own_task(conn: sqlite3.Connection, item: ActivityWorkItem) -> bool:
    """Clear the instance's own task if it is ``item``'s (to record its result)."""
    row = conn.execute(
        "SELECT own_task FROM instances WHERE instance_id = ?", (item.instance_id,)
    ).fetchone()
    if row is None or not own_task_matches(row[0], item):
        return False  # recorded already, queued as a row, or the run finished
    conn.execute(
        "UPDATE instances SET own_task = NULL, version = version + 1 WHERE instance_id = ?",
        (item.instance_id,),
    )
    return True
