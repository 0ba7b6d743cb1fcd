"""Queue limits kept in SqliteStore, shared by every worker (see :mod:`treadle.store.queues`)."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from typing import Any

from treadle.store.queues import Queue, QueueLimits
from treadle.store.sqlite.connection import Connections

__all__ = ["list_queue_limits", "put_queue_limits", "release_queue_limits", "stored_queue"]

_COLUMNS = "queue, concurrency, rate_limit, period_s, pinned, updated_by, updated_at"


def stored_queue(conn: sqlite3.Connection, queue: Queue) -> Queue:
    """The limits of ``queue`` as the store keeps them (``queue`` itself if it keeps none),
    read in the caller's transaction."""
    row = conn.execute(
        "SELECT concurrency, rate_limit, period_s FROM queue_limits WHERE queue = ?",
        (queue.name,),
    ).fetchone()
    if row is None:
        return queue
    return Queue(queue.name, row[0], row[1], timedelta(seconds=row[2]))


def put_queue_limits(
    db: Connections, queue: Queue, by: str, pinned: bool, now: float
) -> QueueLimits | None:
    """Store ``queue``'s limits (see :meth:`QueueStore.put_queue_limits`)."""
    with db.errors(), db.write(notify=False) as conn:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM queue_limits WHERE queue = ?", (queue.name,)
        ).fetchone()
        before = None if row is None else _limits(row)
        if before is not None and before.pinned and not pinned:
            return before
        conn.execute(
            f"INSERT INTO queue_limits ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (queue) DO UPDATE SET concurrency = excluded.concurrency, "
            "rate_limit = excluded.rate_limit, period_s = excluded.period_s, "
            "pinned = excluded.pinned, updated_by = excluded.updated_by, "
            "updated_at = excluded.updated_at",
            (
                queue.name,
                queue.concurrency,
                queue.rate_limit,
                queue.period.total_seconds(),
                int(pinned),
                by,
                now,
            ),
        )
    return before


def list_queue_limits(db: Connections) -> list[QueueLimits]:
    """Every queue's stored limits, by name."""
    with db.errors():
        rows = db.conn().execute(f"SELECT {_COLUMNS} FROM queue_limits ORDER BY queue")
        return [_limits(r) for r in rows.fetchall()]


def release_queue_limits(db: Connections, name: str) -> bool:
    """Unpin a queue's limits; False if there are none."""
    with db.errors(), db.write(notify=False) as conn:
        cur = conn.execute("UPDATE queue_limits SET pinned = 0 WHERE queue = ?", (name,))
        return cur.rowcount == 1


def _limits(row: Any) -> QueueLimits:
    return QueueLimits(
        queue=Queue(row[0], row[1], row[2], timedelta(seconds=row[3])),
        pinned=bool(row[4]),
        updated_by=row[5],
        updated_at=datetime.fromtimestamp(row[6], timezone.utc),
    )
