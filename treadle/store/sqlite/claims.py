"""Claims and leases of SqliteStore: leasing instances and activity tasks, renewing and giving
leases back, and moving own tasks to the queue when their instance's lease passes on.

Claims look first with a cheap read, and take the write lock only when there is something to
claim. Lease bookkeeping commits without an fsync (see :meth:`.Connections.write`).
"""

from __future__ import annotations

from collections.abc import Sequence

from treadle.store.base import (
    TERMINATION_PREFIX,
    ActivityWorkItem,
    InboxMessage,
    OrchestrationWorkItem,
)
from treadle.store.serde import (
    INSTANCE_COLUMNS,
    decode_event,
    decode_propagation,
    instance_from_row,
)
from treadle.store.sqlite.connection import Connections
from treadle.store.sqlite.deadlines import NOT_OVERDUE, START_DEADLINE
from treadle.store.sqlite.rows import enqueue_own_tasks

__all__ = ["claim_activities", "claim_orchestrations", "release_leases", "renew_leases"]

_LAPSED_OWN = (
    "SELECT 1 FROM instances WHERE lease_owner IS NOT NULL AND lease_expires_at < ? "
    "AND own_task IS NOT NULL"
)
"""Instances whose lease lapsed with an own task (uses the index instances_held)."""


ADMITTED_SQL = (
    "(i.status <> 'PENDING' OR EXISTS (SELECT 1 FROM queue_slots q "
    "WHERE q.instance_id = i.instance_id AND q.admitted_at >= i.created_at))"
)
"""An instance that started, or whose queue admitted it (a live slot: not one left by an
earlier instance of the same id)."""


def _of_worker(
    table: str, app_id: str, names: Sequence[str] | None, *, terminations: bool = False
) -> tuple[str, list[object]]:
    """The condition (and its parameters) that a row of ``table`` is work of this worker:
    of its app, and (unless it takes any name) of one of its names; with ``terminations``,
    an instance of its app asked to terminate is its work whatever its name."""
    if names is None:
        return f" AND {table}.app_id = ?", [app_id]
    marks = ",".join("?" * len(names))
    named = f"{table}.name IN ({marks})"
    if terminations:
        named = f"({named} OR EXISTS (SELECT 1 FROM inbox x WHERE x.instance_id = "
        named += f"{table}.instance_id AND x.event LIKE '{TERMINATION_PREFIX}%'))"
    return f" AND {table}.app_id = ? AND {named}", [app_id, *names]


def claim_orchestrations(
    db: Connections,
    owner: str,
    limit: int,
    lease_s: float,
    exclude: Sequence[str],
    now: float,
    *,
    app_id: str = "",
    names: Sequence[str] | None = None,
    admitted: bool = False,
) -> list[OrchestrationWorkItem]:
    """Lease instances with visible inbox messages, of ``app_id`` and the workflows ``names``
    (any when None), or asked to terminate; return them with those messages. Claiming one
    clears its waiting note. ``admitted``: only instances that started, or that a queue
    admitted (see :mod:`treadle.store.queues`)."""
    excluded = set(exclude)
    mine, mine_params = _of_worker("i", app_id, names, terminations=True)
    if admitted:
        mine += f" AND {ADMITTED_SQL}"
    with db.errors():
        # A cheap read first: most calls find nothing, and then take no write lock. Both
        # reads go from the inbox's visible messages to their instances (CROSS JOIN fixes
        # that order in SQLite): the other order, which the planner picks for the GROUP BY
        # below, reads every instance the store holds, finished ones too, on every claim.
        found = (
            db.conn()
            .execute(
                "SELECT 1 FROM inbox m CROSS JOIN instances i ON i.instance_id = m.instance_id "
                "WHERE m.visible_at <= ? AND (i.lease_owner IS NULL OR i.lease_owner = ? "
                f"OR i.lease_expires_at < ?){mine} LIMIT ?",
                (now, owner, now, *mine_params, len(excluded) + 1),
            )
            .fetchall()
        )
    if not found:
        return []
    with db.errors(), db.write(notify=False, durable=False) as conn:
        candidates = conn.execute(
            "SELECT i.instance_id, i.lease_owner FROM inbox m "
            "CROSS JOIN instances i ON i.instance_id = m.instance_id "
            "WHERE m.visible_at <= ? AND (i.lease_owner IS NULL OR i.lease_owner = ? "
            f"OR i.lease_expires_at < ?){mine} GROUP BY i.instance_id ORDER BY MIN(m.id) "
            "LIMIT ?",
            (now, owner, now, *mine_params, limit + len(excluded)),
        ).fetchall()
        ids = [r[0] for r in candidates if r[0] not in excluded][:limit]
        previous = {r[0]: r[1] for r in candidates if r[1] is not None and r[1] != owner}
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        # taken over from another owner, or from a lapsed lease: its own task, if any,
        # goes to the queue (see OWN_TASK_RULES)
        if enqueue_own_tasks(
            conn,
            "(lease_owner IS NULL OR lease_owner <> ? OR lease_expires_at < ?) "
            f"AND instance_id IN ({marks})",
            (owner, now, *ids),
            now,
        ):
            db.gives(activities=True)
        conn.execute(
            f"UPDATE instances SET lease_owner = ?, lease_expires_at = ?, waiting = NULL "
            f"WHERE instance_id IN ({marks})",
            (owner, now + lease_s, *ids),
        )
        instance_rows = conn.execute(
            f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE instance_id IN ({marks})", ids
        ).fetchall()
        message_rows = conn.execute(
            f"SELECT id, instance_id, execution_id, event FROM inbox "
            f"WHERE instance_id IN ({marks}) AND visible_at <= ? ORDER BY id",
            (*ids, now),
        ).fetchall()
    # (the rows are read under the write lock, and made into records and events after it:
    # the lock, which a client's starts in another process wait for, is held for the
    # statements alone)
    records = {row[0]: instance_from_row(row) for row in instance_rows}
    messages: dict[str, list[InboxMessage]] = {iid: [] for iid in ids}
    for row in message_rows:
        messages[row[1]].append(
            InboxMessage(
                id=row[0], instance_id=row[1], event=decode_event(row[3]), execution_id=row[2]
            )
        )
    return [OrchestrationWorkItem(records[iid], messages[iid], previous.get(iid)) for iid in ids]


def claim_activities(
    db: Connections,
    owner: str,
    limit: int,
    lease_s: float,
    now: float,
    *,
    app_id: str = "",
    names: Sequence[str] | None = None,
    except_names: Sequence[str] = (),
) -> list[ActivityWorkItem]:
    """Lease visible activity tasks that nobody holds (or whose lease expired), of
    ``app_id`` and the activities ``names`` (any when None) but ``except_names``."""
    if limit <= 0 or (names is not None and not names):
        return []
    mine, mine_params = _of_worker("t", app_id, names)
    if except_names:
        mine += f" AND t.name NOT IN ({','.join('?' * len(except_names))})"
        mine_params = [*mine_params, *except_names]
    with db.errors():
        found = (
            db.conn()
            .execute(
                "SELECT 1 FROM activity_tasks t WHERE visible_at <= ? AND "
                f"(lease_owner IS NULL OR lease_expires_at < ?){mine} "
                f"UNION ALL {_LAPSED_OWN} LIMIT 1",
                (now, now, *mine_params, now),
            )
            .fetchone()
        )
    if found is None:
        return []
    with db.errors(), db.write(notify=False, durable=False) as conn:
        # own tasks of instances whose lease lapsed (their worker died): to the queue
        if enqueue_own_tasks(conn, "lease_owner IS NOT NULL AND lease_expires_at < ?", (now,), now):
            db.gives(activities=True)
        rows = conn.execute(
            "SELECT id, instance_id, execution_id, task_id, name, input, task_execution_id, "
            "propagated, heartbeat_s, heartbeat_details, deliveries FROM activity_tasks t WHERE "
            f"visible_at <= ? AND (lease_owner IS NULL OR lease_expires_at < ?){mine} "
            f"AND {NOT_OVERDUE} ORDER BY id LIMIT ?",
            (now, now, *mine_params, now, limit),
        ).fetchall()
        if not rows:
            return []
        conn.executemany(  # (a task with a heartbeat timeout: leased for at most that long)
            "UPDATE activity_tasks SET lease_owner = ?, lease_expires_at = ?, "
            f"deliveries = deliveries + 1, {START_DEADLINE} WHERE id = ?",
            [(owner, now + min(lease_s, r[8] or lease_s), now, r[0]) for r in rows],
        )
    return [
        ActivityWorkItem(
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            r[6],
            decode_propagation(r[7]),
            r[8],
            r[9],
            r[10] + 1,
        )
        for r in rows
    ]


def renew_activity_leases(
    db: Connections, owner: str, activity_ids: Sequence[int], lease_s: float, now: float
) -> list[int]:
    """Extend this owner's leases of activity tasks; return the ids it no longer holds."""
    lost: list[int] = []
    with db.errors(), db.write(notify=False, durable=False) as conn:
        for aid in activity_ids:
            cur = conn.execute(
                "UPDATE activity_tasks SET lease_expires_at = ? WHERE id = ? AND lease_owner = ?",
                (now + lease_s, aid, owner),
            )
            if cur.rowcount == 0:
                lost.append(aid)
    return lost


def heartbeat_activity(
    db: Connections, owner: str, activity_id: int, details: str | None, lease_s: float, now: float
) -> bool:
    """Keep an activity's heartbeat details and extend its lease, if ``owner`` holds it."""
    with db.errors(), db.write(notify=False, durable=False) as conn:
        cur = conn.execute(
            "UPDATE activity_tasks SET heartbeat_details = ?, lease_expires_at = ? "
            "WHERE id = ? AND lease_owner = ? AND lease_expires_at >= ?",
            (details, now + lease_s, activity_id, owner, now),
        )
        return cur.rowcount == 1


def renew_leases(
    db: Connections,
    owner: str,
    instance_ids: Sequence[str],
    activity_ids: Sequence[int],
    lease_s: float,
    now: float,
) -> list[str]:
    """Extend leases; return the instance ids this owner no longer holds."""
    lost: list[str] = []
    with db.errors(), db.write(notify=False, durable=False) as conn:
        for iid in instance_ids:
            cur = conn.execute(
                "UPDATE instances SET lease_expires_at = ? WHERE instance_id = ? "
                "AND lease_owner = ? AND lease_expires_at >= ?",
                (now + lease_s, iid, owner, now),
            )
            if cur.rowcount == 0:
                lost.append(iid)
        conn.executemany(  # own tasks (negative ids) live under their instance's lease
            "UPDATE activity_tasks SET lease_expires_at = ? WHERE id = ? AND lease_owner = ?",
            [(now + lease_s, aid, owner) for aid in activity_ids if aid > 0],
        )
    return lost


def release_leases(
    db: Connections, owner: str, instance_ids: Sequence[str] | None, now: float
) -> None:
    """Give up this owner's leases (all of them when ``instance_ids`` is None); the own tasks
    of the instances let go go to the queue (OWN_TASK_RULES)."""
    with db.errors(), db.write(durable=False) as conn:
        if instance_ids is None:
            if enqueue_own_tasks(conn, "lease_owner = ?", (owner,), now):
                db.gives(activities=True)
            conn.execute(
                "UPDATE instances SET lease_owner = NULL, lease_expires_at = NULL "
                "WHERE lease_owner = ?",
                (owner,),
            )
            conn.execute(
                "UPDATE activity_tasks SET lease_owner = NULL, lease_expires_at = NULL "
                "WHERE lease_owner = ?",
                (owner,),
            )
        else:
            marks = ",".join("?" * len(instance_ids))
            if enqueue_own_tasks(
                conn,
                f"lease_owner = ? AND instance_id IN ({marks})",
                (owner, *instance_ids),
                now,
            ):
                db.gives(activities=True)
            conn.executemany(
                "UPDATE instances SET lease_owner = NULL, lease_expires_at = NULL "
                "WHERE instance_id = ? AND lease_owner = ?",
                [(iid, owner) for iid in instance_ids],
            )
