"""Queued activity tasks on SqliteStore: claims within a queue's limits (see
:mod:`treadle.store.queues`). Every claim is one write transaction: SQLite's single writer
serializes the claims of every worker, so counting and leasing happen together."""

from __future__ import annotations

import sqlite3
from typing import Any

from treadle.store.base import ActivityWorkItem
from treadle.store.queues import ADMISSION_RETRY_S, QueueClaim, QueuedNames, queue_room
from treadle.store.serde import decode_propagation
from treadle.store.sqlite.connection import Connections
from treadle.store.sqlite.deadlines import NOT_OVERDUE, START_DEADLINE
from treadle.store.sqlite.queue_limits import stored_queue

__all__ = ["CONCURRENCY_RETRY_S", "admit_queued", "claim_queued"]

CONCURRENCY_RETRY_S = 0.02
"""How soon a worker looks again at a queue whose concurrency limit held tasks back (a task
finishing in another process wakes nobody here)."""


def claim_queued(
    db: Connections,
    owner: str,
    queued: QueuedNames,
    limit: int,
    lease_s: float,
    app_id: str,
    now: float,
) -> QueueClaim:
    """Lease up to ``limit`` tasks of ``queued`` within its queue's limits."""
    with db.errors(), db.write(notify=False, durable=False) as conn:
        return _claim(conn, owner, queued, limit, lease_s, app_id, now)


def _claim(
    conn: sqlite3.Connection,
    owner: str,
    queued: QueuedNames,
    limit: int,
    lease_s: float,
    app_id: str,
    now: float,
) -> QueueClaim:
    queue = stored_queue(conn, queued.queue)
    names = sorted(queued.priorities)
    marks = ",".join("?" * len(names))
    of_queue = f"app_id = ? AND name IN ({marks})"
    running = 0
    if queue.concurrency is not None:
        row = conn.execute(
            f"SELECT COUNT(*) FROM activity_tasks WHERE {of_queue} "
            "AND lease_owner IS NOT NULL AND lease_expires_at >= ?",
            (app_id, *names, now),
        ).fetchone()
        running = int(row[0])
    starts: list[float] = []
    if queue.rate_limit is not None:
        conn.execute(
            "DELETE FROM queue_starts WHERE queue = ? AND started_at <= ?",
            (queue.name, now - queue.period.total_seconds()),
        )
        starts = [
            r[0]
            for r in conn.execute(
                "SELECT started_at FROM queue_starts WHERE queue = ? ORDER BY started_at",
                (queue.name,),
            )
        ]
    room, wait = queue_room(queue, running, starts, now)
    take = min(limit, room)
    free = f"visible_at <= ? AND (lease_owner IS NULL OR lease_expires_at < ?) AND {of_queue}"
    claimable = f"{free} AND {NOT_OVERDUE}"
    items: list[ActivityWorkItem] = []
    if take > 0:
        order: list[Any] = []
        for name in names:
            order += [name, queued.priorities[name]]
        cases = " ".join("WHEN ? THEN ?" for _ in names)
        rows = conn.execute(
            "SELECT id, instance_id, execution_id, task_id, name, input, task_execution_id, "
            f"propagated, deliveries FROM activity_tasks WHERE {claimable} "
            f"ORDER BY CASE name {cases} ELSE 0 END DESC, id LIMIT ?",
            (now, now, app_id, *names, now, *order, take),
        ).fetchall()
        conn.executemany(
            "UPDATE activity_tasks SET lease_owner = ?, lease_expires_at = ?, "
            f"deliveries = deliveries + 1, {START_DEADLINE} WHERE id = ?",
            [(owner, now + lease_s, now, r[0]) for r in rows],
        )
        if queue.rate_limit is not None and rows:
            conn.executemany(
                "INSERT INTO queue_starts (queue, started_at) VALUES (?, ?)",
                [(queue.name, now)] * len(rows),
            )
        items = [
            ActivityWorkItem(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                r[6],
                decode_propagation(r[7]),
                deliveries=r[8] + 1,
            )
            for r in rows
        ]
        if len(items) == limit:
            return QueueClaim(items)  # the worker is full: it looks again when one finishes
    waiting = conn.execute(
        f"SELECT 1 FROM activity_tasks WHERE {free} LIMIT 1", (now, now, app_id, *names)
    ).fetchone()
    if waiting is None:
        return QueueClaim(items)
    return QueueClaim(items, wait if wait is not None else CONCURRENCY_RETRY_S)


_TERMINAL = "('COMPLETED', 'FAILED', 'TERMINATED', 'CANCELED')"


def admit_queued(db: Connections, queued: QueuedNames, app_id: str, now: float) -> float | None:
    """Admit waiting instances of ``queued``'s workflows within its queue's limits (a slot
    each); return when to look again if some still wait (None: none wait)."""
    names = sorted(queued.priorities)
    marks = ",".join("?" * len(names))
    with db.errors(), db.write(kinds=(True, False)) as conn:
        queue = stored_queue(conn, queued.queue)
        # slots end with their instance (finished, purged, or replaced under its id)
        conn.execute(
            "DELETE FROM queue_slots WHERE queue = ? AND NOT EXISTS (SELECT 1 FROM instances i "
            "WHERE i.instance_id = queue_slots.instance_id AND i.created_at <= "
            f"queue_slots.admitted_at AND i.status NOT IN {_TERMINAL})",
            (queue.name,),
        )
        (running,) = conn.execute(
            "SELECT COUNT(*) FROM queue_slots WHERE queue = ?", (queue.name,)
        ).fetchone()
        starts: list[float] = []
        if queue.rate_limit is not None:
            conn.execute(
                "DELETE FROM queue_starts WHERE queue = ? AND started_at <= ?",
                (queue.name, now - queue.period.total_seconds()),
            )
            starts = [
                r[0]
                for r in conn.execute(
                    "SELECT started_at FROM queue_starts WHERE queue = ? ORDER BY started_at",
                    (queue.name,),
                )
            ]
        room, wait = queue_room(queue, int(running), starts, now)
        order: list[Any] = []
        for name in names:
            order += [name, queued.priorities[name]]
        cases = " ".join("WHEN ? THEN ?" for _ in names)
        waiting = conn.execute(
            "SELECT i.instance_id FROM inbox m JOIN instances i ON i.instance_id = m.instance_id "
            f"WHERE m.visible_at <= ? AND i.status = 'PENDING' AND i.app_id = ? "
            f"AND i.name IN ({marks}) AND NOT EXISTS (SELECT 1 FROM queue_slots q "
            "WHERE q.instance_id = i.instance_id AND q.admitted_at >= i.created_at) "
            f"GROUP BY i.instance_id ORDER BY CASE i.name {cases} ELSE 0 END DESC, MIN(m.id) "
            "LIMIT ?",
            (now, app_id, *names, *order, room + 1),
        ).fetchall()
        admit = [r[0] for r in waiting[:room]]
        conn.executemany(
            "INSERT INTO queue_slots (instance_id, queue, admitted_at) VALUES (?, ?, ?) "
            "ON CONFLICT (instance_id) DO UPDATE SET queue = excluded.queue, "
            "admitted_at = excluded.admitted_at",
            [(iid, queue.name, now) for iid in admit],
        )
        if queue.rate_limit is not None and admit:
            conn.executemany(
                "INSERT INTO queue_starts (queue, started_at) VALUES (?, ?)",
                [(queue.name, now)] * len(admit),
            )
    if len(waiting) <= room:
        return None
    return wait if wait is not None else ADMISSION_RETRY_S
