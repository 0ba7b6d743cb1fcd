"""Queued activity tasks on PostgresStore: claims within a queue's limits (see
:mod:`treadle.store.queues`). A claim is one transaction that first takes a
transaction-scoped advisory lock on the queue, so the claims of one queue by every worker
follow one another (those of other queues, and plain claims, go on side by side)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from treadle.store.base import ActivityWorkItem
from treadle.store.postgres.connection import Connections
from treadle.store.postgres.deadlines import NOT_OVERDUE, START_DEADLINE
from treadle.store.postgres.queue_limits import stored_queue
from treadle.store.postgres.sql import Conn, Db
from treadle.store.queues import ADMISSION_RETRY_S, QueueClaim, QueuedNames, queue_room
from treadle.store.serde import decode_propagation

__all__ = ["CONCURRENCY_RETRY_S", "admit_queued", "claim_queued"]

CONCURRENCY_RETRY_S = 0.02
"""How soon a worker looks again at a queue whose concurrency limit held tasks back."""

_LOCK_CLASS = 0x7EAD2  # pg_advisory_xact_lock(class, hashtext(queue)) serializes a queue

_OF_QUEUE = "app_id = %(app)s AND name = ANY(%(names)s::text[])"
_FREE = "visible_at <= {now} AND (lease_owner IS NULL OR lease_expires_at < {now}) AND " + _OF_QUEUE


def claim_queued(
    connections: Connections,
    owner: str,
    queued: QueuedNames,
    limit: int,
    lease_s: float,
    app_id: str,
) -> QueueClaim:
    """Lease up to ``limit`` tasks of ``queued`` within its queue's limits."""
    queue = queued.queue
    names = sorted(queued.priorities)
    params: dict[str, Any] = {
        "app": app_id,
        "names": names,
        "queue": queue.name,
        "lock": _LOCK_CLASS,
        "period": queue.period.total_seconds(),
        "owner": owner,
        "lease_s": float(lease_s),
        "prio_names": names,
        "prios": [queued.priorities[n] for n in names],
    }

    def work(db: Db, conn: Conn) -> Callable[[], QueueClaim]:
        db.execute(conn, "SELECT pg_advisory_xact_lock(%(lock)s, hashtext(%(queue)s))", params)
        queue = stored_queue(db, conn, queued.queue)  # (the store's limits, under the lock)
        params["period"] = queue.period.total_seconds()
        row = db.execute(
            conn,
            "SELECT extract(epoch FROM {now})::float8, (SELECT count(*) FROM activity_tasks "
            f"WHERE {_OF_QUEUE} AND lease_owner IS NOT NULL AND lease_expires_at >= {{now}})",
            params,
        ).fetchone()
        assert row is not None
        now, running = float(row[0]), int(row[1]) if queue.concurrency is not None else 0
        starts: list[float] = []
        if queue.rate_limit is not None:
            db.execute(
                conn,
                "DELETE FROM queue_starts WHERE queue = %(queue)s "
                "AND started_at <= {now} - make_interval(secs => %(period)s)",
                params,
            )
            starts = [
                float(r[0])
                for r in db.execute(
                    conn,
                    "SELECT extract(epoch FROM started_at)::float8 FROM queue_starts "
                    "WHERE queue = %(queue)s ORDER BY started_at",
                    params,
                ).fetchall()
            ]
        room, wait = queue_room(queue, running, starts, now)
        take = min(limit, room)
        rows: list[Any] = []
        if take > 0:
            rows = db.execute(
                conn,
                f"WITH picked AS (SELECT id FROM activity_tasks WHERE {_FREE} AND {NOT_OVERDUE} "
                "  ORDER BY COALESCE((SELECT p.prio FROM unnest(%(prio_names)s::text[], "
                "  %(prios)s::int[]) AS p(name, prio) WHERE p.name = activity_tasks.name), 0) "
                "  DESC, id LIMIT %(take)s FOR UPDATE SKIP LOCKED) "
                "UPDATE activity_tasks a SET lease_owner = %(owner)s, "
                "  deliveries = a.deliveries + 1, "
                f"  {START_DEADLINE}, "
                "  lease_expires_at = {now} + make_interval(secs => %(lease_s)s) "
                "FROM picked p WHERE a.id = p.id RETURNING a.id, a.instance_id, "
                "  a.execution_id, a.task_id, a.name, a.input, a.task_execution_id, "
                "  a.propagated, a.deliveries",
                {**params, "take": take},
            ).fetchall()
            if queue.rate_limit is not None and rows:
                db.execute(
                    conn,
                    "INSERT INTO queue_starts (queue, started_at) "
                    "SELECT %(queue)s, {now} FROM generate_series(1, %(n)s)",
                    {**params, "n": len(rows)},
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
                deliveries=r[8],
            )
            for r in sorted(rows)
        ]
        if len(items) == limit:
            return lambda: QueueClaim(items)
        waiting = db.execute(
            conn, f"SELECT EXISTS (SELECT 1 FROM activity_tasks WHERE {_FREE})", params
        ).fetchone()
        if not (waiting and waiting[0]):
            return lambda: QueueClaim(items)
        retry = wait if wait is not None else CONCURRENCY_RETRY_S
        return lambda: QueueClaim(items, retry)

    return connections.write(work)


_TERMINAL = "('COMPLETED', 'FAILED', 'TERMINATED', 'CANCELED')"


def admit_queued(connections: Connections, queued: QueuedNames, app_id: str) -> float | None:
    """Admit waiting instances of ``queued``'s workflows within its queue's limits (a slot
    each); return when to look again if some still wait (None: none wait)."""
    queue = queued.queue
    names = sorted(queued.priorities)
    params: dict[str, Any] = {
        "app": app_id,
        "names": names,
        "queue": queue.name,
        "lock": _LOCK_CLASS,
        "period": queue.period.total_seconds(),
        "prio_names": names,
        "prios": [queued.priorities[n] for n in names],
    }

    def work(db: Db, conn: Conn) -> Callable[[], float | None]:
        db.execute(conn, "SELECT pg_advisory_xact_lock(%(lock)s, hashtext(%(queue)s))", params)
        queue = stored_queue(db, conn, queued.queue)  # (the store's limits, under the lock)
        params["period"] = queue.period.total_seconds()
        # slots end with their instance (finished, purged, or replaced under its id)
        db.execute(
            conn,
            "DELETE FROM queue_slots s WHERE s.queue = %(queue)s AND NOT EXISTS (SELECT 1 "
            "FROM instances i WHERE i.instance_id = s.instance_id AND i.created_at <= "
            f"s.admitted_at AND i.status NOT IN {_TERMINAL})",
            params,
        )
        row = db.execute(
            conn,
            "SELECT extract(epoch FROM {now})::float8, "
            "(SELECT count(*) FROM queue_slots WHERE queue = %(queue)s)",
            params,
        ).fetchone()
        assert row is not None
        now, running = float(row[0]), int(row[1])
        starts: list[float] = []
        if queue.rate_limit is not None:
            db.execute(
                conn,
                "DELETE FROM queue_starts WHERE queue = %(queue)s "
                "AND started_at <= {now} - make_interval(secs => %(period)s)",
                params,
            )
            starts = [
                float(r[0])
                for r in db.execute(
                    conn,
                    "SELECT extract(epoch FROM started_at)::float8 FROM queue_starts "
                    "WHERE queue = %(queue)s ORDER BY started_at",
                    params,
                ).fetchall()
            ]
        room, wait = queue_room(queue, running, starts, now)
        waiting = db.execute(
            conn,
            "SELECT i.instance_id FROM inbox m JOIN instances i ON i.instance_id = m.instance_id "
            "WHERE m.visible_at <= {now} AND i.status = 'PENDING' AND i.app_id = %(app)s "
            "AND i.name = ANY(%(names)s::text[]) AND NOT EXISTS (SELECT 1 FROM queue_slots q "
            "WHERE q.instance_id = i.instance_id AND q.admitted_at >= i.created_at) "
            "GROUP BY i.instance_id, i.name ORDER BY COALESCE((SELECT p.prio FROM "
            "unnest(%(prio_names)s::text[], %(prios)s::int[]) AS p(name, prio) "
            "WHERE p.name = i.name), 0) DESC, MIN(m.id) LIMIT %(more)s",
            {**params, "more": room + 1},
        ).fetchall()
        admit = [r[0] for r in waiting[:room]]
        if admit:
            db.execute(
                conn,
                "INSERT INTO queue_slots (instance_id, queue, admitted_at) "
                "SELECT unnest(%(ids)s::text[]), %(queue)s, {now} "
                "ON CONFLICT (instance_id) DO UPDATE SET queue = excluded.queue, "
                "admitted_at = excluded.admitted_at",
                {**params, "ids": admit},
            )
            db.orchestrations = True  # the admitted ones are work for workers
            if queue.rate_limit is not None:
                db.execute(
                    conn,
                    "INSERT INTO queue_starts (queue, started_at) "
                    "SELECT %(queue)s, {now} FROM generate_series(1, %(n)s)",
                    {**params, "n": len(admit)},
                )
        if len(waiting) <= room:
            return lambda: None
        retry = wait if wait is not None else ADMISSION_RETRY_S
        return lambda: retry

    return connections.write(work)
