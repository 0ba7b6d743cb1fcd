"""Queue limits kept in PostgresStore, shared by every worker (see
:mod:`treadle.store.queues`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from treadle.store.postgres.connection import Connections
from treadle.store.postgres.sql import Conn, Db
from treadle.store.queues import Queue, QueueLimits

__all__ = ["list_queue_limits", "put_queue_limits", "release_queue_limits", "stored_queue"]

_COLUMNS = "queue, concurrency, rate_limit, period_s, pinned, updated_by, updated_at"


def stored_queue(db: Db, conn: Conn, queue: Queue) -> Queue:
    """The limits of ``queue`` as the store keeps them (``queue`` itself if it keeps none),
    read in the caller's transaction."""
    row = db.execute(
        conn,
        "SELECT concurrency, rate_limit, period_s FROM queue_limits WHERE queue = %(queue)s",
        {"queue": queue.name},
    ).fetchone()
    if row is None:
        return queue
    return Queue(queue.name, row[0], row[1], timedelta(seconds=row[2]))


def put_queue_limits(
    connections: Connections, queue: Queue, by: str, pinned: bool
) -> QueueLimits | None:
    """Store ``queue``'s limits (see :meth:`QueueStore.put_queue_limits`)."""
    params: dict[str, Any] = {
        "queue": queue.name,
        "conc": queue.concurrency,
        "rate": queue.rate_limit,
        "period": queue.period.total_seconds(),
        "pinned": pinned,
        "by": by,
    }

    def work(db: Db, conn: Conn) -> Callable[[], QueueLimits | None]:
        row = db.execute(
            conn,
            f"SELECT {_COLUMNS} FROM queue_limits WHERE queue = %(queue)s FOR UPDATE",
            params,
        ).fetchone()
        before = None if row is None else _limits(row)
        if before is None or pinned or not before.pinned:
            db.execute(
                conn,
                f"INSERT INTO queue_limits ({_COLUMNS}) VALUES (%(queue)s, %(conc)s, "
                "%(rate)s, %(period)s, %(pinned)s, %(by)s, {now}) "
                "ON CONFLICT (queue) DO UPDATE SET concurrency = excluded.concurrency, "
                "rate_limit = excluded.rate_limit, period_s = excluded.period_s, "
                "pinned = excluded.pinned, updated_by = excluded.updated_by, "
                "updated_at = excluded.updated_at",
                params,
            )
        return lambda: before

    return connections.write(work)


def list_queue_limits(connections: Connections) -> list[QueueLimits]:
    """Every queue's stored limits, by name."""
    rows = connections.statement(f"SELECT {_COLUMNS} FROM queue_limits ORDER BY queue")
    return [_limits(r) for r in rows]


def release_queue_limits(connections: Connections, name: str) -> bool:
    """Unpin a queue's limits; False if there are none."""
    rows = connections.statement(
        "UPDATE queue_limits SET pinned = false WHERE queue = %(queue)s RETURNING 1",
        {"queue": name},
    )
    return bool(rows)


def _limits(row: Any) -> QueueLimits:
    return QueueLimits(
        queue=Queue(row[0], row[1], row[2], timedelta(seconds=row[3])),
        pinned=bool(row[4]),
        updated_by=row[5],
        updated_at=row[6],
    )
